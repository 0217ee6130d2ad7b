//! Helpers for the privileged integration tests: find the built binaries, refuse loudly when
//! probes cannot load, run recorderd against a target, and read what it recorded.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Real servers: free ports, readiness, a PostgreSQL cluster.
pub mod servers;
pub mod views;
/// An S3-compatible server (moto) and a gate in front of it, for the upload tests.
pub mod s3;

use recorder_proto::v1::{frame::Body, Event, Header, Loss, Process, Stack, Trailer};
use recorder_store::{Keyring, SegmentReader};

/// How long any one step may take before the test fails instead of hanging.
pub static STEP_TIMEOUT: std::sync::LazyLock<Duration> =
    std::sync::LazyLock::new(|| Duration::from_secs(60) * time_scale());

/// Writes `DIR/patient.toml`, a recorderd config whose redaction time bound is a minute, and
/// returns its path. A payload whose last line has no end stays undecided until its stream
/// closes, and the default 200 ms bound masks it wherever the workload runs slowly (an
/// emulated kernel under `cargo xtask vm-test`); tests about something else than that bound
/// record with this.
pub fn patient_redaction_config(dir: &Path) -> PathBuf {
    let config = dir.join("patient.toml");
    std::fs::write(&config, "[redaction.hold_back]\nmillis = 60000\n").expect("write config");
    config
}

/// `RECORDER_TEST_TIME_SCALE`, a whole factor for the tests' failure deadlines: `cargo xtask
/// vm-test` sets it when the guest runs emulated (TCG), where everything takes several times
/// as long. 1 when unset. It lengthens bounds on failure only, never a wait.
pub fn time_scale() -> u32 {
    std::env::var("RECORDER_TEST_TIME_SCALE")
        .ok()
        .and_then(|scale| scale.parse().ok())
        .filter(|&scale| scale >= 1)
        .unwrap_or(1)
}

/// Fails the test unless this process can load probes. `RECORDER_SKIP_PRIVILEGED=1` (never set
/// in CI) turns that into a loud skip for a laptop without root; the function then returns
/// false and the caller returns.
pub fn require_privileges() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("RECORDER_SKIP_PRIVILEGED").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: privileged test needs root (RECORDER_SKIP_PRIVILEGED=1)");
        return false;
    }
    panic!("privileged tests load eBPF probes and need root: run `sudo -E cargo xtask test`");
}

/// A binary built by this workspace (`cargo xtask test` builds them before the tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --exclude recorder-ebpf --bins` (cargo xtask test does)",
        path.display()
    );
    path
}

/// A running recorderd whose stderr is followed line by line.
pub struct Recorder {
    pub child: Child,
    stderr: mpsc::Receiver<String>,
    pub stderr_seen: Vec<String>,
}

impl Recorder {
    /// Starts `recorderd ARGS` and waits until it says it is recording.
    pub fn start(args: &[&str]) -> Recorder {
        Recorder::start_with_env(args, &[])
    }

    /// As [`Recorder::start`], with extra environment variables (a spawned command inherits
    /// them: how tests hand clients a password without putting it on a command line).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Recorder {
        let mut recorder = Recorder::spawn(args, env);
        recorder.wait_for_line("recorderd: recording ");
        recorder
    }

    /// Starts `recorderd ARGS` without waiting for anything it says.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Recorder {
        let mut child = Command::new(binary("recorderd"))
            .args(args)
            .envs(env.iter().copied())
            // cargo points LD_LIBRARY_PATH at target/; spawned commands should see a clean one.
            .env_remove("LD_LIBRARY_PATH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn recorderd");
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Recorder {
            child,
            stderr,
            stderr_seen: Vec::new(),
        }
    }

    /// Waits for a stderr line starting with `prefix`; fails with everything seen if recorderd
    /// ends or the step times out first.
    pub fn wait_for_line(&mut self, prefix: &str) -> String {
        self.wait_for(prefix, |line| line.starts_with(prefix))
    }

    /// As [`Recorder::wait_for_line`], for a line containing `needle` anywhere (a log line
    /// starts with its timestamp and level).
    pub fn wait_for_line_containing(&mut self, needle: &str) -> String {
        self.wait_for(needle, |line| line.contains(needle))
    }

    fn wait_for(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        loop {
            match self.stderr.recv_timeout(*STEP_TIMEOUT) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "recorderd never printed `{what}`; stderr: {:#?}",
                    self.stderr_seen
                ),
            }
        }
    }

    /// The pid of the command recorderd spawned, from its "recording `CMD` (pid N)" line.
    pub fn spawned_pid(&self) -> i32 {
        let started = self
            .stderr_seen
            .iter()
            .find(|line| line.starts_with("recorderd: recording "))
            .expect("recorderd said it is recording");
        started
            .rsplit_once("(pid ")
            .and_then(|(_, rest)| rest.split(')').next())
            .and_then(|pid| pid.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {started:?}"))
    }

    /// Stops recorderd with SIGTERM; returns the recording path it printed.
    pub fn stop(self) -> PathBuf {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.finish()
    }

    /// Waits for recorderd to stop by itself; returns the recording path it printed.
    pub fn finish(mut self) -> PathBuf {
        let status = wait_timeout(&mut self.child, *STEP_TIMEOUT);
        self.stderr_seen.extend(self.stderr.try_iter());
        assert!(
            status.success(),
            "recorderd failed ({status}); stderr: {:#?}",
            self.stderr_seen
        );
        let mut stdout = String::new();
        std::io::Read::read_to_string(
            self.child.stdout.as_mut().expect("stdout piped"),
            &mut stdout,
        )
        .expect("stdout");
        let path = stdout
            .lines()
            .find_map(|line| line.strip_prefix("recording: "))
            .unwrap_or_else(|| panic!("recorderd printed no recording path; stdout: {stdout}"));
        PathBuf::from(path)
    }
}

/// Waits for a child, failing the test after `timeout` instead of hanging.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    watched(child.id(), timeout, || (child.wait().expect("wait"), ())).0
}

/// Waits for a child as [`wait_timeout`] does; also returns its peak resident set size in
/// bytes (`wait4`'s `ru_maxrss`).
pub fn wait_with_peak_rss(child: &mut Child, timeout: Duration) -> (ExitStatus, u64) {
    use std::os::unix::process::ExitStatusExt;
    let pid = child.id() as i32;
    watched(child.id(), timeout, || {
        let mut status = 0;
        // SAFETY: rusage is plain data, filled in by wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child, with valid out-pointers.
        while unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::Interrupted,
                "wait4: {error}"
            );
        }
        // ru_maxrss is in KiB.
        (ExitStatus::from_raw(status), usage.ru_maxrss as u64 * 1024)
    })
}

/// Runs `wait`, which waits for process `pid`; kills that process if it takes over
/// `timeout`, and then fails the test.
fn watched<T>(
    pid: u32,
    timeout: Duration,
    wait: impl FnOnce() -> (ExitStatus, T),
) -> (ExitStatus, T) {
    let (tx, rx) = mpsc::channel();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(timeout).is_err() {
            // SAFETY: signalling a child we spawned.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    let waited = wait();
    let _ = tx.send(());
    watchdog.join().expect("watchdog");
    assert!(
        waited.0.signal_is_not_kill(),
        "process {pid} did not finish within {timeout:?}"
    );
    waited
}

/// A 32-bit program: with an argument it runs at once, without one it first waits for a
/// line on stdin (so that recorderd can attach by pid). It opens, reads, writes and closes:
/// as i386 numbers, openat (295), read (3) and close (6) are preadv, close and lstat in the
/// 64-bit table, so a misread shows as events.
const COMPAT_C: &str = r#"
#include <fcntl.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char buf[64];
    if (argc < 2 && read(0, buf, sizeof buf) <= 0) return 1;
    int fd = openat(AT_FDCWD, "/dev/zero", O_RDONLY);
    for (int i = 0; i < 4; i++) read(fd, buf, sizeof buf);
    close(fd);
    write(1, "compat done\n", 12);
    return 0;
}
"#;

/// Builds [`COMPAT_C`] as a static i386 program `compat32` in `dir`.
pub fn build_compat_program(dir: &Path) -> PathBuf {
    let source = dir.join("compat.c");
    std::fs::write(&source, COMPAT_C).unwrap();
    let program = dir.join("compat32");
    let output = Command::new("gcc")
        .args(["-m32", "-static", "-O1", "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .expect("run gcc");
    assert!(
        output.status.success(),
        "gcc -m32 -static failed (gcc-multilib missing? `cargo xtask setup` installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    program
}

trait NotKilled {
    fn signal_is_not_kill(&self) -> bool;
}

impl NotKilled for ExitStatus {
    fn signal_is_not_kill(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal() != Some(libc::SIGKILL)
    }
}

/// The segment files in `dir`, in name order (which is start-time and sequence order);
/// the audit log and hold files beside them are left out.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rcd"))
        .collect();
    paths.sort();
    paths
}

/// Everything in one segment, read through the production reader.
#[derive(Debug, Default)]
pub struct Recording {
    pub header: Option<Header>,
    pub events: Vec<Event>,
    pub losses: Vec<Loss>,
    pub processes: Vec<Process>,
    pub trailer: Option<Trailer>,
    /// Stacks by id (`--stacks`).
    pub stacks: HashMap<u32, Stack>,
    /// Stack ids events referred to before the segment held that stack (always a bug).
    pub stacks_used_before_written: Vec<u32>,
}

impl Recording {
    pub fn read(path: &Path) -> Recording {
        Recording::read_with(path, &Keyring::default())
    }

    /// Reads a segment, sealed or not, opening a sealed one with `keyring`.
    pub fn read_with(path: &Path, keyring: &Keyring) -> Recording {
        let mut reader = SegmentReader::open_with(path, keyring).unwrap_or_else(|e| panic!("{e}"));
        let mut recording = Recording::default();
        while let Some(body) = reader.next_body().unwrap_or_else(|e| panic!("{e}")) {
            match body {
                Body::Header(header) => recording.header = Some(*header),
                Body::Event(event) => {
                    if event.stack_id != 0 && !recording.stacks.contains_key(&event.stack_id) {
                        recording.stacks_used_before_written.push(event.stack_id);
                    }
                    recording.events.push(*event);
                }
                Body::Loss(loss) => recording.losses.push(*loss),
                Body::Process(process) => recording.processes.push(*process),
                Body::Trailer(trailer) => recording.trailer = Some(*trailer),
                Body::Stack(stack) => {
                    recording.stacks.insert(stack.id, *stack);
                }
            }
        }
        recording
    }

    /// The first process the Header names as targeted (the spawned command, or `--pid`).
    pub fn first_target(&self) -> u32 {
        let target = self.header.as_ref().and_then(|h| h.target.as_ref());
        target.expect("a Header with a target").pids[0]
    }

    /// Events of process `pid`, in recorded order.
    pub fn of_pid(&self, pid: u32) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|event| event.pid == pid)
            .collect()
    }
}

/// The events of `segment` up to its end, or up to a torn tail: one still being written, or
/// a killed writer's.
pub fn readable_events(segment: &Path) -> Vec<Event> {
    let mut reader = SegmentReader::open(segment).unwrap_or_else(|e| panic!("{e}"));
    let mut events = Vec::new();
    while let Ok(Some(body)) = reader.next_body() {
        if let Body::Event(event) = body {
            events.push(*event);
        }
    }
    events
}

/// The payload bytes of one direction of `events`, in recorded order.
pub fn payload_bytes<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    direction: recorder_proto::v1::payload::Direction,
) -> Vec<u8> {
    events
        .into_iter()
        .filter_map(|e| e.payload.as_ref())
        .filter(|p| p.direction() == direction)
        .flat_map(|p| p.data.iter().copied())
        .collect()
}

/// Every byte a segment holds after its plain preamble, decompressed: what a reader with the
/// file — and no tool of ours — would see.
pub fn decompressed_segment(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read segment");
    zstd::stream::decode_all(&bytes[16..]).expect("a zstd stream after the preamble")
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Parses the workload's `key=value` report.
pub fn parse_report(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Starts recorderd (`--output OUTPUT OPTIONS...`) spawning `recorder-workload busy`, which
/// writes numbered lines to a file beside OUTPUT for up to 30 s (times `time_scale()`).
pub fn record_busy(output: &Path, options: &[&str]) -> Recorder {
    let data = output.with_file_name("busy.txt");
    let workload = binary("recorder-workload");
    let mut args = vec!["--output", output.to_str().expect("UTF-8 path")];
    args.extend_from_slice(options);
    args.extend_from_slice(&[
        "--",
        workload.to_str().expect("UTF-8 path"),
        "busy",
        data.to_str().expect("UTF-8 path"),
    ]);
    Recorder::start(&args)
}

/// The writer closes a zstd frame once it is a second old, checked every 250 ms: a crash
/// loses at most this much of the busy workload's writes.
pub const MAX_LOST_WINDOW: Duration = Duration::from_millis(1500);

/// Whether `event` is one of the busy workload's `seq N` writes.
pub fn is_busy_write(event: &Event) -> bool {
    event.syscall == "write"
        && event
            .payload
            .as_ref()
            .is_some_and(|p| p.data.starts_with(b"seq "))
}

/// Asserts that `writes`, the busy workload's writes read back after a kill at `killed_at`
/// (CLOCK_MONOTONIC), are a gapless prefix of what it wrote, ending at most
/// `MAX_LOST_WINDOW` before the kill; returns how long before the kill the last one was.
pub fn assert_recent_gapless_prefix(writes: &[Event], killed_at: u64) -> Duration {
    let last = writes.last().expect("events before the kill are readable");
    let lost_ns = killed_at.saturating_sub(last.mono_ns);
    assert!(
        lost_ns <= MAX_LOST_WINDOW.as_nanos() as u64,
        "last readable event is {} ms before the kill",
        lost_ns / 1_000_000
    );
    for (expected, event) in writes.iter().enumerate() {
        let line = String::from_utf8_lossy(&event.payload.as_ref().unwrap().data).into_owned();
        assert_eq!(line, format!("seq {expected}\n"));
    }
    Duration::from_nanos(lost_ns)
}

/// Records the busy workload (`recorderd --output OUTPUT OPTIONS...`), lets it make 20000
/// writes, then SIGKILLs recorderd — no trailer, an open zstd frame — and the workload.
/// Returns CLOCK_MONOTONIC at the kill.
pub fn sigkill_busy_recording(output: &Path, options: &[&str]) -> u64 {
    let mut recorder = record_busy(output, options);
    let workload_pid = recorder.spawned_pid();
    // Let it record for a while: several seconds of events, several closed zstd frames.
    recorder.wait_for_line("workload: 20000 writes");
    let killed_at = recorder_store::clock::monotonic_ns();
    recorder.child.kill().unwrap();
    recorder.child.wait().unwrap();
    // SAFETY: the workload is our grandchild; it would otherwise write for 30 s (times the time scale).
    unsafe { libc::kill(workload_pid, libc::SIGKILL) };
    killed_at
}

/// What a gated workload run left behind.
pub struct GatedRun {
    pub pid: u32,
    /// The recording's (first) segment file.
    pub path: PathBuf,
    pub report: HashMap<String, String>,
    pub recording: Recording,
}

/// Runs `recorder-workload ARGS` (a mode that waits for a line on stdin), attaches recorderd
/// to it by pid, lets it go, and returns its report and what was recorded.
pub fn record_gated_workload(args: &[&str], output: &Path) -> GatedRun {
    record_gated_workload_with(args, output, &[], &Keyring::default())
}

/// `record_gated_workload` with more recorderd OPTIONS, reading the recording with `keyring`.
pub fn record_gated_workload_with(
    args: &[&str],
    output: &Path,
    options: &[&str],
    keyring: &Keyring,
) -> GatedRun {
    use std::io::{Read, Write};
    let mut workload = Command::new(binary("recorder-workload"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn recorder-workload");
    let pid = workload.id();
    let pid_text = pid.to_string();
    let mut recorder_args = vec![
        "--pid",
        &pid_text,
        "--output",
        output.to_str().expect("UTF-8 path"),
    ];
    recorder_args.extend_from_slice(options);
    let recorder = Recorder::start(&recorder_args);
    // recorderd is attached: let the workload run its script.
    workload
        .stdin
        .take()
        .expect("stdin piped")
        .write_all(b"go\n")
        .expect("signal the workload");
    let mut stdout = String::new();
    workload
        .stdout
        .take()
        .expect("stdout piped")
        .read_to_string(&mut stdout)
        .expect("workload report");
    assert!(
        wait_timeout(&mut workload, *STEP_TIMEOUT).success(),
        "workload failed"
    );
    let path = recorder.finish();
    GatedRun {
        pid,
        recording: Recording::read_with(&path, keyring),
        path,
        report: parse_report(&stdout),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_parsing() {
        let report = super::parse_report("pid=4\npath=/tmp/a=b\n");
        assert_eq!(report["path"], "/tmp/a=b");
        assert_eq!(super::unhex("00ff41"), vec![0, 255, 65]);
    }
}
