//! The boundary syscalls recorderd traces: name, number on this architecture, what the probes
//! do for it (its class) and which descriptor it acts on.

use recorder_common::class;

/// Which descriptor an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdSource {
    /// The first argument (read, write, close, connect, ...).
    Arg0,
    /// The result, when it is not an error (open, socket, accept, ...).
    Result,
    /// None (rename, unlink, exit, ...).
    Nothing,
}

#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    pub name: &'static str,
    pub nr: i64,
    /// Arguments the syscall takes; the probes read six, and the rest are not its own.
    pub nargs: usize,
    pub class: u8,
    pub fd: FdSource,
}

const fn sc(name: &'static str, nr: i64, nargs: usize, class: u8, fd: FdSource) -> Syscall {
    Syscall {
        name,
        nr,
        nargs,
        class,
        fd,
    }
}

use FdSource::{Arg0, Nothing, Result};

/// Every traced syscall. Entries whose tracepoint the kernel lacks (say, `open` on arm64) are
/// skipped at attach time.
pub static SYSCALLS: &[Syscall] = &[
    #[cfg(target_arch = "x86_64")]
    sc("open", libc::SYS_open, 3, class::PATH_ARG0, Result),
    #[cfg(target_arch = "x86_64")]
    sc("creat", libc::SYS_creat, 2, class::PATH_ARG0, Result),
    sc("openat", libc::SYS_openat, 4, class::PATH_ARG1, Result),
    sc("openat2", libc::SYS_openat2, 4, class::PATH_ARG1, Result),
    sc("read", libc::SYS_read, 3, class::IN_BUF, Arg0),
    sc("pread64", libc::SYS_pread64, 4, class::IN_BUF, Arg0),
    sc("write", libc::SYS_write, 3, class::OUT_BUF, Arg0),
    sc("pwrite64", libc::SYS_pwrite64, 4, class::OUT_BUF, Arg0),
    sc("close", libc::SYS_close, 1, class::PLAIN, Arg0),
    sc("socket", libc::SYS_socket, 3, class::PLAIN, Result),
    sc("connect", libc::SYS_connect, 3, class::ADDR_IN, Arg0),
    sc("bind", libc::SYS_bind, 3, class::ADDR_IN, Arg0),
    sc("listen", libc::SYS_listen, 2, class::PLAIN, Arg0),
    sc("accept", libc::SYS_accept, 3, class::ADDR_OUT, Result),
    sc("accept4", libc::SYS_accept4, 4, class::ADDR_OUT, Result),
    sc("sendto", libc::SYS_sendto, 6, class::OUT_BUF, Arg0),
    sc("recvfrom", libc::SYS_recvfrom, 6, class::IN_BUF, Arg0),
    sc("shutdown", libc::SYS_shutdown, 2, class::PLAIN, Arg0),
    sc("readv", libc::SYS_readv, 3, class::IN_IOV, Arg0),
    sc("writev", libc::SYS_writev, 3, class::OUT_IOV, Arg0),
    sc("preadv", libc::SYS_preadv, 5, class::IN_IOV, Arg0),
    sc("pwritev", libc::SYS_pwritev, 5, class::OUT_IOV, Arg0),
    sc("preadv2", libc::SYS_preadv2, 6, class::IN_IOV, Arg0),
    sc("pwritev2", libc::SYS_pwritev2, 6, class::OUT_IOV, Arg0),
    sc("sendmsg", libc::SYS_sendmsg, 3, class::OUT_MSG, Arg0),
    sc("recvmsg", libc::SYS_recvmsg, 3, class::IN_MSG, Arg0),
    // Batches of messages: recorded with their arguments and result, without payloads.
    sc("sendmmsg", libc::SYS_sendmmsg, 4, class::PLAIN, Arg0),
    sc("recvmmsg", libc::SYS_recvmmsg, 5, class::PLAIN, Arg0),
    sc("dup", libc::SYS_dup, 1, class::PLAIN, Arg0),
    #[cfg(target_arch = "x86_64")]
    sc("dup2", libc::SYS_dup2, 2, class::PLAIN, Arg0),
    sc("dup3", libc::SYS_dup3, 3, class::PLAIN, Arg0),
    sc("fcntl", libc::SYS_fcntl, 3, class::PLAIN, Arg0),
    #[cfg(target_arch = "x86_64")]
    sc("rename", libc::SYS_rename, 2, class::PATHS_0_1, Nothing),
    #[cfg(target_arch = "x86_64")]
    sc("renameat", libc::SYS_renameat, 4, class::PATHS_1_3, Nothing),
    sc(
        "renameat2",
        libc::SYS_renameat2,
        5,
        class::PATHS_1_3,
        Nothing,
    ),
    #[cfg(target_arch = "x86_64")]
    sc("unlink", libc::SYS_unlink, 1, class::PATH_ARG0, Nothing),
    sc("unlinkat", libc::SYS_unlinkat, 3, class::PATH_ARG1, Nothing),
    sc("truncate", libc::SYS_truncate, 2, class::PATH_ARG0, Nothing),
    sc("ftruncate", libc::SYS_ftruncate, 2, class::PLAIN, Arg0),
    // Kernel-side copies: recorded with their arguments and result; the bytes never pass
    // through the process's memory, so there is no payload to capture.
    sc("sendfile", libc::SYS_sendfile, 4, class::PLAIN, Arg0),
    sc(
        "copy_file_range",
        libc::SYS_copy_file_range,
        6,
        class::PLAIN,
        Arg0,
    ),
    sc("splice", libc::SYS_splice, 6, class::PLAIN, Arg0),
    #[cfg(target_arch = "x86_64")]
    sc("pipe", libc::SYS_pipe, 1, class::FD_PAIR0, Nothing),
    sc("pipe2", libc::SYS_pipe2, 2, class::FD_PAIR0, Nothing),
    sc(
        "socketpair",
        libc::SYS_socketpair,
        4,
        class::FD_PAIR3,
        Nothing,
    ),
    // Process lifecycle. The fork and exit tracepoints (see `capture`) follow children and
    // see exits; these records show the calls themselves, with the child's pid as result.
    sc("clone", libc::SYS_clone, 5, class::CLONE, Nothing),
    sc("clone3", libc::SYS_clone3, 2, class::CLONE3, Nothing),
    #[cfg(target_arch = "x86_64")]
    sc("fork", libc::SYS_fork, 0, class::PLAIN, Nothing),
    #[cfg(target_arch = "x86_64")]
    sc("vfork", libc::SYS_vfork, 0, class::PLAIN, Nothing),
    sc("execve", libc::SYS_execve, 3, class::EXEC, Nothing),
    sc("execveat", libc::SYS_execveat, 5, class::EXECAT, Nothing),
    sc("exit", libc::SYS_exit, 1, class::EXIT, Nothing),
    sc("exit_group", libc::SYS_exit_group, 1, class::EXIT, Nothing),
];

/// The syscall with number `nr`, if it is one we trace. Called for every event, so it is a
/// table lookup rather than a search of [`SYSCALLS`].
pub fn by_nr(nr: u32) -> Option<&'static Syscall> {
    static BY_NR: std::sync::OnceLock<Vec<Option<&'static Syscall>>> = std::sync::OnceLock::new();
    let table = BY_NR.get_or_init(|| {
        let mut table = vec![None; recorder_common::MAX_SYSCALL_NR as usize];
        for syscall in SYSCALLS {
            table[syscall.nr as usize] = Some(syscall);
        }
        table
    });
    table.get(nr as usize).copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_fit_the_class_table() {
        let mut seen = std::collections::HashSet::new();
        for syscall in SYSCALLS {
            assert!(seen.insert(syscall.nr), "{} listed twice", syscall.name);
            assert!((syscall.nr as u32) < recorder_common::MAX_SYSCALL_NR);
            assert_ne!(syscall.class, class::NONE);
        }
    }

    #[test]
    fn lookup_by_number() {
        assert_eq!(by_nr(libc::SYS_openat as u32).unwrap().name, "openat");
        assert!(by_nr(libc::SYS_getpid as u32).is_none());
    }
}
