//! End to end, for real: probes in the kernel → ring buffer → recorderd → protobuf frames in
//! zstd → a 0600 file in a 0700 directory → the reader. See: issue #2.

use std::{io::Read, net::TcpListener, os::unix::fs::PermissionsExt, process::Command};

use recorder_proto::v1::{payload::Direction, resource::Kind};
use recorder_tests::{
    binary, record_gated_workload, require_privileges, unhex, Recorder, Recording,
};

#[test]
fn records_a_workload_by_pid() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let recordings = work.path().join("recordings");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        conn.read_to_end(&mut received).unwrap();
        received
    });

    let run = record_gated_workload(
        &["basic", work.path().to_str().unwrap(), &address],
        &recordings,
    );
    let (report, path) = (&run.report, &run.path);
    let received = server.join().unwrap();

    // The recording and its directory are private to the recorder.
    assert_eq!(
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&recordings).unwrap().permissions().mode() & 0o777,
        0o700
    );

    let recording = &run.recording;
    let trailer = recording
        .trailer
        .as_ref()
        .expect("a finished recording has a trailer");
    assert_eq!(trailer.end_reason, "target exited");
    let events = recording.of_pid(run.pid);
    let fd: i64 = report["fd"].parse().unwrap();
    let payload = unhex(&report["payload"]);

    let open = events
        .iter()
        .find(|e| e.syscall == "openat" && e.path == report["path"])
        .unwrap_or_else(|| panic!("no openat of {} in {events:#?}", report["path"]));
    assert_eq!(open.ret, fd, "openat returns the workload's fd");

    let on_file = |syscall: &str| {
        events
            .iter()
            .find(|e| e.syscall == syscall && e.fd == fd && e.mono_ns > open.mono_ns)
            .unwrap_or_else(|| panic!("no {syscall} on fd {fd}"))
    };
    let write = on_file("write");
    let written = write.payload.as_ref().expect("write payload");
    assert_eq!(written.data, payload, "the write's bytes, exactly");
    assert_eq!(
        (written.length, written.direction()),
        (payload.len() as u64, Direction::Out)
    );
    assert_eq!(write.resource.as_ref().unwrap().name, report["path"]);
    let read = on_file("read");
    let read_back = read.payload.as_ref().expect("read payload");
    assert_eq!(read_back.data, payload, "the read's bytes, exactly");
    assert_eq!(read_back.direction(), Direction::In);
    let close = on_file("close");
    assert_eq!(close.ret, 0);

    let socket_fd: i64 = report["socket_fd"].parse().unwrap();
    let connect = events
        .iter()
        .find(|e| e.syscall == "connect" && e.fd == socket_fd)
        .unwrap_or_else(|| panic!("no connect in {events:#?}"));
    assert_eq!(connect.ret, 0);
    let peer =
        recorder_syscalls::sockaddr::display(connect.address.as_ref().expect("connect address"));
    assert_eq!(peer, report["connect"]);
    let sent = events
        .iter()
        .find(|e| e.syscall == "sendto" && e.fd == socket_fd && e.mono_ns > connect.mono_ns)
        .unwrap_or_else(|| panic!("no send on the socket in {events:#?}"));
    assert_eq!(
        sent.payload.as_ref().unwrap().data,
        unhex(&report["net_message"])
    );
    assert_eq!(
        sent.payload.as_ref().unwrap().data,
        received,
        "what the server received"
    );
    let resource = sent.resource.as_ref().unwrap();
    assert_eq!(
        (resource.kind(), resource.peer.as_ref()),
        (Kind::Socket, connect.address.as_ref())
    );

    // The reader prints the same recording as a timeline.
    let inspect = Command::new(binary("recorder"))
        .arg("inspect")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let timeline = String::from_utf8(inspect.stdout).unwrap();
    assert!(
        timeline.contains(&format!("openat    {:?}", report["path"])),
        "{timeline}"
    );
    assert!(
        timeline.contains(&format!(
            "connect   fd {socket_fd} {} → 0",
            report["connect"]
        )),
        "{timeline}"
    );
}

#[test]
fn spawn_mode_records_from_the_first_instruction() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let recordings = work.path().join("recordings");
    let recorder = Recorder::start(&[
        "--output",
        recordings.to_str().unwrap(),
        "--",
        "cat",
        "/etc/hostname",
    ]);
    let path = recorder.finish();
    let recording = Recording::read(&path);
    let opens: Vec<&str> = recording
        .events
        .iter()
        .filter(|e| e.syscall == "openat")
        .map(|e| e.path.as_str())
        .collect();
    // The dynamic loader opens its cache before anything of cat's own runs.
    assert_eq!(
        opens.first().copied(),
        Some("/etc/ld.so.cache"),
        "{opens:?}"
    );
    assert!(opens.contains(&"/etc/hostname"), "{opens:?}");
}

#[test]
fn sigterm_and_duration_both_finish_the_segment() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    let output = output.to_str().unwrap();

    // --duration stops a recording whose target is still running, and ends that command.
    let recorder = Recorder::start(&["--output", output, "--duration", "1s", "--", "sleep", "30"]);
    let recording = Recording::read(&recorder.finish());
    assert_eq!(
        recording.trailer.expect("trailer").end_reason,
        "duration reached"
    );

    // SIGTERM stops a recording by pid and leaves the target alone.
    let mut target = Command::new("sleep").arg("30").spawn().unwrap();
    let mut recorder = Recorder::start(&["--output", output, "--pid", &target.id().to_string()]);
    // SAFETY: signalling the recorderd child we started.
    unsafe { libc::kill(recorder.child.id() as i32, libc::SIGTERM) };
    recorder.wait_for_line("recorderd: stopped (terminated)");
    let recording = Recording::read(&recorder.finish());
    assert_eq!(recording.trailer.expect("trailer").end_reason, "terminated");
    assert!(
        target.try_wait().unwrap().is_none(),
        "a --pid target is never signalled"
    );
    target.kill().unwrap();
    target.wait().unwrap();
}
