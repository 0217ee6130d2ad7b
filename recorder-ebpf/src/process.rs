//! Process lifecycle: the `sched:sched_process_{fork,exec,exit}` and `signal:signal_deliver`
//! tracepoints. Forks of a targeted process add the child to TARGETS before it first runs
//! (the tracepoint fires before the child is woken), so its first syscall is recorded; exits
//! take the process out again so a recycled pid is never recorded by mistake.
//!
//! Each program comes in two flavours sharing one body, as the syscall programs do:
//! - BTF tracepoints (`*_btf`), what recorderd attaches on x86_64 kernels with BTF. They are
//!   attached with `bpf()` alone: a classic tracepoint is attached through
//!   `perf_event_open`, which Debian's kernels (`kernel.perf_event_paranoid = 3`) refuse
//!   without CAP_SYS_ADMIN, a capability the service does not keep. The kernel also skips
//!   filling a perf record for every fork, exec and exit on the host. They read the
//!   tracepoints' arguments: `sched_process_fork(parent, child)` (the child's id from
//!   `child->pid`, whose offset the daemon reads from BTF), `sched_process_exec(p, old_pid,
//!   bprm)`, `sched_process_exit(p[, group_dead])`, `signal_deliver(sig, info, ka)` (the
//!   handler is `ka->sa.sa_handler`, at offset 0 on x86_64).
//! - classic tracepoints, the fallback, whose field offsets come from load-time globals the
//!   daemon reads from tracefs.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_user,
    },
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use recorder_common::{class, loss, record::flags, record::process_op};

use crate::{
    compat_syscall,
    emit::{count_loss, emit_process},
    global, stack,
    syscall::{self, copy_exec_args},
    targeted, COMM, EXEC_OLD_PID_OFFSET, EXIT_GROUP_DEAD_OFFSET, FOLLOW, FORK_CHILD_OFFSET,
    SIGNAL_HANDLER_OFFSET, SIGNAL_SIG_OFFSET, STASH, TARGETS, TASK_PID_OFFSET,
};

/// `CLONE_THREAD` from linux/sched.h: the new task shares the caller's process.
const CLONE_THREAD: u64 = 0x0001_0000;

#[tracepoint]
pub fn process_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: the offset is the tracepoint's own, read from its tracefs format.
    try_fork(|| unsafe { ctx.read_at::<i32>(global(&FORK_CHILD_OFFSET) as usize) }.ok());
    0
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn process_fork_btf(ctx: BtfTracePointContext) -> i32 {
    try_fork(|| {
        let child: u64 = ctx.arg(1);
        let pid = (child + u64::from(global(&TASK_PID_OFFSET))) as *const i32;
        // SAFETY: a read through the helper, which fails rather than faults; the offset is
        // `pid` in the child's `struct task_struct`, from the kernel's BTF.
        unsafe { bpf_probe_read_kernel(pid) }.ok()
    });
    0
}

/// `child` reads the new task's id; it is only called for a targeted parent.
#[inline(always)]
fn try_fork(child: impl Fn() -> Option<i32>) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !targeted(tgid) {
        return None;
    }
    let child = child()?;
    // The parent is inside clone/clone3/fork/vfork; its stashed arguments say whether the
    // new task is a thread.
    // SAFETY: the value is copied out at once.
    let clone_flags = match unsafe { STASH.get(&tid) }.filter(|stash| stash.live != 0) {
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
    // SAFETY: as in process_fork.
    try_exec(|| unsafe { ctx.read_at::<i32>(global(&EXEC_OLD_PID_OFFSET) as usize) }.ok());
    0
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn process_exec_btf(ctx: BtfTracePointContext) -> i32 {
    try_exec(|| Some(ctx.arg::<i32>(1)));
    0
}

/// `old_pid` reads the id the exec'ing thread had before (the leader's, after a
/// non-leader thread's exec).
#[inline(always)]
fn try_exec(old_pid: impl Fn() -> Option<i32>) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // Set when a non-leader thread exec'd: it has taken the leader's id.
    let moved_from = old_pid().map(|old| old as u32).filter(|&old| old != tid);
    if targeted(tgid) {
        stack::new_address_space(tgid);
        if let Some(old) = moved_from {
            follow_exec(old, tid);
            emit_process(tgid, tid, process_op::EXEC, old, 0, 0);
        }
        if compat_syscall() {
            syscall::finish_exec_into_compat(pid_tgid);
        }
        return Some(());
    }
    if let Some(old) = moved_from {
        // No thread will exit under the old id again (the process may have stopped being
        // recorded while one of its threads exec'd): its entry would never be removed.
        let _ = STASH.remove(&old);
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

/// A non-leader thread exec'd and took the leader's id (`tid`): its stashed execve moves
/// with it, or sys_exit would not find it, and nothing is left under the old id, under
/// which no thread will exit again.
#[inline(always)]
fn follow_exec(old: u32, tid: u32) {
    // SAFETY: the value is copied out at once.
    let stash = unsafe { STASH.get(&old) }.filter(|s| s.live != 0).copied();
    // Removed first: in a full map, that frees the element the insert takes.
    let _ = STASH.remove(&old);
    if let Some(stash) = stash {
        if STASH.insert(&tid, &stash, 0).is_err() {
            count_loss(loss::STASH);
        }
    }
}

/// `sched_prepare_exec` fires once the kernel has copied the new program's arguments out of
/// the old memory, which is still in place: an argv that faulted at sys_enter (pages the
/// process had not touched since it was forked) can be read now.
#[tracepoint]
pub fn process_prepare_exec(_ctx: TracePointContext) -> u32 {
    try_prepare_exec();
    0
}

#[btf_tracepoint(function = "sched_prepare_exec")]
pub fn process_prepare_exec_btf(_ctx: BtfTracePointContext) -> i32 {
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
    if stash.live != 0 && exec && stash.flags & flags::PAYLOAD_FAULT != 0 {
        stash.flags = (stash.flags & !flags::PAYLOAD_FAULT) | copy_exec_args(pid_tgid, stash);
    }
    Some(())
}

#[tracepoint]
pub fn process_exit(ctx: TracePointContext) -> u32 {
    try_exit(|offset| {
        // SAFETY: as in process_fork.
        unsafe { ctx.read_at::<u8>(offset as usize) }
            .ok()
            .map(|dead| dead != 0)
    });
    0
}

#[btf_tracepoint(function = "sched_process_exit")]
pub fn process_exit_btf(ctx: BtfTracePointContext) -> i32 {
    // Only called where the tracepoint has `group_dead`, its second argument: the global
    // tested first is constant at load, so on an older kernel the verifier never sees this
    // read of an argument the tracepoint lacks.
    try_exit(|_| Some(ctx.arg::<u64>(1) != 0));
    0
}

/// `group_dead` reads the tracepoint's field of that name, given its offset; it is only
/// called where the kernel has the field.
#[inline(always)]
fn try_exit(group_dead: impl Fn(u32) -> Option<bool>) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // Whether or not the process is still recorded: a thread may outlive its process's
    // entry in TARGETS (killed by the leader's exit_group on a kernel without group_dead,
    // or moved out of the recorded cgroup), and its entry would never be removed.
    let _ = STASH.remove(&tid);
    if !targeted(tgid) {
        return None;
    }
    let offset = global(&EXIT_GROUP_DEAD_OFFSET);
    let group_dead = if offset == 0 {
        // Older kernels: no group_dead field; the leader's exit stands for the process's.
        tid == tgid
    } else {
        group_dead(offset)?
    };
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
    try_signal(|| {
        // SAFETY: as in process_fork.
        unsafe {
            Some((
                ctx.read_at::<i32>(global(&SIGNAL_SIG_OFFSET) as usize)
                    .ok()?,
                ctx.read_at::<u64>(global(&SIGNAL_HANDLER_OFFSET) as usize)
                    .ok()?,
            ))
        }
    });
    0
}

#[btf_tracepoint(function = "signal_deliver")]
pub fn process_signal_btf(ctx: BtfTracePointContext) -> i32 {
    try_signal(|| {
        let action: u64 = ctx.arg(2);
        // SAFETY: a read through the helper; `sa.sa_handler` opens `struct k_sigaction` on
        // x86_64, the only architecture the BTF programs are attached on.
        let handler = unsafe { bpf_probe_read_kernel(action as *const u64) }.ok()?;
        Some((ctx.arg::<i32>(0), handler))
    });
    0
}

/// `signal` reads the signal's number and the handler it is delivered to; it is only called
/// for a targeted process.
#[inline(always)]
fn try_signal(signal: impl Fn() -> Option<(i32, u64)>) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !targeted(tgid) {
        return None;
    }
    let (sig, handler) = signal()?;
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
