//! Under a burst the traced program can always issue, events are kept and only payloads give
//! way, with both counted exactly: an unpaced `dd bs=4096` through a 256 KiB ring records
//! every read and write, and their kept + lost payload bytes add up to the bytes moved.
//! See: issue #18.

use std::{
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use recorder_proto::v1::frame::Body;
use recorder_store::{Keyring, SegmentReader};
use recorder_tests::{binary, require_privileges, segment_files, time_scale, Recorder};

const BLOCKS: u64 = 200_000;
const BLOCK: u64 = 4096;

/// What the dd process's reads of fd 0 and writes to fd 1 add up to.
#[derive(Debug, Default)]
struct Tally {
    reads: u64,
    writes: u64,
    moved: u64,
    kept: u64,
    lost: u64,
    capped: u64,
    /// Events (of any process) whose payload was shed, and the Loss frames' count of them.
    shed_events: u64,
    shed_counted: u64,
    lost_records: u64,
    lost_record_bytes: u64,
    /// The Header's `limits.priority`, of every segment.
    priorities: Vec<String>,
}

/// Streams every segment (the events are not all held in memory: kept payloads could be
/// hundreds of MB).
fn tally(dir: &Path, dd_pid: u32) -> Tally {
    let mut tally = Tally::default();
    for path in segment_files(dir) {
        let mut reader = SegmentReader::open_with(&path, &Keyring::default())
            .unwrap_or_else(|error| panic!("{error}"));
        while let Some(body) = reader.next_body().unwrap_or_else(|error| panic!("{error}")) {
            match body {
                Body::Event(event) if event.pid == dd_pid => {
                    tally.shed_events += u64::from(event.payload.as_ref().is_some_and(|p| p.shed));
                    let counted = match (event.syscall.as_str(), event.fd) {
                        ("read", 0) => &mut tally.reads,
                        ("write", 1) => &mut tally.writes,
                        _ => continue,
                    };
                    *counted += 1;
                    let payload = event.payload.expect("a read or write of dd has a payload");
                    let captured = payload.length - payload.lost_bytes - payload.capped_bytes;
                    tally.moved += payload.length;
                    tally.lost += payload.lost_bytes;
                    tally.capped += payload.capped_bytes;
                    tally.kept += captured;
                }
                Body::Event(event) => {
                    tally.shed_events += u64::from(event.payload.is_some_and(|p| p.shed));
                }
                Body::Header(header) => {
                    tally
                        .priorities
                        .push(header.limits.unwrap_or_default().priority);
                }
                Body::Loss(loss) => {
                    tally.shed_counted += loss.payloads_shed;
                    tally.lost_records += loss.syscalls + loss.stash_failures;
                    tally.lost_record_bytes += loss.lost_syscall_payload_bytes;
                }
                _ => {}
            }
        }
    }
    tally
}

/// The exact accounting every dd run here must show.
fn assert_every_event_and_byte(tally: &Tally) {
    assert_eq!(
        tally.lost_records, 0,
        "no syscall record may be lost: {tally:?}"
    );
    assert_eq!(
        (tally.reads, tally.writes),
        (BLOCKS, BLOCKS),
        "every read of fd 0 and write to fd 1 is an event: {tally:?}"
    );
    assert_eq!(tally.moved, 2 * BLOCKS * BLOCK, "{tally:?}");
    assert_eq!(tally.capped, 0, "4 KiB is under the cap: {tally:?}");
    assert_eq!(
        tally.kept + tally.lost,
        2 * BLOCKS * BLOCK,
        "kept + lost payload bytes = bytes moved: {tally:?}"
    );
    assert_eq!(
        tally.shed_events, tally.shed_counted,
        "each shed payload is an event marked shed and a count in a Loss frame: {tally:?}"
    );
}

/// recorderd recording dd, unpaced: it reads fd 0 and writes fd 1 (the shell's
/// redirections) as fast as it can.
fn record_dd(output: &Path, options: &[&str]) -> Recorder {
    let dd = format!("exec dd bs={BLOCK} count={BLOCKS} </dev/zero >/dev/null 2>/dev/null");
    let mut args = vec![
        "--output",
        output.to_str().unwrap(),
        "--ring-bytes",
        "256KiB",
    ];
    args.extend_from_slice(options);
    args.extend_from_slice(&["--", "sh", "-c", &dd]);
    Recorder::start(&args)
}

#[test]
fn an_unpaced_dd_keeps_every_event_and_accounts_for_every_byte() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    let recorder = record_dd(&output, &[]);
    let dd_pid = recorder.spawned_pid() as u32;
    recorder.finish();

    let tally = tally(&output, dd_pid);
    assert_every_event_and_byte(&tally);

    // `recorder list --json` reports the same accounting for the whole recording.
    let listed = Command::new(binary("recorder"))
        .args(["list", "--json", output.to_str().unwrap()])
        .output()
        .expect("run recorder list");
    assert!(listed.status.success(), "{listed:?}");
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let payload = &rows[0]["payload_bytes"];
    let field = |name: &str| {
        payload[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{payload}"))
    };
    assert_eq!(
        field("kept") + field("lost") + field("capped"),
        field("moved"),
        "{payload}"
    );
    assert!(
        field("moved") >= 2 * BLOCKS * BLOCK,
        "dd's bytes are in the total: {payload}"
    );
}

/// A busy loop on every CPU, stopped when dropped (a failed assertion too).
struct BusyCpus {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyCpus {
    fn start() -> BusyCpus {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (0..cpus)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        BusyCpus { stop, threads }
    }
}

impl Drop for BusyCpus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// `--priority background` on a host whose every CPU is busy: the pipeline gets almost no
/// CPU while dd runs (SCHED_IDLE), yet every event is kept and every byte accounted for,
/// and once dd exits recorderd sees it at once and finishes at the normal policy. Here
/// (debug build, two CPUs) it finished 3.6–6.1 s after dd; with the backlog left in the
/// background it was killed after 60 s (SCHED_IDLE's weight is 3 against a busy loop's
/// 1024), and with dd's exit seen only when the runtime's budget let it, 18 s.
#[test]
fn on_a_saturated_host_a_background_recording_keeps_every_event_and_finishes() {
    if !require_privileges() {
        return;
    }
    let busy = BusyCpus::start();
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    let recorder = record_dd(&output, &["--threads", "1", "--priority", "background"]);
    let dd_pid = recorder.spawned_pid() as u32;
    // dd's end: a zombie until recorderd reaps it, as it does when it finishes.
    let stat = format!("/proc/{dd_pid}/stat");
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let dd_ended = Instant::now();
    recorder.finish();
    let finishing = dd_ended.elapsed();
    drop(busy);

    assert!(
        finishing < Duration::from_secs(12) * time_scale(),
        "recorderd took {finishing:?} to finish after dd exited"
    );
    let tally = tally(&output, dd_pid);
    assert_every_event_and_byte(&tally);
    // It was recorded in the background (root holds CAP_SYS_NICE), and the recording says so.
    assert!(
        !tally.priorities.is_empty() && tally.priorities.iter().all(|p| p == "background"),
        "{:?}",
        tally.priorities
    );
    eprintln!("finished {finishing:?} after dd; {tally:?}");
}
