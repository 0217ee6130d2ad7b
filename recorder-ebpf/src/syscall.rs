//! The two programs attached to every boundary syscall tracepoint.
//!
//! Context layout of `syscalls:sys_enter_*` (see any `.../sys_enter_openat/format`):
//! `int __syscall_nr` at offset 8, then the six arguments as 8-byte fields from offset 16.
//! `syscalls:sys_exit_*`: `__syscall_nr` at 8 and `long ret` at 16. Checked on 6.18.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use recorder_common::{class, loss, EventHeader, Stash, SyscallRecord};

use crate::{
    emit::{copy_payload, count_loss, emit_syscall, Aux, Origin},
    global, CLASSES, SELF_TGID, STASH, TARGETS,
};

const NR_OFFSET: usize = 8;
const ARGS_OFFSET: usize = 16;
const RET_OFFSET: usize = 16;

#[tracepoint]
pub fn syscall_enter(ctx: TracePointContext) -> u32 {
    try_syscall_enter(&ctx);
    0
}

#[inline(always)]
fn try_syscall_enter(ctx: &TracePointContext) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // The one lookup an untargeted process pays.
    // SAFETY: the value is copied out at once; map values are never held across calls.
    unsafe { TARGETS.get(&tgid) }?;
    if tgid == global(&SELF_TGID) {
        return None;
    }
    // SAFETY: offsets follow the tracepoint's format (module docs).
    let nr: i32 = unsafe { ctx.read_at(NR_OFFSET) }.ok()?;
    let class = *CLASSES.get(nr as u32)?;
    if class == class::NONE {
        return None;
    }
    let mut stash = Stash {
        nr: nr as u32,
        class: class as u32,
        enter_ns: unsafe { bpf_ktime_get_ns() },
        ..Stash::default()
    };
    for (i, arg) in stash.args.iter_mut().enumerate() {
        // SAFETY: as above; six 8-byte arguments follow the syscall number.
        *arg = unsafe { ctx.read_at(ARGS_OFFSET + 8 * i) }.ok()?;
    }
    if class == class::OUT_BUF {
        let origin = Origin {
            tgid,
            tid: pid_tgid as u32,
            nr: nr as u32,
        };
        stash.flags = copy_payload(origin, stash.args[1], stash.args[2]);
    }
    if STASH.insert(&(pid_tgid as u32), &stash, 0).is_err() {
        count_loss(loss::STASH);
    }
    Some(())
}

#[tracepoint]
pub fn syscall_exit(ctx: TracePointContext) -> u32 {
    try_syscall_exit(&ctx);
    0
}

#[inline(always)]
fn try_syscall_exit(ctx: &TracePointContext) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let stash = *unsafe { STASH.get(&tid) }?;
    let _ = STASH.remove(&tid);
    // SAFETY: offset follows the tracepoint's format (module docs).
    let ret: i64 = unsafe { ctx.read_at(RET_OFFSET) }.ok()?;
    let origin = Origin {
        tgid: (pid_tgid >> 32) as u32,
        tid,
        nr: stash.nr,
    };
    let mut flags = stash.flags;
    let class = stash.class as u8;
    let args = stash.args;
    if class == class::IN_BUF && ret > 0 {
        flags |= copy_payload(origin, args[1], ret as u64);
    }
    let aux = match class {
        class::PATH_ARG0 => Aux::Path(args[0]),
        class::PATH_ARG1 => Aux::Path(args[1]),
        class::ADDR_IN if args[1] != 0 => Aux::Addr(args[1], args[2]),
        class::ADDR_OUT if ret >= 0 && args[1] != 0 && args[2] != 0 => {
            // SAFETY: the kernel wrote the address length behind arg2; read it as user memory.
            let len: u32 =
                unsafe { aya_ebpf::helpers::bpf_probe_read_user(args[2] as *const u32) }.ok()?;
            Aux::Addr(args[1], len as u64)
        }
        _ => Aux::None,
    };
    let record = SyscallRecord {
        header: EventHeader {
            kind: recorder_common::kind::SYSCALL,
            len: 0,
            ktime_ns: unsafe { bpf_ktime_get_ns() },
            tgid: origin.tgid,
            tid,
        },
        nr: stash.nr,
        flags,
        args,
        ret,
        enter_ns: stash.enter_ns,
        aux_len: 0,
        class: stash.class,
    };
    emit_syscall(record, aux);
    Some(())
}
