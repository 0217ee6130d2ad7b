//! `EventHeader::kind` values. Ranges: process 1.., syscalls 100... A retired number is never
//! reused.

/// A completed boundary syscall: [`crate::SyscallRecord`] plus an aux string or address.
pub const SYSCALL: u32 = 100;
/// One chunk of a syscall's payload: [`crate::DataRecord`] plus bytes. Chunks of a syscall
/// come before its `SYSCALL` record, from the same tid.
pub const DATA: u32 = 101;

/// A process lifecycle event from the sched/signal tracepoints: [`crate::ProcessRecord`].
pub const PROCESS: u32 = 102;

/// Never written by the probes: the daemon's drain puts this [`crate::DataRecord`] header,
/// without its bytes, in place of a DATA chunk it did not copy because its backlog was over
/// budget (the event is then recorded with its payload marked shed).
pub const SHED_DATA: u32 = 103;

/// The user stack of the next `SYSCALL` record from the same tid: [`crate::StackRecord`]
/// plus `frames` entries of [`crate::StackFrame`] (written only with `--stacks`).
pub const STACK: u32 = 104;
/// As `STACK`, for a stack this process has sent before (the same `StackRecord::key`): the
/// record alone, without frames, which the probe did not read again.
pub const STACK_SEEN: u32 = 105;
