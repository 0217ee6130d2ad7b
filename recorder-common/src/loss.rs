//! Indexes into the per-CPU `LOSSES` array: what was lost when the ring buffer was full.

/// A whole syscall record could not be written.
pub const SYSCALL: u32 = 0;
/// A payload chunk could not be written (its syscall is marked `PAYLOAD_LOST`).
pub const DATA: u32 = 1;
/// A syscall could not be stashed at enter, so its exit was not recorded.
pub const STASH: u32 = 2;
/// A process record (fork, exit, signal, exec) could not be written.
pub const PROCESS: u32 = 3;
/// A payload was not copied (from some chunk on) because the ring had passed its high-water
/// mark; its syscall record was still written, marked `PAYLOAD_SHED`.
pub const SHED: u32 = 4;
/// Not a count of records: the bytes moved by payload syscalls (reads, writes, sends,
/// receives) whose syscall record was lost, so that bytes kept + bytes lost = bytes moved
/// holds even for them.
pub const LOST_SYSCALL_BYTES: u32 = 5;
/// A syscall's stack could not be taken or written (`--stacks`); the syscall itself was
/// recorded, marked `STACK_LOST`.
pub const STACK: u32 = 6;
/// A recorded process made a 32-bit (compat, i386) syscall, which was skipped: its number
/// and arguments follow an ABI the probes do not read. Only those whose number is also a
/// 64-bit boundary syscall's reach the check, so this is a floor, not a total.
pub const COMPAT: u32 = 7;
/// Entries in the array.
pub const COUNT: u32 = 8;
