//! Least privilege: once the probes are attached, recorderd gives up every capability it no
//! longer needs, so a bug in the code that parses what other processes do cannot be turned
//! into full root. This module owns the drop and the lists of what each mode keeps; the
//! session and service code decide when to call it.
//!
//! Capabilities are per thread on Linux, so [`keep_only`] refuses to run while the process has
//! more than one thread: a worker thread started earlier would keep everything.
//!
//! What each capability is for was measured on Linux 6.18 as root, with the probes attached,
//! against a target running as uid 65534 and one running as root; docs/SECURITY.md
//! ("Privileges") has the table. Nothing else recorderd does after attaching needs one: the
//! ring buffer and map fds, pidfd_open, signalling its own child, reading /proc/PID/net/*,
//! stat, status, comm and cgroup, and creating, flock-ing and deleting files in its own 0700
//! directory all work with an empty set.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use thiserror::Error;

/// One-shot mode (`recorderd --pid N`, `-- CMD`) after the probes are attached. The ring
/// buffer, the BPF maps and the perf links are reached through file descriptors opened
/// earlier, and the kernel checks capabilities when those are created, not when they are
/// used, so neither CAP_BPF nor CAP_PERFMON is needed any more.
pub const ONE_SHOT_AFTER_ATTACH: &[Capability] = &[
    // Listing /proc/PID/fd of a process owned by another uid: the directory is mode 0500 and
    // owned by that uid, so root without it gets EACCES on the directory itself.
    Capability::CAP_DAC_READ_SEARCH,
    // readlink /proc/PID/fd/N and /proc/PID/exe: the kernel asks
    // ptrace_may_access(PTRACE_MODE_READ), which needs it for another uid's process, a
    // non-dumpable one, and a root process holding capabilities we no longer hold.
    Capability::CAP_SYS_PTRACE,
];

/// Service mode (`recorderd --config FILE`), for the daemon's whole life: it loads and
/// attaches new probes each time someone starts a recording over the control socket.
pub const SERVICE: &[Capability] = &[
    // bpf(2): BTF, maps (the ring buffer among them) and tracing programs.
    Capability::CAP_BPF,
    // perf_event_open(2) for the tracepoints, and the tracing helpers the programs call:
    // with CAP_BPF alone the maps load but the kernel refuses the programs (EPERM).
    Capability::CAP_PERFMON,
    // Reading the fd tables of targets run by other users, as in one-shot mode.
    Capability::CAP_DAC_READ_SEARCH,
    Capability::CAP_SYS_PTRACE,
    // Each recording's ring drain thread runs SCHED_FIFO (session::drain::realtime_for_drain);
    // the recording thread that starts it goes back to the normal policy right after. One-shot
    // mode asks for it before its drop, so it does not keep this. It also brings a
    // `priority = "background"` recording's pipeline back to normal to finish (priority.rs).
    Capability::CAP_SYS_NICE,
];

/// Added to the one-shot set with `--priority background`: the pipeline and its redaction
/// workers come back from SCHED_IDLE to finish the recording, which raises their priority
/// (priority.rs). The service keeps it anyway.
pub const BACKGROUND: &[Capability] = &[Capability::CAP_SYS_NICE];

/// Added to either set while `[storage] reader_group` is set: each new recording file is
/// given that group with fchown (record::dir), and root is not a member of it. Without a
/// reader group nothing is chowned after start, so this is dropped too.
pub const READER_GROUP: &[Capability] = &[Capability::CAP_CHOWN];

/// What to keep in a mode (`ONE_SHOT_AFTER_ATTACH` or `SERVICE`): its set, plus
/// [`READER_GROUP`] when recordings are given a reader group.
pub fn needed(mode: &[Capability], reader_group: bool) -> Vec<Capability> {
    let extra = if reader_group { READER_GROUP } else { &[] };
    mode.iter().chain(extra).copied().collect()
}

#[derive(Debug, Error)]
pub enum PrivilegeError {
    #[error("recorderd has {threads} threads; capabilities can only be dropped while it has one (a bug: drop them before starting the runtime's worker threads)")]
    OtherThreads { threads: usize },
    #[error("{capability} is not in recorderd's permitted set, so it cannot be kept: run recorderd as root or grant it in the unit's CapabilityBoundingSet")]
    NotHeld { capability: Capability },
    #[error("could not change the {set} capability set")]
    Change {
        set: &'static str,
        #[source]
        source: caps::errors::CapsError,
    },
    #[error("could not set no_new_privs")]
    NoNewPrivs(#[source] std::io::Error),
    #[error("could not read /proc/self/status")]
    Status(#[source] std::io::Error),
}

/// Drops every capability not in `keep` from the effective, permitted, inheritable and
/// ambient sets, and from the bounding set when this process may change it (CAP_SETPCAP);
/// then sets no_new_privs. After it neither this process nor anything it executes can get
/// the dropped capabilities back: for root, an exec's permitted set is capped by the old
/// permitted set once no_new_privs is set, and by the bounding set.
pub fn keep_only(keep: &[Capability]) -> Result<(), PrivilegeError> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(PrivilegeError::OtherThreads { threads });
    }
    let keep: HashSet<Capability> = keep.iter().copied().collect();
    let permitted = caps::read(None, CapSet::Permitted).map_err(change("permitted"))?;
    if let Some(&capability) = keep.iter().find(|cap| !permitted.contains(cap)) {
        return Err(PrivilegeError::NotHeld { capability });
    }
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes away below.
    let effective = caps::read(None, CapSet::Effective).map_err(change("effective"))?;
    if effective.contains(&Capability::CAP_SETPCAP) {
        let bounding = caps::read(None, CapSet::Bounding).map_err(change("bounding"))?;
        for &capability in bounding.difference(&keep) {
            caps::drop(None, CapSet::Bounding, capability).map_err(change("bounding"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(change("ambient"))?;
    caps::clear(None, CapSet::Inheritable).map_err(change("inheritable"))?;
    // Effective before permitted: the kernel refuses an effective set larger than permitted.
    caps::set(None, CapSet::Effective, &keep).map_err(change("effective"))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(change("permitted"))?;
    set_no_new_privs()
}

fn change(set: &'static str) -> impl Fn(caps::errors::CapsError) -> PrivilegeError {
    move |source| PrivilegeError::Change { set, source }
}

fn set_no_new_privs() -> Result<(), PrivilegeError> {
    rustix::thread::set_no_new_privs(true).map_err(|errno| PrivilegeError::NoNewPrivs(errno.into()))
}

fn thread_count() -> Result<usize, PrivilegeError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(PrivilegeError::Status)?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::{io::Read, os::fd::FromRawFd};

    use super::*;

    /// The capability masks and no_new_privs of this process, as the kernel reports them.
    #[derive(Debug, PartialEq)]
    struct Status {
        effective: u64,
        permitted: u64,
        inheritable: u64,
        ambient: u64,
        bounding: u64,
        no_new_privs: bool,
    }

    fn status() -> Status {
        let text = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let field = |name: &str| -> &str {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} missing from /proc/self/status"))
                .trim()
        };
        let mask = |name: &str| u64::from_str_radix(field(name), 16).expect("hex mask");
        Status {
            effective: mask("CapEff:"),
            permitted: mask("CapPrm:"),
            inheritable: mask("CapInh:"),
            ambient: mask("CapAmb:"),
            bounding: mask("CapBnd:"),
            no_new_privs: field("NoNewPrivs:") == "1",
        }
    }

    fn mask(capabilities: &[Capability]) -> u64 {
        capabilities
            .iter()
            .map(|cap| cap.bitmask())
            .fold(0, |a, b| a | b)
    }

    /// Runs `body` in a forked child (one thread, so `keep_only` may run and whatever it
    /// drops stays dropped in the child only) and returns what the child wrote.
    fn in_child(body: fn() -> String) -> String {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        // SAFETY: the child only runs `body` (reads /proc, capset, prctl; glibc keeps malloc
        // usable after fork), writes to the pipe and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let report = body();
            // SAFETY: fds[1] is the pipe's write end, report outlives the call.
            unsafe {
                libc::write(fds[1], report.as_ptr().cast(), report.len());
                libc::_exit(0);
            }
        }
        // SAFETY: fds[1] is ours and closed once; fds[0] is handed to the File, which owns it.
        let mut reader = unsafe {
            libc::close(fds[1]);
            std::fs::File::from_raw_fd(fds[0])
        };
        let mut report = String::new();
        reader
            .read_to_string(&mut report)
            .expect("read child report");
        let mut wait_status = 0;
        // SAFETY: pid is our child and wait_status a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut wait_status, 0) }, pid);
        assert!(
            libc::WIFEXITED(wait_status) && libc::WEXITSTATUS(wait_status) == 0,
            "child died: {report}"
        );
        report
    }

    fn outcome<T: std::fmt::Debug>(result: Result<T, PrivilegeError>) -> String {
        match result {
            Ok(_) => format!("{:?}", status()),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn keeping_the_service_set_leaves_exactly_it_everywhere() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let report = in_child(|| outcome(keep_only(SERVICE)));
        if !root {
            // Without root nothing can be kept, and the caller is told which capability.
            assert!(report.starts_with("error: CAP_"), "{report}");
            assert!(
                report.contains("is not in recorderd's permitted set"),
                "{report}"
            );
            return;
        }
        let kept = mask(SERVICE);
        let expected = Status {
            effective: kept,
            permitted: kept,
            inheritable: 0,
            ambient: 0,
            bounding: kept,
            no_new_privs: true,
        };
        assert_eq!(report, format!("{expected:?}"));
    }

    #[test]
    fn keeping_nothing_clears_every_set() {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let report = in_child(|| outcome(keep_only(&[])));
        let before = status();
        let expected = Status {
            effective: 0,
            permitted: 0,
            inheritable: 0,
            ambient: 0,
            // Only a process holding CAP_SETPCAP may shrink its bounding set.
            bounding: if root { 0 } else { before.bounding },
            no_new_privs: true,
        };
        assert_eq!(report, format!("{expected:?}"));
        // The parent (this test process) kept what it had.
        assert_eq!(before.no_new_privs, status().no_new_privs);
    }

    #[test]
    fn a_program_run_after_the_drop_gets_nothing_back() {
        let report = in_child(|| {
            if let Err(error) = keep_only(&[]) {
                return format!("error: {error}");
            }
            // Root running a program normally gets the full bounding set again.
            match std::process::Command::new("grep")
                .args(["-E", "^(CapEff|CapPrm|CapBnd)", "/proc/self/status"])
                .output()
            {
                Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
                Err(error) => format!("error: grep: {error}"),
            }
        });
        let masks: Vec<&str> = report
            .lines()
            .map(|l| l.split_whitespace().last().unwrap_or(""))
            .collect();
        assert_eq!(masks.len(), 3, "{report}");
        assert_eq!(&masks[..2], ["0000000000000000"; 2], "{report}");
    }

    #[test]
    fn a_reader_group_adds_chown_and_nothing_else() {
        assert_eq!(needed(SERVICE, false), SERVICE);
        let with_group = needed(ONE_SHOT_AFTER_ATTACH, true);
        assert_eq!(
            with_group[..ONE_SHOT_AFTER_ATTACH.len()],
            *ONE_SHOT_AFTER_ATTACH
        );
        assert_eq!(
            with_group[ONE_SHOT_AFTER_ATTACH.len()..],
            [Capability::CAP_CHOWN]
        );
    }

    #[test]
    fn a_second_thread_is_refused() {
        let (started, wait) = std::sync::mpsc::channel::<()>();
        let (release, parked) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::spawn(move || {
            started.send(()).unwrap();
            let _ = parked.recv();
        });
        wait.recv().unwrap();
        // The test harness has threads of its own; at least ours and the helper are running.
        let error = keep_only(&[]).expect_err("must refuse with several threads");
        assert!(
            matches!(error, PrivilegeError::OtherThreads { threads } if threads >= 2),
            "{error}"
        );
        release.send(()).unwrap();
        helper.join().unwrap();
    }
}
