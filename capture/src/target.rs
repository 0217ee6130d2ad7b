//! The processes to record: checking pids, watching them exit (pidfd), and spawning a command
//! held just before exec until the probes are targeting it.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, OwnedFd},
    path::{Component, Path, PathBuf},
};

use rustix::{
    io::Errno,
    pipe::{pipe_with, PipeFlags},
    process::{kill_process, pidfd_open, waitpid, Pid, PidfdFlags, Signal, WaitOptions},
};
use thiserror::Error;

use crate::CgroupScope;

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("no process with pid {pid}: check it with `ps -p {pid}`")]
    NoSuchProcess { pid: u32 },
    #[error("pid {pid} is recorderd itself; recorderd never records itself")]
    SelfTarget { pid: u32 },
    #[error("process {pid} exited before recording started")]
    ExitedEarly { pid: u32 },
    #[error("cannot watch process {pid}: {source}")]
    Watch { pid: u32, source: io::Error },
    #[error("the command to record has an argument with a NUL byte")]
    NulInCommand,
    /// Names the program only: its arguments may hold secrets.
    #[error("cannot start `{program}`: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("--cgroup {path}: {reason}")]
    BadCgroup { path: String, reason: String },
}

/// Refuses a pid that does not exist or is our own.
pub fn check_pid(pid: u32) -> Result<(), TargetError> {
    if pid == std::process::id() {
        return Err(TargetError::SelfTarget { pid });
    }
    if pid == 0 || !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Err(TargetError::NoSuchProcess { pid });
    }
    Ok(())
}

/// Whether the file at `path` is a 32-bit ELF program (i386 on x86_64). The probes skip
/// and count such a program's syscalls rather than read them with the 64-bit ABI
/// (docs/CAPTURE.md, "32-bit programs"). False when it cannot be read.
pub fn is_32_bit_program(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 5];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut head));
    read.is_ok() && head[..4] == *b"\x7fELF" && head[4] == 1
}

/// The file `program` (a command's argv[0]) names, found the way `execvp` finds it.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether `pid` is still running: false once it is gone or a zombie (exited, unreaped).
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state letter follows the command name, which is in parentheses and may hold any byte.
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X' | 'x'))
}

/// Running processes (not us) whose command name is `name`.
pub fn pids_with_comm(name: &str) -> Vec<u32> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .flatten()
        .filter(|process| process.pid as u32 != std::process::id())
        .filter(|process| process.stat().is_ok_and(|stat| stat.comm == name))
        .map(|process| process.pid as u32)
        .collect()
}

/// A cgroup v2 directory, named by its path under the cgroup2 mount
/// (`/system.slice/app.service`) or by its full path (`/sys/fs/cgroup/system.slice/...`).
pub fn resolve_cgroup(path: &str) -> Result<CgroupScope, TargetError> {
    let bad = |reason: &str| TargetError::BadCgroup {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let root = cgroup2_mount().ok_or_else(|| bad("no cgroup v2 filesystem is mounted"))?;
    let relative = Path::new(path)
        .strip_prefix(&root)
        .unwrap_or(Path::new(path));
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    if relative
        .components()
        .any(|part| !matches!(part, Component::Normal(_)))
    {
        return Err(bad("use a plain path without `..`"));
    }
    let dir = root.join(relative);
    let metadata = std::fs::metadata(&dir).map_err(|_| {
        bad(&format!(
            "{} does not exist; list cgroups with `systemd-cgls` or `ls {}`",
            dir.display(),
            root.display()
        ))
    })?;
    if !metadata.is_dir() || !dir.join("cgroup.procs").exists() {
        return Err(bad(&format!("{} is not a cgroup directory", dir.display())));
    }
    Ok(CgroupScope {
        // On cgroup v2 a cgroup directory's inode number is the kernel's cgroup id.
        id: std::os::unix::fs::MetadataExt::ino(&metadata),
        level: relative.components().count() as u32,
    })
}

/// Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mount_point = mount.split(' ').nth(4)?;
        (fs.split(' ').next()? == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// A pidfd: readable once the process has exited.
pub fn watch(pid: u32) -> Result<OwnedFd, TargetError> {
    let Some(process) = Pid::from_raw(pid as i32) else {
        return Err(TargetError::ExitedEarly { pid });
    };
    pidfd_open(process, PidfdFlags::empty()).map_err(|errno| match errno {
        Errno::SRCH => TargetError::ExitedEarly { pid },
        errno => TargetError::Watch {
            pid,
            source: errno.into(),
        },
    })
}

/// A child forked for `recorderd -- CMD`, stopped before exec until [`Spawned::release`].
pub struct Spawned {
    pub pid: u32,
    /// argv[0], for error messages.
    program: String,
    go: Option<OwnedFd>,
    exec_status: OwnedFd,
}

/// Forks a child that waits on a pipe and then execs `argv`; so the recording can start
/// before the command's first instruction (the dynamic loader's first openat included).
pub fn spawn(argv: &[String]) -> Result<Spawned, TargetError> {
    let program = argv.first().cloned().unwrap_or_default();
    let c_args: Vec<CString> = argv
        .iter()
        .map(|arg| CString::new(arg.as_bytes()).map_err(|_| TargetError::NulInCommand))
        .collect::<Result<_, _>>()?;
    let mut c_argv: Vec<*const libc::c_char> = c_args.iter().map(|arg| arg.as_ptr()).collect();
    c_argv.push(std::ptr::null());
    let spawn_error = |source| TargetError::Spawn {
        program: program.clone(),
        source,
    };
    let (go_read, go_write) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| spawn_error(e.into()))?;
    let (status_read, status_write) =
        pipe_with(PipeFlags::CLOEXEC).map_err(|e| spawn_error(e.into()))?;
    // The child works with raw numbers only: nothing it touches may allocate or drop.
    let (child_go, child_status) = (go_read.as_raw_fd(), status_write.as_raw_fd());

    // SAFETY: between fork and exec the child only calls async-signal-safe functions (read,
    // write, close, execvp, _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(spawn_error(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: see above; the child never returns from this block.
        unsafe {
            libc::close(go_write.as_raw_fd());
            libc::close(status_read.as_raw_fd());
            let mut byte = 0u8;
            let got = loop {
                let n = libc::read(child_go, (&mut byte as *mut u8).cast(), 1);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            if got == 1 {
                libc::execvp(c_argv[0], c_argv.as_ptr());
                // exec failed: tell the parent why through the CLOEXEC status pipe.
                let errno = *libc::__errno_location();
                libc::write(child_status, (&errno as *const i32).cast(), 4);
            }
            libc::_exit(127);
        }
    }
    // The child's ends are the child's now.
    drop((go_read, status_write));
    Ok(Spawned {
        pid: pid as u32,
        program,
        go: Some(go_write),
        exec_status: status_read,
    })
}

/// Waits (up to a second) until the forked child is blocked in its `read` of the go pipe.
/// Targeting it only then keeps that read, which began before the target was set, out of the
/// recording: the recording starts with the command's own execve.
pub fn wait_until_parked(pid: u32) {
    let path = format!("/proc/{pid}/syscall");
    let read_nr = libc::SYS_read.to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        // /proc/PID/syscall: "<nr> <args...>" while blocked in a syscall, "running" otherwise.
        match std::fs::read_to_string(&path) {
            Ok(line) if line.split_whitespace().next() == Some(read_nr.as_str()) => return,
            Ok(_) => std::thread::sleep(std::time::Duration::from_micros(100)),
            Err(_) => return,
        }
    }
}

impl Spawned {
    /// Lets the child exec, and reports whether the exec worked.
    pub fn release(&mut self) -> Result<(), TargetError> {
        let spawn_error = |source| TargetError::Spawn {
            program: self.program.clone(),
            source,
        };
        let go = self.go.take().expect("released once");
        match rustix::io::write(&go, &[1]) {
            Ok(1) => {}
            Ok(_) => return Err(spawn_error(io::ErrorKind::WriteZero.into())),
            Err(errno) => return Err(spawn_error(errno.into())),
        }
        drop(go);
        // EOF (0 bytes) means the exec succeeded; otherwise the child sent its errno.
        let mut errno = [0u8; 4];
        if let Ok(4) = rustix::io::read(&self.exec_status, &mut errno) {
            let errno = i32::from_ne_bytes(errno);
            return Err(spawn_error(io::Error::from_raw_os_error(errno)));
        }
        Ok(())
    }

    /// Asks the command to end (SIGTERM), as recording stops before it did.
    pub fn terminate(&self) {
        if let Some(pid) = Pid::from_raw(self.pid as i32) {
            let _ = kill_process(pid, Signal::TERM);
        }
    }

    /// Whether the child was let go to exec its command.
    pub fn released(&self) -> bool {
        self.go.is_none()
    }

    /// Reaps the child; returns its exit code, or 128 + signal.
    pub fn wait(&self) -> Option<i32> {
        let pid = Pid::from_raw(self.pid as i32)?;
        let (_, status) = waitpid(Some(pid), WaitOptions::empty()).ok()??;
        match status.exit_status() {
            Some(code) => Some(code),
            None => Some(128 + status.terminating_signal().unwrap_or(0)),
        }
    }
}

impl Drop for Spawned {
    /// A child never released (setup failed) is told to give up: closing the pipe makes it
    /// exit without running the command unrecorded.
    fn drop(&mut self) {
        if self.go.take().is_some() {
            self.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_and_own_pids() {
        assert!(matches!(
            check_pid(std::process::id()),
            Err(TargetError::SelfTarget { .. })
        ));
        assert!(matches!(
            check_pid(0),
            Err(TargetError::NoSuchProcess { .. })
        ));
        assert!(matches!(
            check_pid(u32::MAX - 1),
            Err(TargetError::NoSuchProcess { .. })
        ));
        assert!(check_pid(1).is_ok());
    }

    #[test]
    fn running_means_alive_and_not_a_zombie() {
        assert!(is_running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait for the exit without reaping: until it is reaped, the child is a zombie.
        // SAFETY: waitid writes only into the siginfo it is given.
        let waited = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        assert_eq!(waited, 0);
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!is_running(pid));
        child.wait().unwrap();
        assert!(!is_running(pid));
    }

    #[test]
    fn no_process_runs_a_made_up_program() {
        assert!(pids_with_comm("no-such-comm-x").is_empty());
    }

    #[test]
    fn cgroups_resolve_to_their_id_and_depth() {
        let Some(root) = cgroup2_mount() else {
            panic!("this test needs a cgroup v2 hierarchy mounted (see /proc/self/mountinfo)");
        };
        let top = resolve_cgroup("/").unwrap();
        assert_eq!(top.level, 0);
        let by_full_path = resolve_cgroup(root.to_str().unwrap()).unwrap();
        assert_eq!(by_full_path, top);
        assert!(resolve_cgroup("/no/such/cgroup").is_err());
        let error = resolve_cgroup("/../etc").unwrap_err().to_string();
        assert!(error.contains("without `..`"), "{error}");
    }

    #[test]
    fn spawned_child_runs_only_after_release() {
        let mut child = spawn(&["true".to_owned()]).unwrap();
        let pidfd = watch(child.pid).unwrap();
        child.release().unwrap();
        drop(pidfd);
        assert_eq!(child.wait(), Some(0));
    }

    #[test]
    fn exec_failure_is_reported() {
        let mut child = spawn(&["/nonexistent/binary".to_owned()]).unwrap();
        let error = child.release().unwrap_err().to_string();
        assert!(error.contains("No such file"), "{error}");
        assert_eq!(child.wait(), Some(127));
    }
}
