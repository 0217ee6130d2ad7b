//! A recorder killed with SIGKILL loses at most the open zstd frame: `recorder verify` says
//! "incomplete", and every event up to about one flush interval before the kill is readable.
//! See: issue #4.

use std::process::Command;

use recorder_proto::v1::frame::Body;
use recorder_store::SegmentReader;
use recorder_tests::{
    assert_recent_gapless_prefix, binary, is_busy_write, require_privileges, segment_files,
    sigkill_busy_recording,
};

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
            if is_busy_write(&event) {
                writes.push(event);
            }
        }
    }
    // What is readable is a gapless prefix of what the workload wrote.
    assert_recent_gapless_prefix(&writes, killed_at);
}
