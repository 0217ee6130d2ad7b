//! The recorders under comparison: how each is attached to a running process, stopped, and
//! how many events it kept.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use super::Bins;

/// What a recorder is told to capture: recorderd's boundary syscalls, by name, for the
/// tools that take a list.
pub const SYSCALLS: &str =
    "read,write,pread64,pwrite64,readv,writev,preadv,pwritev,preadv2,pwritev2,\
open,openat,openat2,creat,close,socket,connect,bind,listen,accept,accept4,sendto,recvfrom,\
sendmsg,recvmsg,sendmmsg,recvmmsg,shutdown,dup,dup2,dup3,fcntl,rename,renameat,renameat2,\
unlink,unlinkat,truncate,ftruncate,sendfile,copy_file_range,splice,exit,exit_group";

/// strace's scope: its %file and %network classes plus recorderd's descriptor syscalls.
const STRACE_SCOPE: &str = "%file,%network,read,write,pread64,pwrite64,readv,writev,preadv,\
pwritev,preadv2,pwritev2,close,dup,dup2,dup3,fcntl,ftruncate,sendfile,copy_file_range,splice,\
exit,exit_group";

/// recorderd's `--max-payload`: at least the largest payload any workload moves in one call.
pub const MAX_PAYLOAD: &str = "1MiB";
/// bpftrace's string/buffer limit (the most its 0.17 release allows: strings live on the
/// 512-byte BPF stack).
pub const BPFTRACE_STRLEN: &str = "200";

/// The ring-buffer wake-up policy of the floor probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    Adaptive,
    Force,
    NonePolled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracer {
    None,
    Recorderd,
    Strace,
    Perf,
    Bpftrace,
    Floor(Wakeup),
}

impl Tracer {
    pub fn label(self) -> &'static str {
        match self {
            Tracer::None => "untraced",
            Tracer::Recorderd => "recorderd",
            Tracer::Strace => "strace",
            Tracer::Perf => "perf trace",
            Tracer::Bpftrace => "bpftrace",
            Tracer::Floor(Wakeup::Adaptive) => "floor (adaptive wake-up)",
            Tracer::Floor(Wakeup::Force) => "floor (BPF_RB_FORCE_WAKEUP)",
            Tracer::Floor(Wakeup::NonePolled) => "floor (BPF_RB_NO_WAKEUP, 1 ms poll)",
        }
    }

    /// What it captures, for the tables.
    pub fn captures(self) -> &'static str {
        match self {
            Tracer::None => "—",
            Tracer::Recorderd => {
                "same data: every boundary syscall, args, fd → file/peer, payloads up to 1 MiB"
            }
            Tracer::Strace => {
                "same data as text: every syscall in scope, payloads up to 1 MiB (escaped)"
            }
            Tracer::Perf => "less: syscalls and args, no payload bytes",
            Tracer::Bpftrace => {
                "less: syscalls, fd, first 200 B of flat-buffer payloads; none for iovecs"
            }
            Tracer::Floor(_) => "least: read/write payload bytes only, discarded",
        }
    }

    /// The command line, with PID / FILE / DIR placeholders, for the doc.
    pub fn command_line(self) -> String {
        match self {
            Tracer::None => "—".into(),
            Tracer::Recorderd => {
                format!("recorderd --pid PID --output DIR --max-payload {MAX_PAYLOAD}")
            }
            Tracer::Strace => {
                format!("strace -f -p PID -s 1048576 -e trace={STRACE_SCOPE} -o FILE")
            }
            Tracer::Perf => "perf trace -p PID -o FILE -e <recorderd's syscall list>".into(),
            Tracer::Bpftrace => format!(
                "BPFTRACE_STRLEN={BPFTRACE_STRLEN} bpftrace xtask/src/compare/capture.bt PID > FILE"
            ),
            Tracer::Floor(wakeup) => format!(
                "recorder-bench-floor --pid PID --wakeup {}",
                match wakeup {
                    Wakeup::Adaptive => "adaptive",
                    Wakeup::Force => "force",
                    Wakeup::NonePolled => "none",
                }
            ),
        }
    }
}

/// Which recorded events count as the workload's.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// read/write/pread64/pwrite64 on fds 100 and up (the measured descriptors).
    DataFds,
    /// Every event of the target.
    All,
}

const DATA_SYSCALLS: &[&str] = &["read", "write", "pread64", "pwrite64"];

impl Scope {
    fn counts(self, syscall: &str, fd: Option<i64>) -> bool {
        match self {
            Scope::All => true,
            Scope::DataFds => DATA_SYSCALLS.contains(&syscall) && fd.is_some_and(|fd| fd >= 100),
        }
    }
}

/// What one traced run left.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// Events in scope.
    pub events: u64,
    /// Events in scope whose payload was kept whole (recorderd only; others: None).
    pub whole_payloads: Option<u64>,
    /// What the recorder says it lost (records, events or chunks).
    pub lost: u64,
    pub disk_bytes: u64,
    /// CPU time of the recorder's own process (user + system).
    pub cpu_ns: u64,
    pub max_rss_kib: u64,
    /// All events the recorder kept, for CPU per event.
    pub all_events: u64,
    /// The recorder ignored SIGINT and was killed.
    pub killed: bool,
}

/// A recorder attached to a process.
pub struct Attached {
    tracer: Tracer,
    child: Option<Child>,
    dir: PathBuf,
    stdout: PathBuf,
}

pub fn attach(tracer: Tracer, bins: &Bins, pid: u32, dir: &Path) -> Result<Attached> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join("trace.out");
    let stdout = dir.join("tracer.stdout");
    let stderr = dir.join("tracer.stderr");
    let pid_s = pid.to_string();
    let mut command = match tracer {
        Tracer::None => {
            return Ok(Attached {
                tracer,
                child: None,
                dir: dir.to_owned(),
                stdout,
            })
        }
        Tracer::Recorderd => {
            let mut c = Command::new(bins.dir.join("recorderd"));
            c.args(["--pid", &pid_s, "--output"])
                .arg(dir.join("rec"))
                .args(["--max-payload", MAX_PAYLOAD]);
            c
        }
        Tracer::Strace => {
            let mut c = Command::new("strace");
            c.args(["-f", "-p", &pid_s, "-s", "1048576", "-e"])
                .arg(format!("trace={STRACE_SCOPE}"))
                .arg("-o")
                .arg(&out);
            c
        }
        Tracer::Perf => {
            let mut c = Command::new("perf");
            c.args(["trace", "-p", &pid_s, "-o"])
                .arg(&out)
                .args(["-e", SYSCALLS]);
            c
        }
        Tracer::Bpftrace => {
            let script = dir.join("capture.bt");
            std::fs::write(&script, BPFTRACE_SCRIPT)?;
            let mut c = Command::new("bpftrace");
            // Its output goes to stdout, a file: with `-o FILE` bpftrace holds the BEGIN line
            // in a buffer, and the harness waits for that line.
            c.env("BPFTRACE_STRLEN", BPFTRACE_STRLEN)
                .arg(&script)
                .arg(&pid_s);
            c
        }
        Tracer::Floor(wakeup) => {
            let mut c = Command::new(bins.dir.join("recorder-bench-floor"));
            c.args(["--pid", &pid_s, "--wakeup"]).arg(match wakeup {
                Wakeup::Adaptive => "adaptive",
                Wakeup::Force => "force",
                Wakeup::NonePolled => "none",
            });
            c
        }
    };
    let child = command
        .env_remove("LD_LIBRARY_PATH")
        .stdin(Stdio::null())
        .stdout(File::create(if tracer == Tracer::Bpftrace {
            &out
        } else {
            &stdout
        })?)
        .stderr(File::create(&stderr)?)
        .spawn()
        .with_context(|| format!("starting {}", tracer.label()))?;
    let mut attached = Attached {
        tracer,
        child: Some(child),
        dir: dir.to_owned(),
        stdout,
    };
    attached.wait_ready(&out, &stderr)?;
    Ok(attached)
}

impl Attached {
    /// Waits until the recorder says its probes are in (perf trace says nothing: a pause).
    fn wait_ready(&mut self, out: &Path, stderr: &Path) -> Result<()> {
        let (file, marker) = match self.tracer {
            Tracer::Recorderd => (stderr, "recorderd: recording "),
            Tracer::Strace => (stderr, "attached"),
            Tracer::Bpftrace => (out, "bpftrace-ready"),
            Tracer::Floor(_) => (stderr, "floor: attached"),
            Tracer::Perf => {
                // 1.5 s was too short on a loaded machine: runs went by before it attached.
                std::thread::sleep(Duration::from_millis(3000));
                return self.check_alive(stderr);
            }
            Tracer::None => return Ok(()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::fs::read_to_string(file).is_ok_and(|text| text.contains(marker)) {
                return Ok(());
            }
            self.check_alive(stderr)?;
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not attach within 30 s", self.tracer.label())
    }

    fn check_alive(&mut self, stderr: &Path) -> Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited ({status}): {}",
                    self.tracer.label(),
                    std::fs::read_to_string(stderr).unwrap_or_default().trim()
                );
            }
        }
        Ok(())
    }

    /// Stops the recorder once the target is done (or, with `now`, at once: the target goes
    /// on running), and counts what it kept.
    pub fn finish(mut self, bins: &Bins, scope: Scope, now: bool) -> Result<Captured> {
        let Some(mut child) = self.child.take() else {
            return Ok(Captured::default());
        };
        // recorderd, strace and the floor stop when the target exits; bpftrace and perf
        // trace are told to after a moment to drain.
        let stops_itself = matches!(
            self.tracer,
            Tracer::Recorderd | Tracer::Strace | Tracer::Floor(_)
        );
        if now || !stops_itself {
            if !now {
                std::thread::sleep(Duration::from_millis(300));
            }
            let signal = if self.tracer == Tracer::Recorderd {
                libc::SIGTERM
            } else {
                libc::SIGINT
            };
            // SAFETY: signalling a child we spawned and have not reaped.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
        // recorderd and strace must finish on their own (recorderd's detach of ~90
        // tracepoints alone takes seconds); a tool that ignores SIGINT is killed after 30 s
        // and counted from what it wrote.
        let timeout = Duration::from_secs(if stops_itself { 180 } else { 30 });
        let usage = wait_rusage(&mut child, timeout)
            .with_context(|| format!("waiting for {}", self.tracer.label()))?;
        if usage.killed && stops_itself {
            bail!("{} did not finish within {timeout:?}", self.tracer.label());
        }
        let mut captured = match self.tracer {
            Tracer::Recorderd => recorderd_counts(bins, &self.dir.join("rec"), scope)?,
            Tracer::Strace => text_counts(&self.dir.join("trace.out"), scope, parse_strace)?,
            Tracer::Perf => text_counts(&self.dir.join("trace.out"), scope, parse_perf)?,
            Tracer::Bpftrace => text_counts(&self.dir.join("trace.out"), scope, parse_bpftrace)?,
            Tracer::Floor(_) => floor_counts(&self.stdout)?,
            Tracer::None => Captured::default(),
        };
        captured.killed = usage.killed;
        captured.cpu_ns = usage.cpu_ns;
        captured.max_rss_kib = usage.max_rss_kib;
        Ok(captured)
    }
}

pub struct Usage {
    pub cpu_ns: u64,
    pub max_rss_kib: u64,
    /// It was still running after the timeout and was killed.
    pub killed: bool,
}

/// Reaps `child` with wait4 to get its rusage; kills it after `timeout`.
pub fn wait_rusage(child: &mut Child, timeout: Duration) -> Result<Usage> {
    let pid = child.id() as i32;
    let deadline = Instant::now() + timeout;
    let mut killed = false;
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data that wait4 fills.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for our own child, with valid out-pointers.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            if !libc::WIFEXITED(status) && !libc::WIFSIGNALED(status) {
                continue;
            }
            let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
            return Ok(Usage {
                cpu_ns: ns(usage.ru_utime) + ns(usage.ru_stime),
                max_rss_kib: usage.ru_maxrss as u64,
                killed,
            });
        }
        if reaped < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        if Instant::now() > deadline && !killed {
            // SAFETY: killing our own child (reaped by the next wait4).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The value after `"key":` in one line of compact JSON, as a number or a bare string. Keys
/// inside JSON strings are escaped (`\"key\":`), so they never match.
pub fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    if let Some(text) = rest.strip_prefix('"') {
        return text.split('"').next();
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

fn json_u64(line: &str, key: &str) -> u64 {
    json_field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Counts a recordings directory through `recorder export --format jsonl`.
pub fn recorderd_counts(bins: &Bins, dir: &Path, scope: Scope) -> Result<Captured> {
    let mut child = Command::new(bins.dir.join("recorder"))
        .args(["export", "--format", "jsonl"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("running recorder export")?;
    let mut captured = Captured {
        whole_payloads: Some(0),
        ..Captured::default()
    };
    let stdout = child.stdout.take().context("export stdout")?;
    for line in BufReader::with_capacity(1 << 20, stdout).lines() {
        let line = line?;
        match json_field(&line, "type") {
            Some("event") => {
                captured.all_events += 1;
                let syscall = json_field(&line, "syscall").unwrap_or("");
                let fd = json_field(&line, "fd").and_then(|v| v.parse().ok());
                if scope.counts(syscall, fd) {
                    captured.events += 1;
                    let whole = line.contains("\"incomplete\":false")
                        && line.contains("\"truncated\":false");
                    if whole {
                        *captured.whole_payloads.get_or_insert(0) += 1;
                    }
                }
            }
            Some("loss") => {
                captured.lost += json_u64(&line, "syscalls")
                    + json_u64(&line, "payload_chunks")
                    + json_u64(&line, "stash_failures");
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    // Exit 3 is "incomplete"; everything readable was still exported.
    if !status.success() && status.code() != Some(3) {
        bail!("recorder export {} failed ({status})", dir.display());
    }
    captured.disk_bytes = dir_bytes(dir)?;
    Ok(captured)
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// One parsed output line: syscall name and first descriptor argument.
type Parsed<'a> = Option<(&'a str, Option<i64>)>;

fn text_counts(path: &Path, scope: Scope, parse: fn(&str) -> Parsed<'_>) -> Result<Captured> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut captured = Captured {
        disk_bytes: file.metadata()?.len(),
        ..Captured::default()
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut raw = Vec::new();
    while reader.read_until(b'\n', &mut raw)? > 0 {
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim_end();
        if let Some(lost) = lost_count(line) {
            captured.lost += lost;
        } else if let Some((syscall, fd)) = parse(line) {
            captured.all_events += 1;
            if scope.counts(syscall, fd) {
                captured.events += 1;
            }
        }
        raw.clear();
    }
    Ok(captured)
}

/// bpftrace's "Lost N events" and perf's "LOST N events!".
fn lost_count(line: &str) -> Option<u64> {
    let rest = line
        .strip_prefix("Lost ")
        .or_else(|| line.trim_start().strip_prefix("LOST "))?;
    rest.split_whitespace().next()?.parse().ok()
}

fn leading_fd(args: &str) -> Option<i64> {
    let digits: String = args
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// `[PID ]name(fd, ...` — skips exit notes, signals and the second half of split calls.
fn parse_strace(line: &str) -> Parsed<'_> {
    let line = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
    if line.starts_with("+++") || line.starts_with("---") || line.starts_with('<') {
        return None;
    }
    let (name, args) = line.split_once('(')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    Some((name, leading_fd(args)))
}

/// `  0.000 ( 0.045 ms): comm/tid name(fd: 4</path>, ...) = 4`; with `-p` there is no
/// `comm/tid`.
fn parse_perf(line: &str) -> Parsed<'_> {
    let (_, rest) = line.split_once("): ")?;
    let call = match rest.split_once(' ') {
        Some((first, tail)) if !first.contains('(') => tail,
        _ => rest,
    };
    let (name, args) = call.split_once('(')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let fd = args.strip_prefix("fd: ").and_then(leading_fd);
    Some((name, fd))
}

/// Our script's `name fd ...` lines (`probe` prints the whole tracepoint name).
fn parse_bpftrace(line: &str) -> Parsed<'_> {
    let line = line
        .strip_prefix("tracepoint:syscalls:sys_enter_")
        .unwrap_or(line);
    let mut words = line.split(' ');
    let name = words.next()?;
    let fd = words.next()?.parse().ok();
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then_some((name, fd))
}

fn floor_counts(stdout: &Path) -> Result<Captured> {
    let text = std::fs::read_to_string(stdout)?;
    let value = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Captured {
        events: value("records"),
        all_events: value("records"),
        lost: value("losses"),
        ..Captured::default()
    })
}

/// The bpftrace capture: recorderd's data syscalls with the fd and up to BPFTRACE_STRLEN
/// payload bytes (read side at exit, from the buffer address kept at entry), the others with
/// their fd only. `$1` is the target pid.
pub const BPFTRACE_SCRIPT: &str = include_str!("capture.bt");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_tool() {
        assert_eq!(
            parse_strace("1234  write(101, \"abc\", 3) = 3\n"),
            Some(("write", Some(101)))
        );
        assert_eq!(parse_strace("+++ exited with 0 +++"), None);
        assert_eq!(parse_strace("<... read resumed>\"x\", 1) = 1"), None);
        assert_eq!(
            parse_perf("     0.070 ( 0.019 ms): cat/19684 close(fd: 4</etc/locale.alias>) = 0"),
            Some(("close", Some(4)))
        );
        assert_eq!(
            parse_perf("     0.056 ( 0.024 ms): write(fd: 101, buf: 0x55d2, count: 64)    = 64"),
            Some(("write", Some(101)))
        );
        assert_eq!(
            parse_perf("  ? (  ):  ... [continued]: read())   = 3"),
            None
        );
        assert_eq!(
            parse_bpftrace("pwrite64 104 64 {\\x22order"),
            Some(("pwrite64", Some(104)))
        );
        assert_eq!(parse_bpftrace("Attaching 20 probes..."), None);
        assert_eq!(
            parse_bpftrace("tracepoint:syscalls:sys_enter_writev 7"),
            Some(("writev", Some(7)))
        );
        assert_eq!(lost_count("Lost 12 events"), Some(12));
        let line =
            r#"{"fd":100,"payload":{"utf8_preview":"\"fd\":7"},"syscall":"write","type":"event"}"#;
        assert_eq!(json_field(line, "fd"), Some("100"));
        assert_eq!(json_field(line, "syscall"), Some("write"));
        assert_eq!(json_field(line, "type"), Some("event"));
    }
}
