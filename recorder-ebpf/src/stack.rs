//! `--stacks`: the user stack of a recorded syscall, as a STACK record written just before
//! the syscall's own record.

use aya_ebpf::{
    bindings::{BPF_F_USER_BUILD_ID, BPF_F_USER_STACK},
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated as gen},
};
use core::{ffi::c_void, mem::size_of};
use recorder_common::{
    kind, loss, record::flags, EventHeader, StackFrame, StackRecord, StackScratch, MAX_STACK_DEPTH,
};

use crate::{emit::count_loss, global, EVENTS, STACK_DEPTH, STACK_SCRATCH};
use aya_ebpf::bindings::BPF_RB_NO_WAKEUP;

const HEADER: usize = size_of::<StackRecord>();
const FRAME: usize = size_of::<StackFrame>();
const MAX_FRAMES_BYTES: usize = MAX_STACK_DEPTH as usize * FRAME;

/// The user registers a frame-pointer walk starts from; zeros where they cannot be read.
#[derive(Clone, Copy, Default)]
pub struct UserRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

/// Takes the current task's user stack (build-id frames) and writes it; returns the
/// `flags` bit to set on the syscall record: 0, or `STACK_LOST`. Does nothing with stacks
/// off.
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

#[inline(always)]
fn write(ctx: *mut c_void, tgid: u32, tid: u32, depth: u32, regs: UserRegs) -> bool {
    let Some(buf) = STACK_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let buf = buf as *mut u8;
    let size = if depth > MAX_STACK_DEPTH {
        MAX_FRAMES_BYTES
    } else {
        depth as usize * FRAME
    };
    // SAFETY: the scratch buffer holds a StackRecord plus MAX_STACK_DEPTH frames, and `size`
    // is at most that; the helper writes at most `size` bytes.
    let got = unsafe {
        gen::bpf_get_stack(
            ctx,
            buf.add(HEADER).cast(),
            size as u32,
            (BPF_F_USER_STACK | BPF_F_USER_BUILD_ID) as u64,
        )
    };
    if got <= 0 {
        return false;
    }
    let bytes = got as usize;
    if bytes > MAX_FRAMES_BYTES {
        return false;
    }
    // The words a frame-pointer walk does not keep (see StackRecord).
    let read = |address: u64| -> u64 {
        if address == 0 {
            return 0;
        }
        // SAFETY: user memory read through the probe helper.
        unsafe { bpf_probe_read_user(address as *const u64) }.unwrap_or(0)
    };
    let record = StackRecord {
        header: EventHeader {
            kind: kind::STACK,
            len: (HEADER + bytes) as u32,
            // SAFETY: a helper without arguments.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
            tgid,
            tid,
        },
        frames: (bytes / FRAME) as u32,
        _pad: 0,
        ip: regs.ip,
        caller: if regs.bp == 0 { 0 } else { read(regs.bp + 8) },
        top_of_stack: read(regs.sp),
    };
    // SAFETY: the header fits at the start of the scratch buffer.
    unsafe { (buf as *mut StackRecord).write_unaligned(record) };
    let len = HEADER + bytes;
    if len > size_of::<StackScratch>() {
        return false;
    }
    // SAFETY: `buf` points at a whole StackScratch and len is within it.
    let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
    // The syscall record that follows decides the wake-up.
    EVENTS
        .output::<[u8]>(bytes, BPF_RB_NO_WAKEUP as u64)
        .is_ok()
}
