//! recorderd's kernel side: two tracepoint programs, attached to every boundary syscall's
//! `sys_enter_*` and `sys_exit_*`, that record what targeted processes exchange.
//!
//! `syscall_enter` stashes the arguments per thread and copies outgoing payloads;
//! `syscall_exit` copies incoming payloads and paths/addresses and writes the completed
//! record. What to do for a syscall comes from its class in `CLASSES`, which the daemon fills
//! from the host architecture's syscall numbers. Records go through one ring buffer so the
//! daemon sees a single order; whatever does not fit is counted in `LOSSES`.

#![no_std]
#![no_main]

mod emit;
mod floor;
mod syscall;

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use recorder_common::{Scratch, Stash, MAX_SYSCALL_NR};

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

// LRU: a thread killed inside a syscall never reaches sys_exit, and its entry must not leak.
#[map]
static STASH: LruHashMap<u32, Stash> = LruHashMap::with_max_entries(16384, 0);

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// The daemon's tgid (set at load): never recorded, whatever TARGETS says.
#[no_mangle]
static SELF_TGID: u32 = 0;

/// Payload bytes copied per syscall (set at load, at most `MAX_PAYLOAD_LIMIT`).
#[no_mangle]
static MAX_PAYLOAD_BYTES: u32 = 64 * 1024;

/// Reads a load-time global; volatile so the compiler does not fold in the default.
#[inline(always)]
fn global(value: &'static u32) -> u32 {
    // SAFETY: the reference is valid; volatile only stops constant folding.
    unsafe { core::ptr::read_volatile(value) }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
