//! What the probes do for a syscall, by class. The daemon fills `CLASSES` (syscall number →
//! class) from the host architecture's numbers, so the probes never hard-code them.

/// Not a boundary syscall: ignored.
pub const NONE: u8 = 0;
/// Arguments and result only (close, dup, socket, listen, shutdown, ...).
pub const PLAIN: u8 = 1;
/// Outgoing payload `arg1[..arg2]`, copied at enter (write, pwrite64, sendto).
pub const OUT_BUF: u8 = 2;
/// Incoming payload `arg1[..ret]`, copied at exit (read, pread64, recvfrom).
pub const IN_BUF: u8 = 3;
/// Path string in arg0 (open, creat, truncate, unlink).
pub const PATH_ARG0: u8 = 4;
/// Path string in arg1 (openat, openat2, unlinkat, renameat).
pub const PATH_ARG1: u8 = 5;
/// Socket address `arg1[..arg2]` passed in (connect, bind).
pub const ADDR_IN: u8 = 6;
/// Socket address the kernel writes to arg1, its length behind arg2 (accept, accept4).
pub const ADDR_OUT: u8 = 7;
/// Outgoing payload in the iovec array `arg1[..arg2]`, copied at enter (writev, pwritev*).
pub const OUT_IOV: u8 = 8;
/// Incoming payload in the iovec array `arg1[..arg2]`, `ret` bytes, copied at exit
/// (readv, preadv*).
pub const IN_IOV: u8 = 9;
/// Outgoing payload in the iovecs of the `struct msghdr` at arg1, copied at enter; its
/// `msg_name` becomes the address (sendmsg).
pub const OUT_MSG: u8 = 10;
/// Incoming payload in the iovecs of the `struct msghdr` at arg1, copied at exit; its
/// `msg_name` becomes the address (recvmsg).
pub const IN_MSG: u8 = 11;
/// Two paths, in arg0 and arg1 (rename).
pub const PATHS_0_1: u8 = 12;
/// Two paths, in arg1 and arg3 (renameat, renameat2).
pub const PATHS_1_3: u8 = 13;
/// Never returns (exit, exit_group): recorded at enter, with the status in arg0.
pub const EXIT: u8 = 14;
/// Creates a task; its flags in arg0 tell a thread from a process (clone).
pub const CLONE: u8 = 15;
/// Creates a task; its flags are the first field of the `struct clone_args` at arg0 (clone3).
pub const CLONE3: u8 = 16;
/// Replaces the program: path in arg0, argv in arg1, both read at enter because a successful
/// exec leaves nothing of the old memory to read at exit (execve).
pub const EXEC: u8 = 17;
/// As [`EXEC`] with the path in arg1 and argv in arg2 (execveat).
pub const EXECAT: u8 = 18;
/// Two new descriptors, written as `int[2]` to arg0 (pipe, pipe2).
pub const FD_PAIR0: u8 = 19;
/// Two new descriptors, written as `int[2]` to arg3 (socketpair).
pub const FD_PAIR3: u8 = 20;
