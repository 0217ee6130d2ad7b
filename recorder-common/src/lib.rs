//! The kernel/user ABI of recorderd: the records the eBPF programs write into the `EVENTS`
//! ring buffer, the maps and globals both sides name, and the capture limits.
//!
//! Everything here is `#[repr(C)]` with fixed-width fields so the two sides agree byte for
//! byte; decoding into owned types is the daemon's job (`recorder_daemon::event`).

#![no_std]

/// What the probes do for a syscall (its class).
pub mod class;
/// Record kinds in the ring buffer.
pub mod kind;
/// Indexes of the per-CPU loss counters.
pub mod loss;
/// The records themselves and the per-thread stash.
pub mod record;
/// TLS library calls recorded as plaintext (uprobes).
pub mod tls;

pub use record::{
    DataRecord, EventHeader, ProcessRecord, SentStack, StackFrame, StackRecord, Stash,
    SyscallRecord,
};

/// Ring buffer all records go through (one buffer keeps a single global order).
pub const EVENTS_MAP: &str = "EVENTS";
/// tgid → 1 for every process being recorded.
pub const TARGETS_MAP: &str = "TARGETS";
/// syscall number → [`class`] value; 0 means "not a boundary syscall".
pub const CLASSES_MAP: &str = "CLASSES";
/// Per-CPU counters of records that could not be written, indexed by [`loss`] kind.
pub const LOSSES_MAP: &str = "LOSSES";

/// Global set at load time: 1 when the TLS probes are attached, so the syscall programs
/// look for a TLS call in progress (0: they skip the lookup).
pub const TLS_GLOBAL: &str = "TLS";
/// Global set at load time: 1 to copy the payloads of syscalls made inside a recorded TLS
/// call (the ciphertext) as well; 0 (the default) records their lengths only.
pub const TLS_KEEP_CIPHERTEXT_GLOBAL: &str = "TLS_KEEP_CIPHERTEXT";

/// Global set at load time: ring fill (bytes) past which payload chunks are no longer
/// written, so that the room left holds syscall records (events before payloads).
pub const PAYLOAD_STOP_BYTES_GLOBAL: &str = "PAYLOAD_STOP_BYTES";
/// Global set at load time: frames of user stack taken at each recorded syscall; 0 (the
/// default) takes none.
pub const STACK_DEPTH_GLOBAL: &str = "STACK_DEPTH";
/// The deepest stack `--stack-depth` may ask for.
pub const MAX_STACK_DEPTH: u32 = 64;

/// Global set at load time: the daemon's own tgid, never recorded.
pub const SELF_TGID_GLOBAL: &str = "SELF_TGID";
/// Global set at load time: bytes of payload captured per syscall.
pub const MAX_PAYLOAD_GLOBAL: &str = "MAX_PAYLOAD_BYTES";
/// Global set at load time: records are submitted without waking the daemon (it drains on a
/// timer) until this many bytes wait in the ring; past it, each record wakes it.
pub const WAKEUP_BYTES_GLOBAL: &str = "WAKEUP_BYTES";
/// 1: children of targeted processes are targeted from their first instruction (the default).
pub const FOLLOW_GLOBAL: &str = "FOLLOW";
/// cgroup v2 id (the directory's inode) whose processes, at any depth, are targeted; 0: none.
pub const CGROUP_ID_GLOBAL: &str = "CGROUP_ID";
/// Depth of that cgroup below the root (its ancestor level).
pub const CGROUP_LEVEL_GLOBAL: &str = "CGROUP_LEVEL";
/// NUL-padded command name (`--comm`): a process that execs a program of this name becomes a
/// target. All zero: none.
pub const COMM_GLOBAL: &str = "COMM";
/// Field offsets in the sched/signal tracepoints, read from tracefs at load because their
/// layouts change between kernels (6.x moved `sched_process_fork` to `__data_loc` names).
pub const FORK_CHILD_OFFSET_GLOBAL: &str = "FORK_CHILD_OFFSET";
/// 0 when the kernel's `sched_process_exit` has no `group_dead` field.
pub const EXIT_GROUP_DEAD_OFFSET_GLOBAL: &str = "EXIT_GROUP_DEAD_OFFSET";
pub const EXEC_OLD_PID_OFFSET_GLOBAL: &str = "EXEC_OLD_PID_OFFSET";
pub const SIGNAL_SIG_OFFSET_GLOBAL: &str = "SIGNAL_SIG_OFFSET";
pub const SIGNAL_HANDLER_OFFSET_GLOBAL: &str = "SIGNAL_HANDLER_OFFSET";
/// Byte offset of `pid` in `struct task_struct`, from the kernel's BTF; 0 when unknown
/// (the BTF process programs are then not attached).
pub const TASK_PID_OFFSET_GLOBAL: &str = "TASK_PID_OFFSET";
/// Byte offset of `thread_info.status` in `struct task_struct` (x86_64), from the kernel's
/// BTF; 0 when unknown (32-bit syscalls then go unnoticed).
pub const TASK_STATUS_OFFSET_GLOBAL: &str = "TASK_STATUS_OFFSET";

/// Payload bytes carried by one [`DataRecord`]; bigger payloads take several.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// The highest `--max-payload` the probes support (their chunk loop is bounded by it).
pub const MAX_PAYLOAD_LIMIT: u32 = 1024 * 1024;
/// Chunks needed to carry [`MAX_PAYLOAD_LIMIT`].
pub const MAX_CHUNKS: u32 = MAX_PAYLOAD_LIMIT / CHUNK_BYTES as u32;
/// iovec entries walked per syscall; more than this marks the payload incomplete.
pub const MAX_IOV: u64 = 16;
/// Bytes of a path or socket address carried after a [`SyscallRecord`].
pub const MAX_AUX_BYTES: usize = 4096;
/// Most argv entries an exec records (the path comes first, then up to this many arguments).
pub const MAX_ARGV: u64 = 64;
/// Most bytes an exec records of one argv entry, NUL included; longer ones are cut.
pub const MAX_ARG_BYTES: usize = 4096;
/// Length of a task's command name (`TASK_COMM_LEN`), NUL included.
pub const COMM_BYTES: usize = 16;
/// Entries in the syscall class table (x86_64 and aarch64 numbers are all below this).
pub const MAX_SYSCALL_NR: u32 = 512;
/// Size of the per-CPU scratch buffer a record is assembled in before output.
pub const SCRATCH_BYTES: usize = {
    let data = core::mem::size_of::<DataRecord>() + CHUNK_BYTES;
    let syscall = core::mem::size_of::<SyscallRecord>() + MAX_AUX_BYTES;
    if data > syscall {
        data
    } else {
        syscall
    }
};

/// Stacks whose frames have been written, per process (an LRU map of [`SentStack`] keys):
/// the probe writes a stack in full once, and `kind::STACK_SEEN` records after that.
pub const SENT_STACKS_MAP: &str = "SENT_STACKS";
/// Entries of `SENT_STACKS`; the daemon remembers at least twice as many keys.
pub const SENT_STACKS_ENTRIES: u32 = 65_536;

/// Size of the per-CPU buffer a stack record is built in.
pub const STACK_SCRATCH_BYTES: usize = core::mem::size_of::<StackRecord>()
    + MAX_STACK_DEPTH as usize * core::mem::size_of::<StackFrame>();

/// The per-CPU buffer a stack record is built in (kept apart from [`Scratch`], which holds
/// the syscall record being built at the same time).
#[repr(C, align(8))]
pub struct StackScratch {
    pub bytes: [u8; STACK_SCRATCH_BYTES],
}

/// The per-CPU scratch area a record is built in (too large for the 512-byte BPF stack).
#[repr(C, align(8))]
pub struct Scratch {
    pub bytes: [u8; SCRATCH_BYTES],
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all fields are plain integers with no padding holes left unnamed.
    unsafe impl aya::Pod for crate::Stash {}
}
