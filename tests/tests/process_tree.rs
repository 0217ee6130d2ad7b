//! Children, threads, exec and exit, and descriptors opened before the attach. See: issue #3.
//!
//! `recorder-workload tree` opens a file, a TCP connection and a pipe, and only then is
//! recorderd attached by pid; the workload then uses them, runs a thread, and forks three
//! children (one writes a file and exits 7, one execs /bin/true, one is killed by SIGKILL).

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
};

use recorder_proto::v1::{process::Kind as ProcessKind, resource::Kind, Event, Process};
use recorder_tests::{
    binary, parse_report, patient_redaction_config, require_privileges, wait_timeout, Recorder,
    Recording, STEP_TIMEOUT,
};

struct TreeRun {
    pid: u32,
    report: HashMap<String, String>,
    recording: Recording,
    /// What the loopback server received on the pre-existing connection.
    server_received: Vec<u8>,
    server_address: String,
}

/// Runs the `tree` workload, attaching `recorderd --pid PID OPTIONS` once it has opened its
/// descriptors; recorderd stops by itself when the workload and its children have exited.
fn record_tree(work: &Path, options: &[&str]) -> TreeRun {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut connection, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        connection.read_to_end(&mut received).unwrap();
        received
    });
    let mut workload = Command::new(binary("recorder-workload"))
        .args(["tree", work.to_str().unwrap(), &server_address])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = workload.id();
    let mut stdout = BufReader::new(workload.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    assert_eq!(ready, "ready\n");

    let output = work.join("recordings");
    let mut args = vec![
        "--pid".to_owned(),
        pid.to_string(),
        "--output".to_owned(),
        output.to_str().unwrap().to_owned(),
    ];
    args.extend(options.iter().map(|o| o.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let recorder = Recorder::start(&args);
    workload.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut report = String::new();
    stdout.read_to_string(&mut report).unwrap();
    assert!(wait_timeout(&mut workload, *STEP_TIMEOUT).success());
    let path = recorder.finish();
    TreeRun {
        pid,
        report: parse_report(&report),
        recording: Recording::read(&path),
        server_received: server.join().unwrap(),
        server_address,
    }
}

fn number(report: &HashMap<String, String>, key: &str) -> u32 {
    report[key].parse().unwrap()
}

fn process_frame(processes: &[Process], kind: ProcessKind, pid: u32) -> &Process {
    processes
        .iter()
        .find(|p| p.kind() == kind && (p.pid == pid || p.child_pid == pid))
        .unwrap_or_else(|| panic!("no {kind:?} frame for {pid} in {processes:#?}"))
}

/// Whether this kernel's sched_process_exit says when a process's last thread exits.
fn exit_has_group_dead() -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .iter()
        .filter_map(|root| {
            std::fs::read_to_string(format!("{root}/events/sched/sched_process_exit/format")).ok()
        })
        .any(|format| format.contains("group_dead"))
}

fn payload_of(event: &Event) -> &[u8] {
    &event.payload.as_ref().expect("a payload").data
}

#[test]
fn children_threads_exec_exit_and_preexisting_fds() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // The socket's last word stays undecided until the stream closes. This test is about
    // processes, not the redaction time bound.
    let config = patient_redaction_config(work.path());
    let run = record_tree(work.path(), &["--config", config.to_str().unwrap()]);
    let (report, recording, pid) = (&run.report, &run.recording, run.pid);
    let main = recording.of_pid(pid);
    let on_fd = |fd: u32| -> &Event {
        main.iter()
            .find(|e| e.fd == i64::from(fd) && e.payload.is_some())
            .unwrap_or_else(|| panic!("no payload event on fd {fd}"))
    };

    // Opened before the attach, named from /proc.
    let pre = on_fd(number(report, "pre_fd"));
    assert_eq!(payload_of(pre), b"pre-existing file\n");
    let resource = pre.resource.as_ref().unwrap();
    assert_eq!(
        (resource.kind(), resource.name.as_str()),
        (Kind::File, report["pre_path"].as_str())
    );

    let sent = on_fd(number(report, "socket_fd"));
    assert_eq!(payload_of(sent), b"pre-existing socket");
    assert_eq!(run.server_received, b"pre-existing socket");
    let socket = sent.resource.as_ref().unwrap();
    assert_eq!(socket.kind(), Kind::Socket);
    assert_eq!(
        (socket.socket_family, socket.socket_type),
        (libc::AF_INET as u32, libc::SOCK_STREAM as u32)
    );
    let show = |a: &Option<recorder_proto::v1::SocketAddress>| {
        recorder_syscalls::sockaddr::display(a.as_ref().expect("an address"))
    };
    assert_eq!(show(&socket.local), report["socket_local"]);
    assert_eq!(show(&socket.peer), run.server_address);

    // The thread's write is its own tid's, on the pre-existing pipe; the main thread reads it.
    let thread_tid = number(report, "thread_tid");
    assert_ne!(thread_tid, pid);
    let from_thread = on_fd(number(report, "pipe_write"));
    assert_eq!(
        (from_thread.tid, payload_of(from_thread)),
        (thread_tid, &b"from thread"[..])
    );
    assert_eq!(from_thread.resource.as_ref().unwrap().kind(), Kind::Pipe);
    let read_back = on_fd(number(report, "pipe_read"));
    assert_eq!(
        (read_back.tid, payload_of(read_back)),
        (pid, &b"from thread"[..])
    );
    let thread = process_frame(&recording.processes, ProcessKind::Thread, thread_tid);
    assert_eq!(thread.pid, pid);

    // Main-thread order: file, socket, the thread, the pipe read, then the three children.
    let order: Vec<(&str, i64)> = main
        .iter()
        .filter(|e| e.tid == pid)
        .filter(|e| {
            ["write", "sendto", "read", "clone", "clone3", "fork"].contains(&e.syscall.as_str())
        })
        .map(|e| (e.syscall.as_str(), e.ret))
        .collect();
    let creates = |(syscall, _): &(&str, i64)| ["clone", "clone3", "fork"].contains(syscall);
    assert_eq!(&order[..2], [("write", 18), ("sendto", 19)], "{order:?}");
    assert!(
        creates(&order[2]) && order[2].1 == i64::from(thread_tid),
        "{order:?}"
    );
    assert_eq!(order[3], ("read", 11), "{order:?}");
    let children: Vec<i64> = order[4..7]
        .iter()
        .filter(|c| creates(c))
        .map(|c| c.1)
        .collect();
    let expected: Vec<i64> = ["child_pid", "exec_pid", "killed_pid"]
        .iter()
        .map(|key| i64::from(number(report, key)))
        .collect();
    assert_eq!(children, expected, "{order:?}");

    // The first child: followed from its first instruction, its own file, exit status 7.
    let child = number(report, "child_pid");
    let fork = process_frame(&recording.processes, ProcessKind::Fork, child);
    assert_eq!((fork.pid, fork.followed), (pid, true));
    let child_events = recording.of_pid(child);
    let open = child_events
        .iter()
        .find(|e| e.syscall.starts_with("open"))
        .expect("the child's open");
    assert_eq!(
        (open.path.as_str(), open.ret),
        (report["child_path"].as_str(), open.fd)
    );
    let write = child_events.iter().find(|e| e.syscall == "write").unwrap();
    assert_eq!(payload_of(write), b"from child", "{child_events:#?}");
    assert_eq!(write.resource.as_ref().unwrap().name, report["child_path"]);
    let exit = process_frame(&recording.processes, ProcessKind::Exit, child);
    assert_eq!(
        (exit.pid, exit.exit_code, exit.signal),
        (child, Some(7), None)
    );

    // The exec'ing child: path and argv as passed, then the new program runs, recorded.
    let exec_pid = number(report, "exec_pid");
    let exec = recording
        .of_pid(exec_pid)
        .into_iter()
        .find(|e| e.syscall == "execve")
        .expect("an execve");
    let rereads_argv = !recording
        .header
        .as_ref()
        .and_then(|header| header.limits.as_ref())
        .is_some_and(|limits| {
            limits
                .unavailable
                .iter()
                .any(|lacking| lacking.starts_with("argv re-read at exec"))
        });
    if rereads_argv || !exec.path.is_empty() {
        assert_eq!(exec.path, "/bin/true");
        assert_eq!(exec.argv, ["true", "first argument", "zwei ä"]);
        assert_eq!((exec.ret, exec.argv_truncated), (0, false));
    } else {
        // Before Linux 6.10 (no sched_prepare_exec, which the Header names): strings the
        // child had not touched since fork cannot be read at sys_enter; the event says so
        // rather than holding a wrong path or argv.
        assert_eq!(
            (exec.argv.len(), exec.argv_truncated, exec.ret),
            (0, true, 0)
        );
    }
    let loader_open = recording
        .of_pid(exec_pid)
        .into_iter()
        .skip_while(|e| e.syscall != "execve")
        .any(|e| e.syscall.starts_with("open"));
    assert!(loader_open, "the new program's opens are recorded");
    let exit = process_frame(&recording.processes, ProcessKind::Exit, exec_pid);
    assert_eq!((exit.exit_code, exit.signal), (Some(0), None));

    // The child that killed itself.
    let killed = number(report, "killed_pid");
    let exit = process_frame(&recording.processes, ProcessKind::Exit, killed);
    assert_eq!((exit.exit_code, exit.signal), (None, Some(libc::SIGKILL)));

    // The child whose second thread exec'd: the execve, entered under the thread's id,
    // returns under the leader's, which the thread has taken; its stashed arguments follow it.
    let thread_exec_pid = number(report, "thread_exec_pid");
    let execs: Vec<&Event> = recording
        .of_pid(thread_exec_pid)
        .into_iter()
        .filter(|e| e.syscall == "execve")
        .collect();
    if exit_has_group_dead() {
        assert_eq!(execs.len(), 1, "{execs:#?}");
        assert_eq!((execs[0].tid, execs[0].ret), (thread_exec_pid, 0));
        let exit = process_frame(&recording.processes, ProcessKind::Exit, thread_exec_pid);
        assert_eq!((exit.exit_code, exit.signal), (Some(0), None));
    } else {
        // A kernel whose sched_process_exit has no `group_dead` (6.1): the leader's exit
        // stands for the process's (docs/CAPTURE.md, "Kernels"), and the leader, made to
        // exit by the exec, ends the process's recording before the execve returns.
        assert!(execs.is_empty(), "{execs:#?}");
    }

    // And the workload itself, last.
    let exit = process_frame(&recording.processes, ProcessKind::Exit, pid);
    assert_eq!(exit.exit_code, Some(0));
    assert_eq!(
        recording.trailer.as_ref().unwrap().end_reason,
        "target exited"
    );
}

#[test]
fn no_follow_records_the_process_but_not_its_children() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let run = record_tree(work.path(), &["--no-follow"]);
    let (report, recording) = (&run.report, &run.recording);
    let child = number(report, "child_pid");
    let fork = process_frame(&recording.processes, ProcessKind::Fork, child);
    assert!(!fork.followed);
    assert!(
        recording.of_pid(child).is_empty(),
        "the child is not recorded"
    );
    assert!(recording.of_pid(number(report, "exec_pid")).is_empty());
    // Threads are part of the process and still recorded.
    let thread_tid = number(report, "thread_tid");
    assert!(recording.events.iter().any(|e| e.tid == thread_tid));
    assert!(
        !recording
            .header
            .as_ref()
            .unwrap()
            .target
            .as_ref()
            .unwrap()
            .follow
    );
}
