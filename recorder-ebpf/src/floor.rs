//! The benchmarks' floor: the least a payload recorder can do per syscall, so that
//! `cargo xtask bench` can say how far recorderd's probes are from it.
//!
//! One target process (`FLOOR_TGID`, set at load); for `write`/`pwrite64` the payload is
//! copied at `sys_enter`, for `read`/`pread64` the buffer address is kept per thread at
//! `sys_enter` and the bytes the kernel returned are copied at `sys_exit`. Each copy goes
//! into a per-CPU scratch buffer and then into `FLOOR_EVENTS` with `bpf_ringbuf_output`, as
//! recorderd's probes do, behind a 16-byte header. No classes, no fd or argument capture, no
//! chunking past `FLOOR_MAX_BYTES`.
//!
//! This file is the root of its own object, `recorder-floor` (a second `[[bin]]`), which only
//! `cargo xtask bench` builds and `recorder-bench-floor` loads: none of its programs or maps
//! are in the object recorderd embeds. It shares `runtime` (globals, panic handler, license)
//! with recorderd's root, `main.rs`.
//!
//! `floor_shared` and `floor_stub` are not part of the floor: they are
//! `recorder-bench-floor --tail-call-check`, whether a fentry program can jump to one
//! verified for another kernel function.
//!
//! `FLOOR_WAKEUP` is the flags word passed to the ring-buffer output, so the benchmark can
//! compare the kernel's adaptive wake-ups (0) with BPF_RB_NO_WAKEUP (1) and
//! BPF_RB_FORCE_WAKEUP (2) without touching recorderd's probes.

#![no_std]
#![no_main]

mod runtime;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated as gen},
    macros::{fentry, map, tracepoint},
    maps::{HashMap, PerCpuArray, ProgramArray, RingBuf},
    programs::{FEntryContext, TracePointContext},
};

use runtime::global;

/// Payload bytes copied per syscall at most (recorderd's CHUNK_BYTES, one chunk).
const FLOOR_MAX_BYTES: usize = 16 * 1024;
const HEADER_BYTES: usize = 16;

#[repr(C)]
pub struct FloorScratch {
    bytes: [u8; HEADER_BYTES + FLOOR_MAX_BYTES],
}

#[map]
static FLOOR_EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

#[map]
static FLOOR_READS: HashMap<u32, u64> = HashMap::with_max_entries(1024, 0);

#[map]
static FLOOR_SCRATCH: PerCpuArray<FloorScratch> = PerCpuArray::with_max_entries(1, 0);

/// Records that did not fit in the ring, per CPU.
#[map]
static FLOOR_LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[no_mangle]
static FLOOR_TGID: u32 = 0;

#[no_mangle]
static FLOOR_WAKEUP: u32 = 0;

// sys_enter_{read,write,pread64,pwrite64}: fd at 16, buf at 24, count at 32.
// sys_exit_*: ret at 16. Checked on 6.18.
const BUF_OFFSET: usize = 24;
const COUNT_OFFSET: usize = 32;
const RET_OFFSET: usize = 16;

/// Attached to sys_enter_write and sys_enter_pwrite64.
#[tracepoint]
pub fn floor_write(ctx: TracePointContext) -> u32 {
    if let Some(pid_tgid) = targeted() {
        // Plain values rather than Option/Result pairs: LLVM may leave an unused register
        // unset on a None path, and the verifier rejects any read of it.
        // SAFETY: offsets follow the tracepoint format above.
        let buf = unsafe { ctx.read_at::<u64>(BUF_OFFSET) }.unwrap_or(0);
        // SAFETY: as above.
        let count = unsafe { ctx.read_at::<u64>(COUNT_OFFSET) }.unwrap_or(0);
        if buf != 0 {
            copy(pid_tgid, buf, count);
        }
    }
    0
}

/// Attached to sys_enter_read and sys_enter_pread64.
#[tracepoint]
pub fn floor_read_enter(ctx: TracePointContext) -> u32 {
    if let Some(pid_tgid) = targeted() {
        // SAFETY: as above.
        if let Ok(buf) = unsafe { ctx.read_at::<u64>(BUF_OFFSET) } {
            let _ = FLOOR_READS.insert(&(pid_tgid as u32), &buf, 0);
        }
    }
    0
}

/// Attached to sys_exit_read and sys_exit_pread64.
#[tracepoint]
pub fn floor_read_exit(ctx: TracePointContext) -> u32 {
    if let Some(pid_tgid) = targeted() {
        let tid = pid_tgid as u32;
        // SAFETY: the value is copied out before the entry is removed.
        let buf = match unsafe { FLOOR_READS.get(&tid) } {
            Some(buf) => *buf,
            None => 0,
        };
        let _ = FLOOR_READS.remove(&tid);
        // SAFETY: as above.
        let ret = unsafe { ctx.read_at::<i64>(RET_OFFSET) }.unwrap_or(-1);
        if buf != 0 && ret > 0 {
            copy(pid_tgid, buf, ret as u64);
        }
    }
    0
}

#[inline(always)]
fn targeted() -> Option<u64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32 == global(&FLOOR_TGID)).then_some(pid_tgid)
}

#[inline(always)]
fn copy(pid_tgid: u64, src: u64, count: u64) {
    let Some(scratch) = FLOOR_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let n = if count > FLOOR_MAX_BYTES as u64 {
        FLOOR_MAX_BYTES
    } else {
        count as usize
    };
    let base = scratch as *mut u8;
    // SAFETY: the scratch buffer holds HEADER_BYTES + FLOOR_MAX_BYTES and n is at most
    // FLOOR_MAX_BYTES; the user pointer is only read through the probe helper.
    let read = unsafe {
        (base as *mut u32).write_unaligned(n as u32);
        (base.add(4) as *mut u32).write_unaligned(pid_tgid as u32);
        (base.add(8) as *mut u64).write_unaligned(bpf_ktime_get_ns());
        gen::bpf_probe_read_user(
            base.add(HEADER_BYTES).cast(),
            n as u32,
            src as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return;
    }
    let len = HEADER_BYTES + n;
    if len > HEADER_BYTES + FLOOR_MAX_BYTES {
        return;
    }
    // SAFETY: `len` bytes of the scratch buffer are initialised above.
    let bytes = unsafe { core::slice::from_raw_parts(base as *const u8, len) };
    if FLOOR_EVENTS
        .output::<[u8]>(bytes, u64::from(global(&FLOOR_WAKEUP)))
        .is_err()
    {
        if let Some(counter) = FLOOR_LOSSES.get_ptr_mut(0) {
            // SAFETY: per-CPU slot, and tracepoint programs do not nest on one CPU.
            unsafe { *counter += 1 };
        }
    }
}

/// The tail-call check's one slot: the shared program (`recorder-bench-floor
/// --tail-call-check`).
#[map]
static FLOOR_SHARED: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// How often the shared program ran, per CPU.
#[map]
static FLOOR_SHARED_RUNS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The tail-call check's shared program: verified for `pwrite64`, never attached; it runs
/// only when `floor_stub` jumps to it. Whether a kernel allows that is what the check asks:
/// fentry programs are verified per kernel function, so recorderd on fentry would need its
/// two syscall programs shared by small per-function stubs (docs/BENCHMARKS.md, "The
/// alternatives, on a kernel that has them").
#[fentry(function = "__x64_sys_pwrite64")]
pub fn floor_shared(_ctx: FEntryContext) -> u32 {
    if let Some(runs) = FLOOR_SHARED_RUNS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, and fentry programs do not nest on one CPU.
        unsafe { *runs += 1 };
    }
    0
}

/// The tail-call check's stub, on `pread64`: only the jump to the shared program.
#[fentry(function = "__x64_sys_pread64")]
pub fn floor_stub(ctx: FEntryContext) -> u32 {
    // SAFETY: the context is this program's own; on success control does not come back.
    unsafe { FLOOR_SHARED.tail_call(&ctx, 0) };
    0
}
