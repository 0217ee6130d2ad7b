//! Under overload nothing disappears silently: with a tiny ring buffer, a tight loop of
//! writes and nobody reading the ring, events recorded + syscalls counted as lost = syscalls
//! made. See: issue #3.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use recorder_tests::{binary, require_privileges, wait_timeout, Recorder, Recording, STEP_TIMEOUT};

const WRITES: u64 = 100_000;

#[test]
fn recorded_plus_lost_equals_made() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let recordings = work.path().join("recordings");
    let mut workload = Command::new(binary("recorder-workload"))
        .args(["burst", &WRITES.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = workload.id();
    let mut recorder = Recorder::start(&[
        "--pid",
        &pid.to_string(),
        "--output",
        recordings.to_str().unwrap(),
        "--ring-bytes",
        "4KiB",
    ]);
    // recorderd's drain keeps pace with this burst on its own (it runs real-time), so the
    // overload is made certain: recorderd is stopped while the burst runs, and the 4 KiB
    // ring overflows with nobody reading it.
    let recorderd = recorder.child.id() as i32;
    // SAFETY: signalling the recorderd child we started.
    unsafe { libc::kill(recorderd, libc::SIGSTOP) };
    let mut stdin = workload.stdin.take().unwrap();
    stdin.write_all(b"go\n").unwrap();
    let mut done = String::new();
    BufReader::new(workload.stdout.take().unwrap())
        .read_line(&mut done)
        .unwrap();
    assert_eq!(done, "done\n");
    // SAFETY: as above.
    unsafe { libc::kill(recorderd, libc::SIGCONT) };
    // Every syscall of the burst has completed; stop the recorder while the workload waits.
    // SAFETY: signalling the recorderd child we started.
    unsafe { libc::kill(recorder.child.id() as i32, libc::SIGTERM) };
    recorder.wait_for_line("recorderd: stopped");
    let recording = Recording::read(&recorder.finish());
    drop(stdin);
    assert!(wait_timeout(&mut workload, *STEP_TIMEOUT).success());

    let recorded = recording.of_pid(pid).len() as u64;
    let trailer = recording.trailer.expect("trailer");
    let losses = trailer.losses.expect("loss totals");
    let from_frames: u64 = recording
        .losses
        .iter()
        .map(|l| l.syscalls + l.stash_failures)
        .sum();
    assert_eq!(
        from_frames,
        losses.syscalls + losses.stash_failures,
        "Loss frames add up to the trailer"
    );
    assert!(
        losses.syscalls > 0,
        "a 4 KiB ring must overflow under {WRITES} writes; recorded {recorded}"
    );
    assert_eq!(
        recorded + losses.syscalls + losses.stash_failures,
        WRITES + 2,
        "recorded {recorded}, lost {} + {} unstashed",
        losses.syscalls,
        losses.stash_failures
    );
}
