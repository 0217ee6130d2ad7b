//! Redaction's time bound counts the traced program's time, not the daemon's: a stream
//! that goes on (or closes) within the hold-back time keeps its last bytes however far
//! behind recorderd runs, and one that stays quiet longer is decided fail-closed while it
//! is still open. See: issue #18.

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use recorder_proto::v1::Event;
use recorder_tests::{
    binary, readable_events, require_privileges, segment_files, wait_timeout, Recorder,
    STEP_TIMEOUT,
};

/// The hold-back time the test records with: long enough that the few milliseconds
/// between the test's steps cannot approach it on a slow machine.
const HOLD_BACK: Duration = Duration::from_secs(1);
/// How long recorderd is stopped in the first part: well past the hold-back time.
const STALL: Duration = Duration::from_millis(2500);

#[test]
fn the_time_bound_counts_the_targets_time_not_the_daemons() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    let mut workload = Command::new(binary("recorder-workload"))
        .arg("tails")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn recorder-workload");
    let pid = workload.id().to_string();
    let config = work.path().join("hold-back.toml");
    let millis = HOLD_BACK.as_millis();
    std::fs::write(
        &config,
        format!("[redaction.hold_back]\nmillis = {millis}\n"),
    )
    .unwrap();
    let mut recorder = Recorder::start(&[
        "--pid",
        &pid,
        "--output",
        output.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let mut tell = workload.stdin.take().expect("stdin piped");
    let mut said = BufReader::new(workload.stdout.take().expect("stdout piped"));

    // 1. `quick tail` is written; recorderd takes it (its drain runs at least every 32 ms,
    //    so 100 ms is plenty; were it not yet taken, this part would test nothing, not fail).
    //    Then recorderd stalls, and the stream closes during the stall.
    tell.write_all(b"go\n").unwrap();
    expect_line(&mut said, "sent");
    std::thread::sleep(Duration::from_millis(100));
    let stopped = Stopped::stop(recorder.child.id());
    tell.write_all(b"close\n").unwrap();
    expect_line(&mut said, "closed");
    std::thread::sleep(STALL);
    drop(stopped);

    // 2. `slow tail` is written and its stream stays open until its event is on disk: only
    //    the time bound can have decided it.
    tell.write_all(b"go\n").unwrap();
    expect_line(&mut said, "sent");
    let started = Instant::now();
    let slow = loop {
        if let Some(event) = written_events(&output).into_iter().find(|event| {
            event
                .payload
                .as_ref()
                .is_some_and(|p| p.data.starts_with(b"slow "))
        }) {
            break event;
        }
        assert!(
            started.elapsed() < *STEP_TIMEOUT,
            "the time bound never decided `slow tail` while its stream was open; stderr: {:#?}",
            recorder.stderr_seen
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    tell.write_all(b"close\n").unwrap();
    expect_line(&mut said, "closed");
    assert!(wait_timeout(&mut workload, *STEP_TIMEOUT).success());
    let status = wait_timeout(&mut recorder.child, *STEP_TIMEOUT);
    assert!(status.success(), "recorderd: {:#?}", recorder.stderr_seen);

    let slow = slow.payload.expect("checked above");
    assert_eq!(
        slow.data, b"slow ****",
        "decided while open: its last token masked"
    );
    assert_eq!(
        slow.redactions
            .iter()
            .map(|r| (r.rule.as_str(), r.offset, r.length))
            .collect::<Vec<_>>(),
        [("fail-closed", 5, 4)]
    );
    let events = written_events(&output);
    let quick = events
        .iter()
        .filter_map(|event| event.payload.as_ref())
        .find(|payload| payload.data.starts_with(b"quick "))
        .expect("the write of `quick tail`");
    assert_eq!(
        (quick.data.as_slice(), quick.redactions.as_slice()),
        (&b"quick tail"[..], &[][..]),
        "its stream closed about 100 ms after it in the target's time: recorderd's stall of \
         {STALL:?} must not decide it by the time bound ({HOLD_BACK:?})"
    );
}

fn expect_line(said: &mut BufReader<ChildStdout>, expected: &str) {
    let mut line = String::new();
    said.read_line(&mut line).expect("the workload's stdout");
    assert_eq!(line.trim_end(), expected, "the workload said");
}

/// recorderd stopped (SIGSTOP) until this is dropped, also when the test fails meanwhile:
/// a stopped recorderd would keep its probes attached.
struct Stopped(i32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        // SAFETY: a plain signal to our own child.
        assert_eq!(
            unsafe { libc::kill(pid as i32, libc::SIGSTOP) },
            0,
            "SIGSTOP"
        );
        Stopped(pid as i32)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// The events on disk so far, in every segment (the one being written up to its torn
/// tail).
fn written_events(output: &Path) -> Vec<Event> {
    segment_files(output)
        .iter()
        .flat_map(|segment| readable_events(segment))
        .collect()
}
