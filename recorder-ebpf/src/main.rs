//! recorderd's kernel side: two programs on the `sys_enter` and `sys_exit` tracepoints (BTF
//! tracepoints, or classic ones as the fallback: `syscall`), that record what targeted
//! processes exchange.
//!
//! The enter program stashes the arguments per thread and copies outgoing payloads; the
//! exit program copies incoming payloads and paths/addresses and writes the completed
//! record. `process` follows forks, execs, fatal signals and exits. What to do for a syscall comes from its class in `CLASSES`, which the daemon fills
//! from the host architecture's syscall numbers. Records go through one ring buffer so the
//! daemon sees a single order; whatever does not fit is counted in `LOSSES`.
//!
//! This is the root of the `recorder` object, the one recorderd embeds. The benchmark's floor
//! probe is a separate root (`floor.rs`, object `recorder-floor`); the two share `runtime`.

#![no_std]
#![no_main]

mod emit;
mod process;
mod runtime;
mod stack;
mod syscall;
mod tls;

use aya_ebpf::helpers::{
    bpf_probe_read_kernel,
    generated::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_task},
};
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use recorder_common::{
    Scratch, SentStack, StackScratch, Stash, COMM_BYTES, MAX_SYSCALL_NR, SENT_STACKS_ENTRIES,
};
use runtime::global;

/// Default ring size; the daemon sets the real one (`--ring-bytes`) at load time.
const RING_BYTES: u32 = 16 * 1024 * 1024;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

#[map]
static TARGETS: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

#[map]
static CLASSES: Array<u8> = Array::with_max_entries(MAX_SYSCALL_NR, 0);

#[map]
static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(recorder_common::loss::COUNT, 0);

/// tid → its syscall in flight (`Stash::live`). A thread's entry is made at its first
/// boundary syscall, written in place at each enter after that, and removed when any task
/// exits (`process::try_exit`, which also covers a thread killed inside a syscall) or
/// leaves its id by exec (`process::follow_exec`). An insert and a delete per syscall, in an
/// LRU map as before, were a tenth of a traced 64-byte syscall's time (docs/BENCHMARKS.md,
/// "The probes' own time"). Not LRU: past 16384 live recorded threads an insert fails and
/// is counted (`loss::STASH`) instead of silently evicting a thread whose syscall is in
/// flight.
#[map]
static STASH: HashMap<u32, Stash> = HashMap::with_max_entries(16384, 0);

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[map]
static STACK_SCRATCH: PerCpuArray<StackScratch> = PerCpuArray::with_max_entries(1, 0);

/// Stacks whose build-id frames a process has written (`stack`).
#[map]
static SENT_STACKS: LruHashMap<SentStack, u8> =
    LruHashMap::with_max_entries(SENT_STACKS_ENTRIES, 0);

/// tgid → when its address space began (exec, or a new process): part of every stack key,
/// so that a stack sent before an exec or by an earlier process of the same pid is not taken
/// as sent.
#[map]
static ADDRESS_SPACES: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// Frames of user stack taken per recorded syscall (set at load, `--stacks`); 0: none.
#[no_mangle]
static STACK_DEPTH: u32 = 0;

/// The daemon's tgid (set at load): never recorded, whatever TARGETS says.
#[no_mangle]
static SELF_TGID: u32 = 0;

/// Payload bytes copied per syscall (set at load, at most `MAX_PAYLOAD_LIMIT`).
#[no_mangle]
static MAX_PAYLOAD_BYTES: u32 = 64 * 1024;

/// Ring fill (bytes) past which a record wakes the daemon (set at load: a quarter of the ring).
#[no_mangle]
static WAKEUP_BYTES: u32 = RING_BYTES / 4;

/// Ring fill (bytes) past which payload chunks are shed (set at load: half the ring), so a
/// burst of payloads cannot crowd out the syscall records themselves.
#[no_mangle]
static PAYLOAD_STOP_BYTES: u32 = RING_BYTES / 2;

/// 1: a targeted process's children are targeted too (`--no-follow` sets 0).
#[no_mangle]
static FOLLOW: u32 = 1;

/// cgroup v2 id whose processes (at any depth) are targeted, and its level; 0: none.
#[no_mangle]
static CGROUP_ID: u64 = 0;
#[no_mangle]
static CGROUP_LEVEL: u32 = 0;

/// `--comm`: NUL-padded name of programs whose exec makes them targets; all zero: none.
#[no_mangle]
static COMM: [u8; COMM_BYTES] = [0; COMM_BYTES];

/// Tracepoint field offsets, read from tracefs by the daemon (see recorder_common).
#[no_mangle]
static FORK_CHILD_OFFSET: u32 = 20;
#[no_mangle]
static EXIT_GROUP_DEAD_OFFSET: u32 = 0;
#[no_mangle]
static EXEC_OLD_PID_OFFSET: u32 = 16;
#[no_mangle]
static SIGNAL_SIG_OFFSET: u32 = 8;
#[no_mangle]
static SIGNAL_HANDLER_OFFSET: u32 = 24;
/// Offset of `pid` in the kernel's `struct task_struct`, read from its BTF by the daemon
/// (the BTF fork program reads the child's id through it).
#[no_mangle]
static TASK_PID_OFFSET: u32 = 0;
/// Offset of `thread_info.status` in `struct task_struct`, from its BTF; 0: unknown.
#[no_mangle]
static TASK_STATUS_OFFSET: u32 = 0;

/// x86's `TS_COMPAT` in `thread_info.status` (arch/x86/include/asm/thread_info.h): set from
/// a 32-bit syscall's entry until the return to user space.
const TS_COMPAT: u32 = 0x0002;
/// A TARGETS value bit: the process has made a 32-bit syscall, and said so.
pub const TARGET_COMPAT_SEEN: u8 = 0x2;

/// Whether the current syscall is a 32-bit one (an i386 program's, or `int 0x80`): its
/// number and arguments follow the i386 ABI. Always false when the offset is unknown.
#[inline(always)]
fn compat_syscall() -> bool {
    let offset = global(&TASK_STATUS_OFFSET);
    if offset == 0 {
        return false;
    }
    // SAFETY: reads 4 bytes of the current task through the helper, which fails safely.
    let status = unsafe {
        let task = bpf_get_current_task() as *const u8;
        bpf_probe_read_kernel(task.add(offset as usize) as *const u32)
    };
    status.is_ok_and(|status| status & TS_COMPAT != 0)
}

/// Whether the process `tgid` (the current task's) is recorded: listed in TARGETS, or inside
/// the `--cgroup`; never the daemon itself. This is all an untargeted process pays.
#[inline(always)]
fn targeted(tgid: u32) -> bool {
    if tgid == global(&SELF_TGID) {
        return false;
    }
    // SAFETY: only presence is checked; nothing is held across calls.
    if unsafe { TARGETS.get(&tgid) }.is_some() {
        return true;
    }
    let cgroup = global(&CGROUP_ID);
    // SAFETY: a helper without pointer arguments.
    cgroup != 0
        && unsafe { bpf_get_current_ancestor_cgroup_id(global(&CGROUP_LEVEL) as i32) } == cgroup
}
