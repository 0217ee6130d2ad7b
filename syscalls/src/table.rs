//! The one table of traced syscalls. Each row says, for one syscall: its number on this
//! architecture, the arguments it takes, what the probes copy for it (its kernel class),
//! which descriptor its event is about, what it does to descriptors or to its process,
//! which payload stream it feeds, which boundary it belongs to, and how the timeline shows
//! it. The fd table, the redaction bridge, the process tracker, the timeline, `inspect
//! --kind` and `export` all read these rows; none of them matches syscall names.

use recorder_common::class;
use recorder_proto::v1::{resource::Kind, Event};

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

/// What a successful call does to the process's descriptors, or to the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Leaves descriptors and the process as they were.
    Unchanged,
    /// The result is a new descriptor for the file at the event's path.
    Opens,
    /// The result is a new socket of the family and type in arguments 0 and 1.
    NewSocket,
    /// The result is a new connection on the listening socket in argument 0.
    Accepts,
    /// The result is a new descriptor for what argument 0 refers to.
    Dups,
    /// Like `Dups`, when argument 1 is F_DUPFD or F_DUPFD_CLOEXEC (fcntl).
    DupsOnDupfd,
    /// Two new descriptors, the ends of a pipe (read end first).
    MakesPipe,
    /// Two new descriptors, a connected socket pair.
    MakesSocketPair,
    /// Sets the peer address of the socket in argument 0 (also while in progress).
    Connects,
    /// Sets the local address of the socket in argument 0.
    Binds,
    /// Says the local address of the socket in argument 0 (getsockname): its result.
    NamesLocal,
    /// Says the peer address of the socket in argument 0 (getpeername): its result.
    NamesPeer,
    /// Ends the descriptor in argument 0 and the payload streams on it.
    Closes,
    /// Replaces the program; the process lives on.
    Execs,
    /// Ends the calling thread with the status in argument 0.
    ExitsThread,
    /// Ends every thread of the process with the status in argument 0.
    ExitsGroup,
}

/// Which direction of its descriptor's byte stream a call's payload belongs to: redaction
/// joins the pieces of one (process, descriptor, direction) stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// No payload.
    None,
    /// Bytes the process received (read, recvfrom, ...).
    In,
    /// Bytes the process sent (write, sendto, ...).
    Out,
}

/// The boundary a syscall belongs to when its descriptor does not say (`inspect --kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boundary {
    File,
    Net,
    Process,
}

/// How the timeline shows an event besides its time, process and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The descriptor, its address or resource, and the result.
    Descriptor,
    /// The path, the open flags in this argument (if it has them), and the new descriptor.
    Open { flags_arg: Option<usize> },
    /// The program and its argv.
    Exec,
    /// The exit status.
    Exit,
    /// The two new descriptors.
    Pair,
    /// The new socket's family and type (arguments 0 and 1) and its descriptor.
    Socket,
}

#[derive(Clone, Copy, Debug)]
pub struct Syscall {
    pub name: &'static str,
    pub nr: i64,
    /// Arguments the syscall takes; the probes read six, and the rest are not its own.
    pub nargs: usize,
    /// What the probes copy for it (`recorder_common::class`).
    pub class: u8,
    pub fd: FdSource,
    pub effect: Effect,
    /// Follows from the class: every payload-copying class has one direction.
    pub stream: Stream,
    pub boundary: Boundary,
    pub view: View,
}

/// A row for a file syscall with no effect on descriptors; the builders below say the rest.
const fn row(name: &'static str, nr: i64, nargs: usize, class: u8) -> Syscall {
    let stream = match class {
        class::IN_BUF | class::IN_IOV | class::IN_MSG => Stream::In,
        class::OUT_BUF | class::OUT_IOV | class::OUT_MSG => Stream::Out,
        _ => Stream::None,
    };
    Syscall {
        name,
        nr,
        nargs,
        class,
        fd: FdSource::Nothing,
        effect: Effect::Unchanged,
        stream,
        boundary: Boundary::File,
        view: View::Descriptor,
    }
}

impl Syscall {
    const fn on_arg0(self) -> Self {
        Syscall {
            fd: FdSource::Arg0,
            ..self
        }
    }

    const fn on_result(self) -> Self {
        Syscall {
            fd: FdSource::Result,
            ..self
        }
    }

    const fn effect(self, effect: Effect) -> Self {
        Syscall { effect, ..self }
    }

    const fn net(self) -> Self {
        Syscall {
            boundary: Boundary::Net,
            ..self
        }
    }

    const fn process(self) -> Self {
        Syscall {
            boundary: Boundary::Process,
            ..self
        }
    }

    const fn view(self, view: View) -> Self {
        Syscall { view, ..self }
    }

    const fn opens(self, flags_arg: Option<usize>) -> Self {
        self.on_result()
            .effect(Effect::Opens)
            .view(View::Open { flags_arg })
    }
}

use libc as nr;
use Effect::*;

/// Every traced syscall. Entries whose tracepoint the kernel lacks (say, `open` on arm64) are
/// skipped at attach time.
pub static SYSCALLS: &[Syscall] = &[
    #[cfg(target_arch = "x86_64")]
    row("open", nr::SYS_open, 3, class::PATH_ARG0).opens(Some(1)),
    #[cfg(target_arch = "x86_64")]
    row("creat", nr::SYS_creat, 2, class::PATH_ARG0).opens(None),
    row("openat", nr::SYS_openat, 4, class::PATH_ARG1).opens(Some(2)),
    row("openat2", nr::SYS_openat2, 4, class::PATH_ARG1).opens(None),
    row("read", nr::SYS_read, 3, class::IN_BUF).on_arg0(),
    row("pread64", nr::SYS_pread64, 4, class::IN_BUF).on_arg0(),
    row("write", nr::SYS_write, 3, class::OUT_BUF).on_arg0(),
    row("pwrite64", nr::SYS_pwrite64, 4, class::OUT_BUF).on_arg0(),
    row("close", nr::SYS_close, 1, class::PLAIN)
        .on_arg0()
        .effect(Closes),
    row("socket", nr::SYS_socket, 3, class::PLAIN)
        .on_result()
        .effect(NewSocket)
        .net()
        .view(View::Socket),
    row("connect", nr::SYS_connect, 3, class::ADDR_IN)
        .on_arg0()
        .effect(Connects)
        .net(),
    row("bind", nr::SYS_bind, 3, class::ADDR_IN)
        .on_arg0()
        .effect(Binds)
        .net(),
    row("listen", nr::SYS_listen, 2, class::PLAIN)
        .on_arg0()
        .net(),
    row("accept", nr::SYS_accept, 3, class::ADDR_OUT)
        .on_result()
        .effect(Accepts)
        .net(),
    row("accept4", nr::SYS_accept4, 4, class::ADDR_OUT)
        .on_result()
        .effect(Accepts)
        .net(),
    row("sendto", nr::SYS_sendto, 6, class::OUT_BUF)
        .on_arg0()
        .net(),
    row("recvfrom", nr::SYS_recvfrom, 6, class::IN_BUF)
        .on_arg0()
        .net(),
    // The address the kernel gave a socket (its local port after connect), read at exit
    // like accept's.
    row("getsockname", nr::SYS_getsockname, 3, class::ADDR_OUT)
        .on_arg0()
        .effect(NamesLocal)
        .net(),
    row("getpeername", nr::SYS_getpeername, 3, class::ADDR_OUT)
        .on_arg0()
        .effect(NamesPeer)
        .net(),
    row("shutdown", nr::SYS_shutdown, 2, class::PLAIN)
        .on_arg0()
        .net(),
    row("readv", nr::SYS_readv, 3, class::IN_IOV).on_arg0(),
    row("writev", nr::SYS_writev, 3, class::OUT_IOV).on_arg0(),
    row("preadv", nr::SYS_preadv, 5, class::IN_IOV).on_arg0(),
    row("pwritev", nr::SYS_pwritev, 5, class::OUT_IOV).on_arg0(),
    row("preadv2", nr::SYS_preadv2, 6, class::IN_IOV).on_arg0(),
    row("pwritev2", nr::SYS_pwritev2, 6, class::OUT_IOV).on_arg0(),
    row("sendmsg", nr::SYS_sendmsg, 3, class::OUT_MSG)
        .on_arg0()
        .net(),
    row("recvmsg", nr::SYS_recvmsg, 3, class::IN_MSG)
        .on_arg0()
        .net(),
    // Batches of messages: recorded with their arguments and result, without payloads.
    row("sendmmsg", nr::SYS_sendmmsg, 4, class::PLAIN)
        .on_arg0()
        .net(),
    row("recvmmsg", nr::SYS_recvmmsg, 5, class::PLAIN)
        .on_arg0()
        .net(),
    row("dup", nr::SYS_dup, 1, class::PLAIN)
        .on_arg0()
        .effect(Dups),
    #[cfg(target_arch = "x86_64")]
    row("dup2", nr::SYS_dup2, 2, class::PLAIN)
        .on_arg0()
        .effect(Dups),
    row("dup3", nr::SYS_dup3, 3, class::PLAIN)
        .on_arg0()
        .effect(Dups),
    row("fcntl", nr::SYS_fcntl, 3, class::PLAIN)
        .on_arg0()
        .effect(DupsOnDupfd),
    #[cfg(target_arch = "x86_64")]
    row("rename", nr::SYS_rename, 2, class::PATHS_0_1),
    #[cfg(target_arch = "x86_64")]
    row("renameat", nr::SYS_renameat, 4, class::PATHS_1_3),
    row("renameat2", nr::SYS_renameat2, 5, class::PATHS_1_3),
    #[cfg(target_arch = "x86_64")]
    row("unlink", nr::SYS_unlink, 1, class::PATH_ARG0),
    row("unlinkat", nr::SYS_unlinkat, 3, class::PATH_ARG1),
    row("truncate", nr::SYS_truncate, 2, class::PATH_ARG0),
    row("ftruncate", nr::SYS_ftruncate, 2, class::PLAIN).on_arg0(),
    // Kernel-side copies: recorded with their arguments and result; the bytes never pass
    // through the process's memory, so there is no payload to capture.
    row("sendfile", nr::SYS_sendfile, 4, class::PLAIN).on_arg0(),
    row("copy_file_range", nr::SYS_copy_file_range, 6, class::PLAIN).on_arg0(),
    row("splice", nr::SYS_splice, 6, class::PLAIN).on_arg0(),
    #[cfg(target_arch = "x86_64")]
    row("pipe", nr::SYS_pipe, 1, class::FD_PAIR0)
        .effect(MakesPipe)
        .view(View::Pair),
    row("pipe2", nr::SYS_pipe2, 2, class::FD_PAIR0)
        .effect(MakesPipe)
        .view(View::Pair),
    row("socketpair", nr::SYS_socketpair, 4, class::FD_PAIR3)
        .effect(MakesSocketPair)
        .net()
        .view(View::Pair),
    // Process lifecycle. The fork and exit tracepoints (see recorder-capture) follow
    // children and see exits; these records show the calls themselves, with the child's pid
    // as result.
    row("clone", nr::SYS_clone, 5, class::CLONE).process(),
    row("clone3", nr::SYS_clone3, 2, class::CLONE3).process(),
    #[cfg(target_arch = "x86_64")]
    row("fork", nr::SYS_fork, 0, class::PLAIN).process(),
    #[cfg(target_arch = "x86_64")]
    row("vfork", nr::SYS_vfork, 0, class::PLAIN).process(),
    row("execve", nr::SYS_execve, 3, class::EXEC)
        .effect(Execs)
        .process()
        .view(View::Exec),
    row("execveat", nr::SYS_execveat, 5, class::EXECAT)
        .effect(Execs)
        .process()
        .view(View::Exec),
    row("exit", nr::SYS_exit, 1, class::EXIT)
        .effect(ExitsThread)
        .process()
        .view(View::Exit),
    row("exit_group", nr::SYS_exit_group, 1, class::EXIT)
        .effect(ExitsGroup)
        .process()
        .view(View::Exit),
];

/// The TLS library calls the uprobes record as plaintext, as rows like a syscall's: their
/// numbers are `recorder_common::tls`'s (above every syscall number), their first argument
/// is the connection's descriptor, and their payload is plaintext. Not in [`SYSCALLS`]:
/// nothing attaches a tracepoint for them.
pub static TLS_CALLS: [Syscall; recorder_common::tls::FUNCTIONS.len()] = {
    let mut rows = [row("", 0, 0, class::NONE); recorder_common::tls::FUNCTIONS.len()];
    let mut i = 0;
    while i < rows.len() {
        let function = &recorder_common::tls::FUNCTIONS[i];
        let class = if function.out {
            class::OUT_BUF
        } else {
            class::IN_BUF
        };
        rows[i] = row(function.name, function.nr as i64, 4, class)
            .on_arg0()
            .net();
        i += 1;
    }
    rows
};

/// The syscall (or TLS call) with number `nr`, if it is one we trace. Called for every
/// event, so it is a table lookup rather than a search of [`SYSCALLS`].
pub fn by_nr(nr: u32) -> Option<&'static Syscall> {
    if nr >= recorder_common::tls::NR_BASE {
        return TLS_CALLS.get((nr - recorder_common::tls::NR_BASE) as usize);
    }
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

/// The syscall a recorded event names. Recordings carry names (numbers differ between
/// architectures), so readers look rows up this way.
pub fn by_name(name: &str) -> Option<&'static Syscall> {
    SYSCALLS
        .iter()
        .chain(&TLS_CALLS)
        .find(|syscall| syscall.name == name)
}

/// The boundary a recorded event belongs to: a process call's is the process; otherwise a
/// call on a socket is a network one whatever its name (read, write, ...), and the rest
/// follow their row.
pub fn boundary_of(event: &Event) -> Boundary {
    let row = by_name(&event.syscall).map_or(Boundary::File, |syscall| syscall.boundary);
    let on_socket = event
        .resource
        .as_ref()
        .is_some_and(|resource| resource.kind() == Kind::Socket);
    match row {
        Boundary::File if on_socket => Boundary::Net,
        row => row,
    }
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
    fn lookup_by_number_and_name() {
        assert_eq!(by_nr(libc::SYS_openat as u32).unwrap().name, "openat");
        assert!(by_nr(libc::SYS_getpid as u32).is_none());
        assert_eq!(by_name("accept4").unwrap().effect, Effect::Accepts);
        assert!(by_name("getpid").is_none());
    }

    #[test]
    fn rows_agree_with_themselves() {
        for syscall in SYSCALLS {
            // A call that makes a descriptor says so through its result.
            if matches!(syscall.effect, Opens | NewSocket | Accepts) {
                assert_eq!(syscall.fd, FdSource::Result, "{}", syscall.name);
            }
            // A call that acts on a descriptor names it in argument 0.
            if matches!(
                syscall.effect,
                Dups | DupsOnDupfd | Connects | Binds | Closes
            ) {
                assert_eq!(syscall.fd, FdSource::Arg0, "{}", syscall.name);
            }
            // Every payload belongs to a descriptor's stream.
            if syscall.stream != Stream::None {
                assert_eq!(syscall.fd, FdSource::Arg0, "{}", syscall.name);
            }
            if matches!(syscall.effect, Execs | ExitsThread | ExitsGroup) {
                assert_eq!(syscall.boundary, Boundary::Process, "{}", syscall.name);
            }
        }
    }
}
