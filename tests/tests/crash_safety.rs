//! A recorder killed with SIGKILL loses at most the open zstd frame: `recorder verify` says
//! "incomplete", and every event up to about one flush interval before the kill is readable.
//! See: issue #4.

use std::{process::Command, time::Duration};

use recorder_daemon::record::SegmentReader;
use recorder_proto::v1::frame::Body;
use recorder_tests::{binary, require_privileges, segment_files, sigkill_busy_recording};

/// The writer closes a zstd frame once it is a second old, checked every 250 ms.
const MAX_LOST_WINDOW: Duration = Duration::from_millis(1500);

#[test]
fn sigkill_loses_at_most_the_last_flush_interval() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    let killed_at = sigkill_busy_recording(&output, &[]);

    let verify = Command::new(binary("recorder"))
        .arg("verify")
        .arg(&output)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(
        verify.status.code(),
        Some(3),
        "verify: {stdout} {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(stdout.starts_with("incomplete: "), "{stdout}");

    let segment = segment_files(&output).remove(0);
    let mut reader = SegmentReader::open(&segment).unwrap();
    let mut writes = Vec::new();
    while let Ok(Some(body)) = reader.next_body() {
        if let Body::Event(event) = body {
            if event.syscall == "write"
                && event
                    .payload
                    .as_ref()
                    .is_some_and(|p| p.data.starts_with(b"seq "))
            {
                writes.push(event);
            }
        }
    }
    let last = writes.last().expect("events before the kill are readable");
    let lost_ns = killed_at.saturating_sub(last.mono_ns);
    assert!(
        lost_ns <= MAX_LOST_WINDOW.as_nanos() as u64,
        "last readable event is {} ms before the kill",
        lost_ns / 1_000_000
    );
    // What is readable is a gapless prefix of what the workload wrote.
    for (expected, event) in writes.iter().enumerate() {
        let line = String::from_utf8_lossy(&event.payload.as_ref().unwrap().data).into_owned();
        assert_eq!(line, format!("seq {expected}\n"));
    }
}
