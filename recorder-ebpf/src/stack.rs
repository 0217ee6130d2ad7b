//! `--stacks`: the user stack of a recorded syscall, as a STACK record written just before
//! the syscall's own record.
//!
//! Reading each frame's build id is most of what a stack costs, so it is done once per
//! distinct stack of a process: the raw addresses are walked first (cheap) and hashed, and a
//! stack already sent (`SENT_STACKS`) is written as a STACK_SEEN record, without frames.

use aya_ebpf::{
    bindings::{BPF_F_USER_BUILD_ID, BPF_F_USER_STACK, BPF_RB_NO_WAKEUP},
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated as gen},
};
use core::{ffi::c_void, mem::size_of};
use recorder_common::{
    kind, loss, record::flags, EventHeader, SentStack, StackFrame, StackRecord, StackScratch,
    MAX_STACK_DEPTH,
};

use crate::{
    emit::count_loss, global, ADDRESS_SPACES, EVENTS, SENT_STACKS, STACK_DEPTH, STACK_SCRATCH,
};

const HEADER: usize = size_of::<StackRecord>();
const FRAME: usize = size_of::<StackFrame>();
const MAX_FRAMES_BYTES: usize = MAX_STACK_DEPTH as usize * FRAME;
const _: () = assert!(MAX_FRAMES_BYTES.is_power_of_two());
const MAX_RAW_BYTES: usize = MAX_STACK_DEPTH as usize * 8;

/// The user registers a frame-pointer walk starts from; zeros where they cannot be read.
#[derive(Clone, Copy, Default)]
pub struct UserRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

/// Takes the current task's user stack and writes it; returns the `flags` bit to set on the
/// syscall record: 0, or `STACK_LOST`. Does nothing with stacks off.
#[inline(always)]
pub fn take(ctx: *mut c_void, tgid: u32, tid: u32, regs: UserRegs) -> u32 {
    let depth = global(&STACK_DEPTH);
    if depth == 0 {
        return 0;
    }
    if write(ctx, tgid, tid, depth, regs) {
        0
    } else {
        count_loss(loss::STACK);
        flags::STACK_LOST
    }
}

/// A new address space for `tgid` (it exec'd, or is a new process): stacks it sent before
/// mean nothing in it.
#[inline(always)]
pub fn new_address_space(tgid: u32) {
    if global(&STACK_DEPTH) != 0 {
        // SAFETY: a helper without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        let _ = ADDRESS_SPACES.insert(&tgid, &now, 0);
    }
}

#[inline(always)]
fn write(ctx: *mut c_void, tgid: u32, tid: u32, depth: u32, regs: UserRegs) -> bool {
    let Some(buf) = STACK_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let buf = buf as *mut u8;
    let depth = if depth > MAX_STACK_DEPTH {
        MAX_STACK_DEPTH as usize
    } else {
        depth as usize
    };
    // SAFETY: the scratch buffer holds a StackRecord plus MAX_STACK_DEPTH build-id frames,
    // more than MAX_STACK_DEPTH raw addresses; the helper writes at most the size passed.
    let raw = unsafe {
        gen::bpf_get_stack(
            ctx,
            buf.add(HEADER).cast(),
            (depth * 8) as u32,
            BPF_F_USER_STACK as u64,
        )
    };
    if raw <= 0 || raw as usize > MAX_RAW_BYTES {
        return false;
    }
    let sent = SentStack {
        tgid,
        _pad: 0,
        key: key(buf, raw as usize / 8, tgid),
    };
    let read = |address: u64| -> u64 {
        if address == 0 {
            return 0;
        }
        // SAFETY: user memory read through the probe helper.
        unsafe { bpf_probe_read_user(address as *const u64) }.unwrap_or(0)
    };
    let mut record = StackRecord {
        header: EventHeader {
            kind: kind::STACK_SEEN,
            len: HEADER as u32,
            // SAFETY: a helper without arguments.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
            tgid,
            tid,
        },
        frames: 0,
        _pad: 0,
        key: sent.key,
        ip: regs.ip,
        caller: if regs.bp == 0 { 0 } else { read(regs.bp + 8) },
        top_of_stack: read(regs.sp),
    };
    // SAFETY: only presence is checked.
    let seen = unsafe { SENT_STACKS.get(&sent) }.is_some();
    let mut len = HEADER;
    if !seen {
        // SAFETY: as above, with build-id frames this time.
        let got = unsafe {
            gen::bpf_get_stack(
                ctx,
                buf.add(HEADER).cast(),
                (depth * FRAME) as u32,
                (BPF_F_USER_STACK | BPF_F_USER_BUILD_ID) as u64,
            )
        };
        if got <= 0 || got as usize > MAX_FRAMES_BYTES {
            return false;
        }
        // The mask changes nothing (the check above bounds it), but without it 6.1's
        // verifier keeps a signed range for the length and rejects the ring write.
        let bytes = got as usize & (2 * MAX_FRAMES_BYTES - 1);
        record.header.kind = kind::STACK;
        record.header.len = (HEADER + bytes) as u32;
        record.frames = (bytes / FRAME) as u32;
        len = HEADER + bytes;
    }
    // SAFETY: the header fits at the start of the scratch buffer.
    unsafe { (buf as *mut StackRecord).write_unaligned(record) };
    if len > size_of::<StackScratch>() {
        return false;
    }
    // SAFETY: `buf` points at a whole StackScratch and len is within it.
    let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
    // The syscall record that follows decides the wake-up.
    if EVENTS
        .output::<[u8]>(bytes, BPF_RB_NO_WAKEUP as u64)
        .is_err()
    {
        return false;
    }
    // Marked sent only once written: a thread that finds the mark finds the frames ahead of
    // its own record in the ring.
    if !seen {
        let _ = SENT_STACKS.insert(&sent, &1, 0);
    }
    true
}

/// A hash of the `count` raw addresses at `buf + HEADER` and of the process's address space.
#[inline(always)]
fn key(buf: *mut u8, count: usize, tgid: u32) -> u64 {
    // SAFETY: only presence and the value are read; nothing is held.
    let space = unsafe { ADDRESS_SPACES.get(&tgid) }.copied().unwrap_or(0);
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ space;
    for i in 0..MAX_STACK_DEPTH as usize {
        if i >= count {
            break;
        }
        // SAFETY: i < count <= MAX_STACK_DEPTH addresses were written after the header.
        let address = unsafe { (buf.add(HEADER + i * 8) as *const u64).read_unaligned() };
        hash = (hash ^ address).wrapping_mul(0x0000_0100_0000_01b3);
        hash ^= hash >> 29;
    }
    hash
}
