//! Targets that do what recorderd's probes did not expect: thousands of connections, each
//! holding back an unfinished line, cannot make recorderd's memory grow past its bound, and
//! the bound leaks nothing; a 32-bit program's syscalls are counted, never recorded under
//! the names their numbers have in the 64-bit table. See: issue #16.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use recorder_proto::v1::{payload::Direction, process::Kind};
use recorder_tests::{
    binary, build_compat_program, contains, decompressed_segment, require_privileges,
    segment_files, wait_timeout, wait_with_peak_rss, Recorder, Recording, STEP_TIMEOUT,
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
    let (status, peak_rss) = wait_with_peak_rss(&mut recorder.child, *STEP_TIMEOUT);
    assert!(
        status.success(),
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

/// What the recording holds of the 32-bit process `pid`: no event but (when recorderd
/// started it) its execve, a Process frame saying from where its syscalls are skipped, and
/// their count.
fn assert_counted_not_misread(recording: &Recording, pid: u32, exec_recorded: bool) {
    let names: Vec<&str> = recording
        .of_pid(pid)
        .iter()
        .map(|event| event.syscall.as_str())
        .collect();
    let expected: &[&str] = if exec_recorded { &["execve"] } else { &[] };
    assert_eq!(
        names, expected,
        "no syscall of the 32-bit program is recorded"
    );
    if exec_recorded {
        assert_eq!(recording.of_pid(pid)[0].ret, 0, "its execve returned 0");
    }
    assert!(
        recording
            .processes
            .iter()
            .any(|process| process.pid == pid && process.kind() == Kind::Compat),
        "a Process frame marks it: {:?}",
        recording.processes
    );
    let losses = recording
        .trailer
        .as_ref()
        .and_then(|trailer| trailer.losses)
        .expect("a trailer");
    assert!(
        losses.compat_syscalls >= 5,
        "its openat and reads (preadv and close by 64-bit numbers) are counted: {losses:?}"
    );
}

#[test]
fn a_spawned_32_bit_program_is_counted_not_misread() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let program = build_compat_program(work.path());
    let output = work.path().join("recordings");
    // A 64-bit shell around it: its own syscalls are recorded as usual.
    let script = format!(
        "head -c 1 /etc/hostname >/dev/null; {} now",
        program.display()
    );
    let recorder = Recorder::start(&[
        "--output",
        output.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let path = recorder.finish();
    let recording = Recording::read(&path);
    let exec = recording
        .events
        .iter()
        .find(|event| {
            event.syscall == "execve" && event.argv.first().is_some_and(|a| a.ends_with("compat32"))
        })
        .expect("the shell's exec of the 32-bit program is recorded");
    assert_counted_not_misread(&recording, exec.pid, true);
    assert!(
        recording
            .events
            .iter()
            .any(|event| event.syscall == "openat"
                && event
                    .resource
                    .as_ref()
                    .is_some_and(|r| r.name == "/etc/hostname")),
        "the 64-bit head's openat is recorded"
    );
}

#[test]
fn a_32_bit_command_is_named_in_one_line() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let program = build_compat_program(work.path());
    let output = work.path().join("recordings");
    let mut recorder = Recorder::start(&[
        "--output",
        output.to_str().unwrap(),
        "--",
        program.to_str().unwrap(),
        "now",
    ]);
    let notice = recorder.wait_for_line("recorderd: the command is a 32-bit program");
    assert!(notice.contains("counted"), "{notice}");
    let path = recorder.finish();
    let recording = Recording::read(&path);
    assert_counted_not_misread(&recording, recording.first_target(), true);
}

#[test]
fn a_32_bit_process_recorded_by_pid_is_named_in_one_line() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let program = build_compat_program(work.path());
    let mut target = Command::new(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = target.id();
    let output = work.path().join("recordings");
    let mut recorder = Recorder::start(&[
        "--pid",
        &pid.to_string(),
        "--output",
        output.to_str().unwrap(),
    ]);
    let notice = recorder.wait_for_line(&format!("recorderd: pid {pid} runs a 32-bit program"));
    assert!(notice.contains("counted"), "{notice}");
    target.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(wait_timeout(&mut target, *STEP_TIMEOUT).success());
    let path = recorder.finish();
    assert_counted_not_misread(&Recording::read(&path), pid, false);
}
