//! The records in the `EVENTS` ring buffer and the per-thread stash between enter and exit.

use core::mem::{offset_of, size_of};

/// Common prefix of every record. The decoder reads `kind` and `len` first; keep them first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// A [`crate::kind`] value; never a Rust enum, so unknown values decode as errors.
    pub kind: u32,
    /// Bytes in the whole record: header, body and trailing bytes.
    pub len: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the record was made; 0 in DATA records,
    /// whose time is their syscall's (a clock read per chunk was about 2 % of a traced 64-byte
    /// syscall's time, for a value nothing read).
    pub ktime_ns: u64,
    pub tgid: u32,
    pub tid: u32,
}

/// `SyscallRecord::flags` bits.
pub mod flags {
    /// The payload was longer than the cap; only the first `MAX_PAYLOAD_BYTES` were copied.
    pub const PAYLOAD_TRUNCATED: u32 = 1 << 0;
    /// A payload chunk could not be written to the ring buffer (counted in `LOSSES`).
    pub const PAYLOAD_LOST: u32 = 1 << 1;
    /// The payload could not be read from user memory.
    pub const PAYLOAD_FAULT: u32 = 1 << 2;
    /// The path or address was longer than `MAX_AUX_BYTES`.
    pub const AUX_TRUNCATED: u32 = 1 << 3;
    /// The path or address could not be read from user memory.
    pub const AUX_FAULT: u32 = 1 << 4;
    /// The payload was not copied, in whole or from some chunk on, because the ring had
    /// passed its high-water mark: the room left is kept for syscall records (counted in
    /// `LOSSES` as a shed payload).
    pub const PAYLOAD_SHED: u32 = 1 << 5;
    /// The syscall was made inside a TLS library call whose plaintext is recorded: its
    /// payload is the ciphertext of that plaintext (not copied unless the ciphertext is
    /// kept).
    pub const TLS_CIPHERTEXT: u32 = 1 << 6;
    /// Set with `TLS_CIPHERTEXT` when the ciphertext was not copied.
    pub const PAYLOAD_OMITTED: u32 = 1 << 7;
    /// Stacks are on, but this syscall's stack could not be taken or written (counted in
    /// `LOSSES` as a lost stack).
    pub const STACK_LOST: u32 = 1 << 8;
}

/// A completed syscall, written at sys_exit. Followed by `aux_len` bytes: the path (without
/// its NUL) or the raw `struct sockaddr` that the syscall named, per its class.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallRecord {
    pub header: EventHeader,
    /// Syscall number on the recording host's architecture.
    pub nr: u32,
    /// [`flags`] bits.
    pub flags: u32,
    /// The six raw arguments as the syscall received them.
    pub args: [u64; 6],
    /// Return value: a result, or `-errno`.
    pub ret: i64,
    /// Monotonic time at sys_enter (the header holds the time at sys_exit).
    pub enter_ns: u64,
    /// Trailing bytes after this struct.
    pub aux_len: u32,
    /// The syscall's [`crate::class`] value.
    pub class: u32,
}

/// One chunk of payload. Followed by `len` bytes, which are bytes `offset..offset + len` of
/// the payload of the next `SyscallRecord` from the same tid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataRecord {
    pub header: EventHeader,
    pub nr: u32,
    pub len: u32,
    pub offset: u64,
}

/// The user stack of a syscall, written just before its `SyscallRecord` (same tid). Followed
/// by `frames` [`StackFrame`]s, innermost first, as `bpf_get_stack` gives them with
/// `BPF_F_USER_BUILD_ID`.
///
/// `key` names the stack within its process (a hash of its raw addresses and of the
/// process's address space): the first time, the probe reads the frames' build ids and
/// writes them (`kind::STACK`); after that only this record (`kind::STACK_SEEN`), as reading
/// build ids is most of what a stack costs.
///
/// The three raw words let the daemon add the frame a frame-pointer walk misses: a
/// frameless function (most libc syscall wrappers) leaves its caller's return address at the
/// top of the stack, not behind a frame pointer. `ip` and `caller` are the raw addresses of
/// the first two walked frames, which place their modules in memory; `top_of_stack` is the
/// word at the stack pointer, a return address if the syscall was made from a frameless
/// function. All three are 0 where the program cannot read them (classic tracepoints).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackRecord {
    pub header: EventHeader,
    pub frames: u32,
    pub _pad: u32,
    pub key: u64,
    pub ip: u64,
    pub caller: u64,
    pub top_of_stack: u64,
}

/// Key of `SENT_STACKS`: a stack of a process whose frames have been written.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SentStack {
    pub tgid: u32,
    pub _pad: u32,
    pub key: u64,
}

/// One frame of a [`StackRecord`]: the kernel's `struct bpf_stack_build_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackFrame {
    /// [`stack_status`] value.
    pub status: i32,
    pub build_id: [u8; 20],
    /// With `VALID`: the offset in the module's file; with `IP`: the raw address.
    pub offset_or_ip: u64,
}

/// `StackFrame::status` values (the kernel's `enum bpf_stack_build_id_status`).
pub mod stack_status {
    /// No frame here.
    pub const EMPTY: i32 = 0;
    /// `build_id` and the file offset are valid.
    pub const VALID: i32 = 1;
    /// Only the raw address is known (anonymous memory such as JIT code, or the module's
    /// build id could not be read).
    pub const IP: i32 = 2;
}

/// `ProcessRecord::op` values.
pub mod process_op {
    /// A targeted thread created a task: `child` is its id; `value` 1 if it is a thread of
    /// the same process, 0 if it is a new process; `flags` 1 if the new process is recorded.
    pub const FORK: u32 = 1;
    /// A targeted task ended: `child` is its tid; `value` 1 if it was the last of its process.
    pub const EXIT: u32 = 2;
    /// A targeted process was handed a signal whose default action ends it: `child` is the
    /// signal number.
    pub const FATAL_SIGNAL: u32 = 3;
    /// A process started being recorded because it exec'd a program named by `--comm`.
    pub const COMM_MATCH: u32 = 4;
    /// A targeted process exec'd: `child` is the tid before the exec (a thread other than the
    /// leader takes over the leader's id).
    pub const EXEC: u32 = 5;
    /// A targeted process made its first 32-bit (compat) syscall: from here its syscalls are
    /// skipped and counted (`loss::COMPAT`), not recorded.
    pub const COMPAT: u32 = 6;
}

/// A process lifecycle event; no trailing bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessRecord {
    pub header: EventHeader,
    /// A [`process_op`] value.
    pub op: u32,
    pub child: u32,
    pub value: u32,
    pub flags: u32,
}

/// What sys_enter leaves for sys_exit, keyed by tid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stash {
    pub nr: u32,
    pub class: u32,
    pub args: [u64; 6],
    pub enter_ns: u64,
    /// [`flags`] bits already known at enter (payload truncated or lost).
    pub flags: u32,
    /// 1 from a syscall's enter to its exit; 0 once the exit has used it. A thread keeps
    /// its entry from one syscall to the next (it is removed when the thread exits), so
    /// this, not the entry's presence, says whether a syscall is in flight.
    pub live: u32,
}

const _: () = assert!(size_of::<EventHeader>() == 24);
const _: () = assert!(offset_of!(EventHeader, kind) == 0);
const _: () = assert!(offset_of!(EventHeader, len) == 4);
const _: () = assert!(size_of::<SyscallRecord>() == 104);
const _: () = assert!(offset_of!(SyscallRecord, args) == 32);
const _: () = assert!(offset_of!(SyscallRecord, aux_len) == 96);
const _: () = assert!(size_of::<DataRecord>() == 40);
const _: () = assert!(size_of::<Stash>() == 72);
const _: () = assert!(size_of::<ProcessRecord>() == 40);
const _: () = assert!(size_of::<StackRecord>() == 64);
const _: () = assert!(size_of::<SentStack>() == 16);
const _: () = assert!(size_of::<StackFrame>() == 32);
