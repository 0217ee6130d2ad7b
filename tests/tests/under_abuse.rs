//! A target that abuses its recorder: thousands of connections, each holding back an
//! unfinished line, cannot make recorderd's memory grow past its bound, and the bound leaks
//! nothing. See: issue #16.

use std::{process::Child, time::Duration};

use recorder_proto::v1::payload::Direction;
use recorder_tests::{
    binary, contains, decompressed_segment, require_privileges, segment_files, Recorder, Recording,
    STEP_TIMEOUT,
};

const CONNECTIONS: usize = 5_000;
const LINE_BYTES: usize = 16 * 1024;
/// The bound the test sets (`hold_back.memory`), far below the 5,000 × 16 KiB held.
const MEMORY_BOUND: u64 = 4 * 1024 * 1024;
/// What recorderd needs besides what it holds for redaction: the probes' maps and the
/// 16 MiB ring (mapped twice), the stream and fd tables of 10,000 sockets, the reuse pools,
/// and the drain's backlog while the pipeline catches up with the 80 MB burst (shedding
/// starts at 64 MiB). Measured on the debug build: about 125 MB with 16-byte lines, 150 to
/// 180 MB with these, and 285 MB without the bound (`memory = 1073741824`).
const FIXED_OVERHEAD: u64 = 192 * 1024 * 1024;

#[test]
fn many_half_written_streams_stay_within_the_memory_bound() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("bounded.toml");
    // A minute's time bound: only the memory bound decides the held lines early.
    std::fs::write(
        &config,
        format!("[redaction.hold_back]\nmillis = 60000\nmemory = {MEMORY_BOUND}\n"),
    )
    .unwrap();
    let output = work.path().join("recordings");
    let workload = binary("recorder-workload");
    let mut recorder = Recorder::start(&[
        "--config",
        config.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--",
        workload.to_str().unwrap(),
        "holders",
        &CONNECTIONS.to_string(),
        &LINE_BYTES.to_string(),
    ]);
    recorder.wait_for_line(&format!("workload: holding {CONNECTIONS} connections"));
    let (status, peak_rss) = wait_with_peak_rss(&mut recorder.child);
    assert_eq!(
        status, 0,
        "recorderd failed; stderr: {:#?}",
        recorder.stderr_seen
    );

    let segments = segment_files(&output);
    assert_eq!(segments.len(), 1, "one segment: {segments:?}");
    let recording = Recording::read(&segments[0]);
    let trailer = recording.trailer.as_ref().expect("a finished recording");
    let losses = trailer.losses.unwrap_or_default();
    assert!(
        losses.holds_forced > 0,
        "the trailer counts the holds the memory bound forced: {trailer:?}"
    );
    let held_lines: Vec<_> = recording
        .events
        .iter()
        .filter_map(|event| event.payload.as_ref())
        .filter(|payload| {
            payload.direction() == Direction::Out && payload.length == LINE_BYTES as u64
        })
        .collect();
    assert_eq!(
        held_lines.len(),
        CONNECTIONS,
        "every held line is recorded; losses: {losses:?}"
    );
    for payload in held_lines.iter().filter(|payload| !payload.data.is_empty()) {
        assert!(
            payload.data.starts_with(b"Authorization: "),
            "what is not secret stays readable"
        );
    }
    assert!(
        !contains(&decompressed_segment(&segments[0]), b"holdtok"),
        "no token written, forced early or not"
    );
    assert!(
        peak_rss < MEMORY_BOUND + FIXED_OVERHEAD,
        "recorderd's peak RSS was {} MiB, over the {} MiB bound plus {} MiB; the target held {} MiB",
        peak_rss >> 20,
        MEMORY_BOUND >> 20,
        FIXED_OVERHEAD >> 20,
        (CONNECTIONS * LINE_BYTES) >> 20
    );
}

/// Waits for recorderd to exit; returns its exit status (the signal's number + 128 if one
/// ended it) and its peak resident set size in bytes, from `wait4`, failing the test after
/// the step timeout.
fn wait_with_peak_rss(child: &mut Child) -> (i32, u64) {
    let pid = child.id() as i32;
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let timeout: Duration = *STEP_TIMEOUT;
    let watchdog = std::thread::spawn(move || {
        if watched.recv_timeout(timeout).is_err() {
            // SAFETY: signalling the child we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut status = 0;
    // SAFETY: rusage is plain data, filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child, with valid out-pointers.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if waited == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::Interrupted,
            "wait4: {error}"
        );
    }
    let _ = done.send(());
    watchdog.join().expect("watchdog");
    assert!(
        !libc::WIFSIGNALED(status) || libc::WTERMSIG(status) != libc::SIGKILL,
        "recorderd did not finish within {timeout:?}"
    );
    let code = match libc::WIFEXITED(status) {
        true => libc::WEXITSTATUS(status),
        false => 128 + libc::WTERMSIG(status),
    };
    // ru_maxrss is in KiB.
    (code, usage.ru_maxrss as u64 * 1024)
}
