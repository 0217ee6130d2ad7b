//! Attaching each recorder to a running process, waiting until its probes are in, stopping
//! it and reaping it with its CPU time and peak RSS; the counting is `count`'s.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use super::{
    count::{
        floor_counts, parse_bpftrace, parse_perf, parse_strace, recorderd_counts, text_counts,
    },
    Captured, Scope, Tracer, Wakeup, BPFTRACE_SCRIPT, BPFTRACE_STRLEN, MAX_PAYLOAD, STRACE_SCOPE,
    SYSCALLS,
};
use crate::compare::Bins;

/// A recorder attached to a process.
pub struct Attached {
    tracer: Tracer,
    child: Option<Child>,
    dir: PathBuf,
    stdout: PathBuf,
    /// CPU the recorder had used when it said it was attached: its start-up.
    startup_cpu_ns: u64,
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
                startup_cpu_ns: 0,
            })
        }
        Tracer::Recorderd | Tracer::RecorderdStacks | Tracer::RecorderdBackground => {
            let mut c = Command::new(&bins.recorderd);
            c.args(["--pid", &pid_s, "--output"])
                .arg(dir.join("rec"))
                .args(["--max-payload", MAX_PAYLOAD]);
            if tracer == Tracer::RecorderdStacks {
                c.arg("--stacks");
            }
            if tracer == Tracer::RecorderdBackground {
                c.args(["--priority", "background"]);
            }
            c
        }
        Tracer::Neighbour => {
            let mut c = Command::new(&bins.recorderd);
            c.arg("--output").arg(dir.join("rec")).args([
                "--max-payload",
                MAX_PAYLOAD,
                "--",
                "sleep",
                "3600",
            ]);
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
            c.arg("--object")
                .arg(&bins.floor_object)
                .args(["--pid", &pid_s, "--wakeup"])
                .arg(match wakeup {
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
        startup_cpu_ns: 0,
    };
    attached.wait_ready(&out, &stderr)?;
    if let Some(child) = &attached.child {
        attached.startup_cpu_ns = cpu_so_far(child.id()).unwrap_or(0);
    }
    Ok(attached)
}

impl Attached {
    /// Waits until the recorder says its probes are in (perf trace says nothing: a pause).
    fn wait_ready(&mut self, out: &Path, stderr: &Path) -> Result<()> {
        let (file, marker) = match self.tracer {
            Tracer::Recorderd
            | Tracer::RecorderdStacks
            | Tracer::RecorderdBackground
            | Tracer::Neighbour => (stderr, "recorderd: recording "),
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
    /// The recorder's pid, if it runs as a process of its own.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn finish(mut self, bins: &Bins, scope: Scope, now: bool) -> Result<Captured> {
        let Some(mut child) = self.child.take() else {
            return Ok(Captured::default());
        };
        // recorderd, strace and the floor stop when the target exits; bpftrace and perf
        // trace are told to after a moment to drain.
        let stops_itself = matches!(
            self.tracer,
            Tracer::Recorderd
                | Tracer::RecorderdStacks
                | Tracer::RecorderdBackground
                | Tracer::Strace
                | Tracer::Floor(_)
        );
        if now || !stops_itself {
            if !now && self.tracer != Tracer::Neighbour {
                std::thread::sleep(Duration::from_millis(300));
            }
            let signal = if self.tracer.records_workload() || self.tracer == Tracer::Neighbour {
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
            Tracer::Recorderd
            | Tracer::RecorderdStacks
            | Tracer::RecorderdBackground
            | Tracer::Neighbour => recorderd_counts(bins, &self.dir.join("rec"), scope)?,
            Tracer::Strace => text_counts(&self.dir.join("trace.out"), scope, parse_strace)?,
            Tracer::Perf => text_counts(&self.dir.join("trace.out"), scope, parse_perf)?,
            Tracer::Bpftrace => text_counts(&self.dir.join("trace.out"), scope, parse_bpftrace)?,
            Tracer::Floor(_) => floor_counts(&self.stdout)?,
            Tracer::None => Captured::default(),
        };
        captured.killed = usage.killed;
        // Per-event cost counts from the attach on; loading probes (recorderd's verifier
        // time, bpftrace's compile) is reported apart as start-up.
        captured.startup_cpu_ns = self.startup_cpu_ns.min(usage.cpu_ns);
        captured.cpu_ns = usage.cpu_ns - captured.startup_cpu_ns;
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

/// User + system CPU `pid` has used so far, all its threads' (those that ended too), to the
/// nanosecond: the process's CPU-time clock. /proc/PID/stat counts whole clock ticks (10 ms
/// here) and truncates, which added 5 ms on average to every "after attach" figure.
fn cpu_so_far(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: a valid out-pointer; the call only looks the process up.
    if unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) } != 0 {
        return None;
    }
    // SAFETY: timespec is plain data that clock_gettime fills.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a clock id from clock_getcpuclockid and a valid out-pointer.
    if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
        return None;
    }
    Some(now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
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
