//! Process lifecycle: the `sched:sched_process_{fork,exec,exit}` and `signal:signal_deliver`
//! tracepoints. Forks of a targeted process add the child to TARGETS before it first runs
//! (the tracepoint fires before the child is woken), so its first syscall is recorded; exits
//! take the process out again so a recycled pid is never recorded by mistake.
//!
//! Field offsets come from load-time globals the daemon reads from tracefs.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use recorder_common::{class, record::flags, record::process_op};

use crate::{
    emit::emit_process, global, stack, syscall::copy_exec_args, targeted, COMM,
    EXEC_OLD_PID_OFFSET, EXIT_GROUP_DEAD_OFFSET, FOLLOW, FORK_CHILD_OFFSET, SIGNAL_HANDLER_OFFSET,
    SIGNAL_SIG_OFFSET, STASH, TARGETS,
};

/// `CLONE_THREAD` from linux/sched.h: the new task shares the caller's process.
const CLONE_THREAD: u64 = 0x0001_0000;

#[tracepoint]
pub fn process_fork(ctx: TracePointContext) -> u32 {
    try_fork(&ctx);
    0
}

#[inline(always)]
fn try_fork(ctx: &TracePointContext) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !targeted(tgid) {
        return None;
    }
    // SAFETY: the offset is the tracepoint's own, read from its tracefs format.
    let child: i32 = unsafe { ctx.read_at(global(&FORK_CHILD_OFFSET) as usize) }.ok()?;
    // The parent is inside clone/clone3/fork/vfork; its stashed arguments say whether the
    // new task is a thread.
    // SAFETY: the value is copied out at once.
    let clone_flags = match unsafe { STASH.get(&tid) } {
        Some(stash) if stash.class == class::CLONE as u32 => stash.args[0],
        Some(stash) if stash.class == class::CLONE3 as u32 => {
            // SAFETY: `flags` is the first field of the caller's struct clone_args.
            unsafe { bpf_probe_read_user(stash.args[0] as *const u64) }.unwrap_or(0)
        }
        _ => 0,
    };
    let thread = clone_flags & CLONE_THREAD != 0;
    if !thread {
        stack::new_address_space(child as u32);
    }
    let followed =
        !thread && global(&FOLLOW) != 0 && TARGETS.insert(&(child as u32), &1, 0).is_ok();
    emit_process(
        tgid,
        tid,
        process_op::FORK,
        child as u32,
        thread as u32,
        followed as u32,
    );
    Some(())
}

#[tracepoint]
pub fn process_exec(ctx: TracePointContext) -> u32 {
    try_exec(&ctx);
    0
}

#[inline(always)]
fn try_exec(ctx: &TracePointContext) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if targeted(tgid) {
        stack::new_address_space(tgid);
        // SAFETY: as in try_fork.
        let old: i32 = unsafe { ctx.read_at(global(&EXEC_OLD_PID_OFFSET) as usize) }.ok()?;
        let old = old as u32;
        if old != tid {
            // A non-leader thread exec'd and took the leader's id: its stashed execve must
            // follow it, or sys_exit would not find it.
            // SAFETY: the value is copied out at once.
            if let Some(stash) = unsafe { STASH.get(&old) }.copied() {
                let _ = STASH.insert(&tid, &stash, 0);
                let _ = STASH.remove(&old);
            }
            emit_process(tgid, tid, process_op::EXEC, old, 0, 0);
        }
        return Some(());
    }
    let wanted = global(&COMM);
    if wanted[0] == 0 || bpf_get_current_comm().ok()? != wanted {
        return None;
    }
    if TARGETS.insert(&tgid, &1, 0).is_ok() {
        stack::new_address_space(tgid);
        emit_process(tgid, tid, process_op::COMM_MATCH, 0, 0, 0);
    }
    Some(())
}

/// `sched_prepare_exec` fires once the kernel has copied the new program's arguments out of
/// the old memory, which is still in place: an argv that faulted at sys_enter (pages the
/// process had not touched since it was forked) can be read now.
#[tracepoint]
pub fn process_prepare_exec(_ctx: TracePointContext) -> u32 {
    try_prepare_exec();
    0
}

#[inline(always)]
fn try_prepare_exec() -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !targeted((pid_tgid >> 32) as u32) {
        return None;
    }
    let stash = STASH.get_ptr_mut(&(pid_tgid as u32))?;
    // SAFETY: the entry belongs to this thread, which is running this program.
    let stash = unsafe { &mut *stash };
    let exec = stash.class == class::EXEC as u32 || stash.class == class::EXECAT as u32;
    if exec && stash.flags & flags::PAYLOAD_FAULT != 0 {
        stash.flags = (stash.flags & !flags::PAYLOAD_FAULT) | copy_exec_args(pid_tgid, stash);
    }
    Some(())
}

#[tracepoint]
pub fn process_exit(ctx: TracePointContext) -> u32 {
    try_exit(&ctx);
    0
}

#[inline(always)]
fn try_exit(ctx: &TracePointContext) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !targeted(tgid) {
        return None;
    }
    let offset = global(&EXIT_GROUP_DEAD_OFFSET);
    let group_dead = if offset == 0 {
        // Older kernels: no group_dead field; the leader's exit stands for the process's.
        tid == tgid
    } else {
        // SAFETY: as in try_fork.
        unsafe { ctx.read_at::<u8>(offset as usize) }.ok()? != 0
    };
    let _ = STASH.remove(&tid);
    emit_process(tgid, tid, process_op::EXIT, tid, group_dead as u32, 0);
    if group_dead {
        let _ = TARGETS.remove(&tgid);
        // A later process given the same pid must not find this one's stacks sent.
        stack::new_address_space(tgid);
    }
    Some(())
}

#[tracepoint]
pub fn process_signal(ctx: TracePointContext) -> u32 {
    try_signal(&ctx);
    0
}

#[inline(always)]
fn try_signal(ctx: &TracePointContext) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !targeted(tgid) {
        return None;
    }
    // SAFETY: as in try_fork.
    let (sig, handler): (i32, u64) = unsafe {
        (
            ctx.read_at(global(&SIGNAL_SIG_OFFSET) as usize).ok()?,
            ctx.read_at(global(&SIGNAL_HANDLER_OFFSET) as usize).ok()?,
        )
    };
    // SIG_DFL is 0; anything else is handled or ignored, and the process lives on.
    if handler != 0 || !ends_process_by_default(sig) {
        return None;
    }
    emit_process(tgid, tid, process_op::FATAL_SIGNAL, sig as u32, 0, 0);
    Some(())
}

/// Signals whose default action is not to end the process (signal(7)): child status, continue,
/// the stop signals, urgent data and window size.
#[inline(always)]
fn ends_process_by_default(sig: i32) -> bool {
    !matches!(sig, 17..=23 | 28) && sig > 0
}
