//! Least privilege, checked on the running daemon: once its probes are attached, a
//! foreground recorderd keeps only what reading /proc needs, and the service only what
//! loading more probes and reading /proc need (docs/SECURITY.md, "Privileges").

use std::{
    os::unix::fs::MetadataExt,
    path::Path,
    time::{Duration, Instant},
};

use recorder_tests::{record_busy, require_privileges, segment_files, Recording};

const CAP_CHOWN: u32 = 0;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_NICE: u32 = 23;
/// Scheduling policies, as /proc/PID/task/TID/stat's 41st field gives them.
const SCHED_OTHER: u64 = 0;
const SCHED_FIFO: u64 = 1;
const SCHED_IDLE: u64 = 5;

fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |mask, cap| mask | 1u64 << cap)
}

/// A field of /proc/PID/status.
fn status_field(pid: u32, name: &str) -> String {
    field_of(&format!("/proc/{pid}/status"), name)
}

fn field_of(status: &str, name: &str) -> String {
    std::fs::read_to_string(status)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_owned()
}

fn caps_of(pid: u32, set: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, set), 16).unwrap()
}

/// The status file of each of `pid`'s threads, once a thread named `name` is among them.
fn threads_once_one_is(pid: u32, name: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10) * recorder_tests::time_scale();
    loop {
        let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|task| format!("{}/status", task.unwrap().path().display()))
            .collect();
        if threads.iter().any(|t| field_of(t, "Name:") == name) {
            return threads;
        }
        assert!(Instant::now() < deadline, "no {name} thread in recorderd");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_foreground_recording_keeps_only_what_reading_proc_needs() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    // A redaction worker, whatever the default is on this machine.
    let recorder = record_busy(&output, &["--threads", "1"]);
    let pid = recorder.child.id();
    let expected = mask(&[CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE]);
    assert_eq!(caps_of(pid, "CapEff:"), expected, "effective");
    assert_eq!(caps_of(pid, "CapPrm:"), expected, "permitted");
    assert_eq!(caps_of(pid, "CapInh:") | caps_of(pid, "CapAmb:"), 0);
    assert_eq!(caps_of(pid, "CapBnd:"), expected, "bounding");
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    // Capabilities are per thread: the redaction workers, which start with the first
    // payload, and the drain must have started after the drop.
    for thread in threads_once_one_is(pid, "redact-0") {
        let effective = u64::from_str_radix(&field_of(&thread, "CapEff:"), 16).unwrap();
        assert_eq!(effective, expected, "effective, {thread}");
    }
    // Still recording after the drop: the trailer is written and the writes are there.
    let path = recorder.stop();
    let recording = Recording::read(Path::new(&path));
    assert!(recording.trailer.is_some());
    assert!(!recording.events.is_empty());
    let limits = recording.header.and_then(|h| h.limits).unwrap();
    assert_eq!(limits.priority, "normal");
}

/// A thread's scheduling policy, from its stat file (the fields after the `(name)`, which
/// may hold spaces).
fn policy_of(status: &str) -> u64 {
    let stat = std::fs::read_to_string(status.replace("/status", "/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    // Field 3 (state) is the first after the name; policy is field 41.
    after_name.split(' ').nth(41 - 3).unwrap().parse().unwrap()
}

/// `--priority background`: the redaction workers run under SCHED_IDLE (the pipeline's own
/// thread too, but only while it handles a batch), the drain does not, and CAP_SYS_NICE is
/// kept to come back from it.
#[test]
fn a_background_recording_idles_its_redaction_not_its_drain() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    let recorder = record_busy(&output, &["--threads", "1", "--priority", "background"]);
    let pid = recorder.child.id();
    let expected = mask(&[CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE, CAP_SYS_NICE]);
    assert_eq!(caps_of(pid, "CapEff:"), expected, "effective");
    assert_eq!(caps_of(pid, "CapBnd:"), expected, "bounding");
    let mut seen = Vec::new();
    for thread in threads_once_one_is(pid, "redact-0") {
        let name = field_of(&thread, "Name:");
        let policy = policy_of(&thread);
        match name.as_str() {
            "redact-0" => assert_eq!(policy, SCHED_IDLE, "{name}"),
            // Real-time where permitted (root here), never in the background.
            "recorderd-drain" => assert_eq!(policy, SCHED_FIFO, "{name}"),
            _ => {}
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, ["recorderd", "recorderd-drain", "redact-0"]);
    // The loop's thread is in the background only while it handles a batch: between them it
    // waits at the normal policy, which it must be seen at (the workload writes steadily).
    let main = format!("/proc/{pid}/task/{pid}/status");
    let deadline = Instant::now() + Duration::from_secs(5) * recorder_tests::time_scale();
    while policy_of(&main) != SCHED_OTHER {
        assert!(
            Instant::now() < deadline,
            "the pipeline's thread never left SCHED_IDLE"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let path = recorder.stop();
    let recording = Recording::read(Path::new(&path));
    assert!(recording.trailer.is_some());
    assert!(!recording.events.is_empty());
    // The recording says how it was made: its shed payloads may be why.
    let limits = recording.header.and_then(|h| h.limits).unwrap();
    assert_eq!(limits.priority, "background");
}

/// With a reader group each new segment is given that group (fchown), which root, not being a
/// member, may do only with CAP_CHOWN: segments made after the drop must still get it.
#[test]
fn with_a_reader_group_segments_made_after_the_drop_get_the_group() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("recorderd.toml");
    // nogroup (65534) exists on every Debian host, and root is not a member of it.
    std::fs::write(&config, "[storage]\nreader_group = \"nogroup\"\n").unwrap();
    let output = work.path().join("recordings");
    let mut recorder = record_busy(
        &output,
        &[
            "--config",
            config.to_str().unwrap(),
            "--segment-bytes",
            "64KiB",
        ],
    );
    let pid = recorder.child.id();
    recorder.wait_for_line("workload: 20000 writes");
    let expected = mask(&[CAP_CHOWN, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE]);
    assert_eq!(caps_of(pid, "CapEff:"), expected, "effective");
    recorder.stop();
    let segments = segment_files(&output);
    assert!(segments.len() >= 2, "expected rotation, got {segments:?}");
    for segment in &segments {
        let meta = std::fs::metadata(segment).unwrap();
        assert_eq!(meta.gid(), 65534, "{} group", segment.display());
        assert_eq!(meta.mode() & 0o777, 0o640, "{} mode", segment.display());
    }
}
