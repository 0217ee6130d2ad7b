//! A recorder killed with SIGKILL loses at most the open zstd frame: `recorder verify` says
//! "incomplete", and every event up to about one flush interval before the kill is readable.
//! See: issue #4.

use std::io::Read;
use std::process::{Command, Stdio};

use recorder_tests::{
    assert_recent_gapless_prefix, binary, is_busy_write, readable_events, require_privileges,
    segment_files, sigkill_busy_recording, wait_timeout, STEP_TIMEOUT,
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
    let writes: Vec<_> = readable_events(&segment)
        .into_iter()
        .filter(is_busy_write)
        .collect();
    // What is readable is a gapless prefix of what the workload wrote.
    assert_recent_gapless_prefix(&writes, killed_at);
}

#[test]
fn follow_ends_with_incomplete_once_a_killed_writer_lets_go() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    sigkill_busy_recording(&output, &[]);

    let mut follow = Command::new(binary("recorder"))
        .args(["inspect", "--follow", output.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Without the lock check this waits for the trailer forever, and the timeout fails it.
    let status = wait_timeout(&mut follow, *STEP_TIMEOUT);
    let mut stderr = String::new();
    follow
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Killed between frames, the segment ends at a frame without a trailer; killed inside
    // one, it ends in that unfinished zstd frame ("the writer stopped mid-write").
    assert!(
        stderr.contains("the writer stopped without a trailer")
            || stderr.contains("the writer stopped mid-write"),
        "{stderr}"
    );
}
