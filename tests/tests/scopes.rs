//! Targets chosen by command name (`--comm`) and by cgroup (`--cgroup`). See: issue #3.
//!
//! Both record processes recorderd was not told the pid of, and only those: a twin workload
//! outside the scope runs alongside and must not appear.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
};

use recorder_proto::v1::process::Kind as ProcessKind;
use recorder_tests::{binary, require_privileges, wait_timeout, Recorder, Recording, STEP_TIMEOUT};

/// `PROGRAM burst 3`, waiting for its go line: after it, an open of /dev/null and three 64-byte
/// writes, then `done`, then it waits for stdin to close.
struct Burst {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Burst {
    fn start(program: &Path) -> Burst {
        let mut child = Command::new(program)
            .args(["burst", "3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Burst { child, stdout }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it make its syscalls, waits for them, and lets it exit.
    fn run_to_end(mut self) {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "done\n");
        drop(stdin);
        assert!(wait_timeout(&mut self.child, *STEP_TIMEOUT).success());
    }
}

/// The burst's three writes, as recorded for `pid`.
fn recorded_writes(recording: &Recording, pid: u32) -> Vec<(String, usize)> {
    recording
        .of_pid(pid)
        .iter()
        .filter(|e| e.syscall == "write" && e.fd != 1)
        .map(|e| {
            let resource = e.resource.as_ref().map_or("", |r| r.name.as_str());
            (
                resource.to_owned(),
                e.payload.as_ref().map_or(0, |p| p.data.len()),
            )
        })
        .collect()
}

fn three_writes_to_dev_null() -> Vec<(String, usize)> {
    vec![("/dev/null".to_owned(), 64); 3]
}

#[test]
fn comm_records_running_and_later_processes_of_that_name_only() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // A copy of the workload under a name no other process has.
    let name = format!("rcdcomm{}", std::process::id() % 100_000);
    let program = work.path().join(&name);
    std::fs::copy(binary("recorder-workload"), &program).unwrap();

    let already_running = Burst::start(&program);
    let other_name = Burst::start(&binary("recorder-workload"));
    // It runs (blocked on stdin) before recorderd starts: found by its name in /proc.
    wait_until_blocked(already_running.pid());
    let output = work.path().join("recordings");
    let recorder = Recorder::start(&["--comm", &name, "--output", output.to_str().unwrap()]);
    let (first, other) = (already_running.pid(), other_name.pid());
    already_running.run_to_end();
    other_name.run_to_end();
    // Started after recorderd: picked up when it execs.
    let later = Burst::start(&program);
    let second = later.pid();
    later.run_to_end();
    let recording = Recording::read(&recorder.stop());

    assert_eq!(
        recorded_writes(&recording, first),
        three_writes_to_dev_null()
    );
    assert_eq!(
        recorded_writes(&recording, second),
        three_writes_to_dev_null()
    );
    assert!(
        recording.of_pid(other).is_empty(),
        "another program is not recorded"
    );
    let attach = recording
        .processes
        .iter()
        .find(|p| p.kind() == ProcessKind::Attach)
        .expect("an attach frame for the later process");
    assert_eq!((attach.pid, attach.reason.as_str()), (second, "comm"));
    // The later process's first recorded syscall is its new program's first.
    let first_event = recording.of_pid(second)[0];
    assert!(
        first_event.syscall != "execve",
        "recorded from after the exec"
    );
    assert_eq!(recording.header.unwrap().target.unwrap().comm, name);
    assert_eq!(recording.trailer.unwrap().end_reason, "terminated");
}

/// Waits until `pid` sits in a read (on its stdin), so it has exec'd and named itself.
fn wait_until_blocked(pid: u32) {
    let deadline = std::time::Instant::now() + *STEP_TIMEOUT;
    loop {
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        if syscall.split(' ').next() == Some(&libc::SYS_read.to_string()) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pid} never blocked in read"
        );
        std::thread::yield_now();
    }
}

/// A cgroup v2 directory made for one test and removed after it.
struct TestCgroup {
    dir: PathBuf,
    /// Its path below the cgroup2 mount, as `--cgroup` takes it.
    name: String,
}

impl TestCgroup {
    fn create() -> TestCgroup {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = mountinfo
            .lines()
            .find_map(|line| {
                let (mount, fs) = line.split_once(" - ")?;
                fs.starts_with("cgroup2 ")
                    .then(|| mount.split(' ').nth(4).unwrap().to_owned())
            })
            .expect("a cgroup v2 hierarchy (see /proc/self/mountinfo)");
        let name = format!("recorderd-test-{}", std::process::id());
        let dir = Path::new(&root).join(&name);
        std::fs::create_dir(&dir).unwrap();
        TestCgroup {
            dir,
            name: format!("/{name}"),
        }
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn cgroup_records_the_processes_inside_it_only() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let cgroup = TestCgroup::create();
    let inside = Burst::start(&binary("recorder-workload"));
    let outside = Burst::start(&binary("recorder-workload"));
    cgroup.add(inside.pid());
    let output = work.path().join("recordings");
    let recorder = Recorder::start(&[
        "--cgroup",
        &cgroup.name,
        "--output",
        output.to_str().unwrap(),
    ]);
    let (inside_pid, outside_pid) = (inside.pid(), outside.pid());
    inside.run_to_end();
    outside.run_to_end();
    let recording = Recording::read(&recorder.stop());

    assert_eq!(
        recorded_writes(&recording, inside_pid),
        three_writes_to_dev_null()
    );
    assert!(
        recording.of_pid(outside_pid).is_empty(),
        "outside the cgroup"
    );
    let pids: std::collections::HashSet<u32> = recording.events.iter().map(|e| e.pid).collect();
    assert!(
        !pids.contains(&std::process::id()),
        "the test itself is outside"
    );
    assert_eq!(
        recording.header.unwrap().target.unwrap().cgroup,
        cgroup.name
    );
}
