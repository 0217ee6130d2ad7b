//! Indexes into the per-CPU `LOSSES` array: what was lost when the ring buffer was full.

/// A whole syscall record could not be written.
pub const SYSCALL: u32 = 0;
/// A payload chunk could not be written (its syscall is marked `PAYLOAD_LOST`).
pub const DATA: u32 = 1;
/// A syscall could not be stashed at enter, so its exit was not recorded.
pub const STASH: u32 = 2;
/// A process record (fork, exit, signal, exec) could not be written.
pub const PROCESS: u32 = 3;
/// Entries in the array.
pub const COUNT: u32 = 4;
