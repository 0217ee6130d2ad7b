//! The syscall programs: one pair for `sys_enter` and one for `sys_exit`, in two flavours
//! that share one body.
//!
//! - `syscall_enter_btf` / `syscall_exit_btf` (`tp_btf/sys_enter`, `tp_btf/sys_exit`): BTF
//!   tracepoints, what recorderd attaches on x86_64 kernels with BTF. The kernel calls them
//!   straight from the tracepoint with its arguments, `(struct pt_regs *regs, long id)` and
//!   `(struct pt_regs *regs, long ret)`; the syscall's arguments and, at exit, its number
//!   are read from `regs`.
//! - `syscall_enter` / `syscall_exit` (`raw_syscalls:sys_enter` / `sys_exit` as classic
//!   tracepoints): the fallback for kernels without BTF or another architecture. The kernel
//!   first fills a perf trace record for *every* syscall on the host, before the program can
//!   drop it, which is why they are not the default: that record made an untargeted process
//!   pay about 100 ns a syscall. Their context layout (see the tracefs `format`): `long id`
//!   at offset 8, then `unsigned long args[6]` from offset 16; at exit `long id` at 8 and
//!   `long ret` at 16. Checked on 6.18.
//!
//! Both fire for every syscall of every process, so both first drop syscalls that are not
//! boundary syscalls (one array lookup), then syscalls of processes not recorded.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use recorder_common::{
    class, loss,
    record::{flags, process_op},
    Stash,
};

use crate::{
    compat_syscall,
    emit::{
        carries_payload, copy_payload, count_loss, emit_process, emit_syscall, recorder_copy_argv,
        Aux, Origin, Source,
    },
    stack::{self, UserRegs},
    targeted, tls, CLASSES, STASH, TARGETS, TARGET_COMPAT_SEEN,
};

const NR_OFFSET: usize = 8;
const ARGS_OFFSET: usize = 16;
const RET_OFFSET: usize = 16;

/// Byte offsets in x86_64's `struct pt_regs` (arch/x86/include/asm/ptrace.h, user-visible
/// ABI, unchanged since 2.6): the syscall's arguments (di, si, dx, r10, r8, r9, as
/// `syscall_get_arguments` reads them) and its number (`orig_ax`). The daemon attaches the
/// BTF programs on x86_64 only.
const REGS_ARGS: [usize; 6] = [112, 104, 96, 56, 72, 64];
const REGS_ORIG_AX: usize = 120;
/// The user instruction, stack and frame pointers, where a stack walk starts.
const REGS_IP: usize = 128;
const REGS_SP: usize = 152;
const REGS_BP: usize = 32;

/// How one flavour of program finds the syscall's number, arguments and return value.
trait Syscall {
    /// The syscall's number; `None` if it cannot be read.
    fn nr(&self) -> Option<i64>;
    /// The six argument registers (only read once the syscall is known to be recorded).
    fn args(&self) -> Option<[u64; 6]>;
    /// The return value (at exit).
    fn ret(&self) -> Option<i64>;
    /// The program's context, for helpers that take it.
    fn ctx(&self) -> *mut core::ffi::c_void;
    /// The user registers a stack walk starts from (zeros where unknown).
    fn user_regs(&self) -> UserRegs;
}

/// A classic `raw_syscalls` tracepoint's record.
struct Classic<'a>(&'a TracePointContext);

impl Syscall for Classic<'_> {
    #[inline(always)]
    fn nr(&self) -> Option<i64> {
        // SAFETY: offset follows the tracepoint's format (module docs).
        unsafe { self.0.read_at(NR_OFFSET) }.ok()
    }

    #[inline(always)]
    fn args(&self) -> Option<[u64; 6]> {
        let mut args = [0u64; 6];
        for (i, arg) in args.iter_mut().enumerate() {
            // SAFETY: as above; six 8-byte arguments follow the syscall number.
            *arg = unsafe { self.0.read_at(ARGS_OFFSET + 8 * i) }.ok()?;
        }
        Some(args)
    }

    #[inline(always)]
    fn ret(&self) -> Option<i64> {
        // SAFETY: offset follows the tracepoint's format (module docs).
        unsafe { self.0.read_at(RET_OFFSET) }.ok()
    }

    #[inline(always)]
    fn ctx(&self) -> *mut core::ffi::c_void {
        self.0.as_ptr()
    }

    #[inline(always)]
    fn user_regs(&self) -> UserRegs {
        UserRegs::default()
    }
}

/// A BTF tracepoint's arguments: `regs`, then the syscall number (enter) or its return
/// value (exit).
struct Btf<'a> {
    ctx: &'a BtfTracePointContext,
    exit: bool,
}

impl Btf<'_> {
    /// Reads the 8-byte `pt_regs` field at `offset`. A direct load: the verifier knows the
    /// argument's BTF type (`struct pt_regs *`), checks the offset against it and makes the
    /// load fault-safe, so no helper call is needed.
    #[inline(always)]
    fn reg(&self, offset: usize) -> u64 {
        let regs: *const u8 = self.ctx.arg(0);
        // SAFETY: `regs` is the tracepoint's own `struct pt_regs *`, never null, and every
        // offset used is an 8-byte field inside it (REGS_ARGS, REGS_ORIG_AX).
        unsafe { core::ptr::read_volatile(regs.add(offset) as *const u64) }
    }
}

impl Syscall for Btf<'_> {
    #[inline(always)]
    fn nr(&self) -> Option<i64> {
        // At exit the number is not an argument; the kernel's own sys_exit tracepoint reads
        // it from orig_ax as well (syscall_get_nr).
        Some(if self.exit {
            self.reg(REGS_ORIG_AX) as i64
        } else {
            self.ctx.arg(1)
        })
    }

    #[inline(always)]
    fn args(&self) -> Option<[u64; 6]> {
        Some(REGS_ARGS.map(|offset| self.reg(offset)))
    }

    #[inline(always)]
    fn ret(&self) -> Option<i64> {
        Some(self.ctx.arg(1))
    }

    #[inline(always)]
    fn ctx(&self) -> *mut core::ffi::c_void {
        self.ctx.as_ptr()
    }

    #[inline(always)]
    fn user_regs(&self) -> UserRegs {
        UserRegs {
            ip: self.reg(REGS_IP),
            sp: self.reg(REGS_SP),
            bp: self.reg(REGS_BP),
        }
    }
}

#[btf_tracepoint(function = "sys_enter")]
pub fn syscall_enter_btf(ctx: BtfTracePointContext) -> i32 {
    try_syscall_enter(&Btf {
        ctx: &ctx,
        exit: false,
    });
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn syscall_exit_btf(ctx: BtfTracePointContext) -> i32 {
    try_syscall_exit(&Btf {
        ctx: &ctx,
        exit: true,
    });
    0
}

#[tracepoint]
pub fn syscall_enter(ctx: TracePointContext) -> u32 {
    try_syscall_enter(&Classic(&ctx));
    0
}

#[inline(always)]
fn try_syscall_enter(ctx: &impl Syscall) -> Option<()> {
    let nr = ctx.nr()?;
    let class = boundary_class(nr)?;
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !targeted(tgid) {
        return None;
    }
    if compat_syscall() {
        // Its number is i386's, read here as x86_64's: skipped, never misnamed. Nothing is
        // stashed, so its exit is not recorded either.
        skip_compat(tgid, pid_tgid as u32);
        return None;
    }
    let nr = nr as i32;
    let mut stash = Stash {
        nr: nr as u32,
        class: class as u32,
        enter_ns: unsafe { bpf_ktime_get_ns() },
        args: ctx.args()?,
        ..Stash::default()
    };
    let origin = Origin {
        tgid,
        tid: pid_tgid as u32,
        nr: nr as u32,
    };
    let args = stash.args;
    if class == class::EXIT {
        // exit and exit_group never reach sys_exit: record them now.
        let record_flags =
            stash.flags | stack::take(ctx.ctx(), origin.tgid, origin.tid, ctx.user_regs());
        emit_syscall(pid_tgid, &stash, 0, record_flags, Aux::None);
        return Some(());
    }
    // Plain values rather than Option/Result: LLVM may leave an unused register unset on a
    // None path, and the verifier rejects any read of it.
    let mut msg = Msghdr::default();
    let (copy, iov, ptr, len, limit) = match class {
        class::OUT_BUF => (true, false, args[1], args[2], args[2]),
        class::OUT_IOV => (true, true, args[1], args[2], u64::MAX),
        class::OUT_MSG => {
            msg = read_msghdr(args[1]);
            (true, true, msg.iov, msg.iovlen, u64::MAX)
        }
        _ => (false, false, 0, 0, 0),
    };
    // Inside a recorded TLS call the payload is that call's ciphertext.
    let tls_flags = if carries_payload(class) {
        tls::inside_call(origin.tid, args[0])
    } else {
        0
    };
    stash.flags = tls_flags
        | if class == class::OUT_MSG && msg.valid == 0 {
            flags::PAYLOAD_FAULT
        } else if class == class::EXEC || class == class::EXECAT {
            copy_exec_args(pid_tgid, &stash)
        } else if copy && tls_flags & flags::PAYLOAD_OMITTED == 0 {
            copy_payload(origin, source(iov, ptr, len), limit)
        } else {
            0
        };
    stash.live = 1;
    match STASH.get_ptr_mut(&origin.tid) {
        // SAFETY: the entry is this thread's: no other program writes it while it runs.
        Some(slot) => unsafe { *slot = stash },
        None => {
            if STASH.insert(&origin.tid, &stash, 0).is_err() {
                count_loss(loss::STASH);
            }
        }
    }
    Some(())
}

/// Counts a skipped 32-bit syscall; a listed process's first one also goes out as a
/// process record, so the recording says from where its syscalls are missing.
#[inline(always)]
fn skip_compat(tgid: u32, tid: u32) {
    count_loss(loss::COMPAT);
    // SAFETY: the value is read, then replaced whole; a race only repeats the record.
    let Some(&seen) = (unsafe { TARGETS.get(&tgid) }) else {
        return;
    };
    if seen & TARGET_COMPAT_SEEN == 0
        && TARGETS
            .insert(&tgid, &(seen | TARGET_COMPAT_SEEN), 0)
            .is_ok()
    {
        emit_process(tgid, tid, process_op::COMPAT, 0, 0, 0);
    }
}

#[tracepoint]
pub fn syscall_exit(ctx: TracePointContext) -> u32 {
    try_syscall_exit(&Classic(&ctx));
    0
}

#[inline(always)]
fn try_syscall_exit(ctx: &impl Syscall) -> Option<()> {
    let nr = ctx.nr()?;
    boundary_class(nr)?;
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the entry is this thread's: only this thread writes it, and it is removed
    // only when the thread exits.
    let stash = unsafe { &mut *STASH.get_ptr_mut(&(pid_tgid as u32))? };
    if stash.live == 0 {
        return None;
    }
    // Read in place rather than copied: a copy's 72 bytes on the stack counted against the
    // 512 that kernels before 6.13 allow a program and its calls together.
    finish_syscall(ctx, pid_tgid, stash);
    stash.live = 0;
    Some(())
}

/// Writes the record of a syscall that is returning, from what was stashed at its enter.
#[inline(always)]
fn finish_syscall(ctx: &impl Syscall, pid_tgid: u64, stash: &Stash) -> Option<()> {
    let tid = pid_tgid as u32;
    let ret = ctx.ret()?;
    let origin = Origin {
        tgid: (pid_tgid >> 32) as u32,
        tid,
        nr: stash.nr,
    };
    let mut record_flags = stash.flags;
    let class = stash.class as u8;
    let args = stash.args;
    let msg = match class {
        class::OUT_MSG | class::IN_MSG => read_msghdr(args[1]),
        _ => Msghdr::default(),
    };
    // An outgoing payload that faulted at enter is copied again now: user pages not yet
    // mapped (say, a fresh child's first touch of its read-only data) cannot be faulted in
    // by a probe, but the syscall has just read them, so they are mapped now.
    let retry = stash.flags & flags::PAYLOAD_FAULT != 0;
    let omitted = stash.flags & flags::PAYLOAD_OMITTED != 0;
    let (copy, iov, ptr, len) = match class {
        class::IN_BUF => (true, false, args[1], ret as u64),
        class::IN_IOV => (true, true, args[1], args[2]),
        class::IN_MSG => (msg.valid != 0, true, msg.iov, msg.iovlen),
        class::OUT_BUF if retry => (true, false, args[1], ret as u64),
        class::OUT_IOV if retry => (true, true, args[1], args[2]),
        class::OUT_MSG if retry => (msg.valid != 0, true, msg.iov, msg.iovlen),
        _ => (false, false, 0, 0),
    };
    if copy && retry {
        record_flags &= !flags::PAYLOAD_FAULT;
    }
    // A failed exec still has its old memory, which the kernel has now read: copy again.
    let exec = class == class::EXEC || class == class::EXECAT;
    if exec && retry && ret < 0 {
        record_flags = (record_flags & !flags::PAYLOAD_FAULT) | copy_exec_args(pid_tgid, stash);
    }
    if ret > 0 && class == class::IN_MSG && msg.valid == 0 {
        record_flags |= flags::PAYLOAD_FAULT;
    } else if ret > 0 && copy && !omitted {
        record_flags |= copy_payload(origin, source(iov, ptr, len), ret as u64);
    }
    let aux = match class {
        class::PATHS_0_1 => Aux::TwoPaths(args[0], args[1]),
        class::PATHS_1_3 => Aux::TwoPaths(args[1], args[3]),
        class::OUT_MSG | class::IN_MSG if msg.name != 0 && msg.namelen > 0 => {
            Aux::Addr(msg.name, msg.namelen as u64)
        }
        class::PATH_ARG0 => Aux::Path(args[0]),
        class::PATH_ARG1 => Aux::Path(args[1]),
        class::ADDR_IN if args[1] != 0 => Aux::Addr(args[1], args[2]),
        class::FD_PAIR0 if ret == 0 => Aux::Addr(args[0], 8),
        class::FD_PAIR3 if ret == 0 => Aux::Addr(args[3], 8),
        class::ADDR_OUT if ret >= 0 && args[1] != 0 && args[2] != 0 => {
            // SAFETY: the kernel wrote the address length behind arg2; read it as user memory.
            let len: u32 =
                unsafe { aya_ebpf::helpers::bpf_probe_read_user(args[2] as *const u32) }.ok()?;
            Aux::Addr(args[1], len as u64)
        }
        _ => Aux::None,
    };
    let record_flags =
        record_flags | stack::take(ctx.ctx(), origin.tgid, origin.tid, ctx.user_regs());
    emit_syscall(pid_tgid, stash, ret, record_flags, aux);
    Some(())
}

/// An exec that loaded a 32-bit program returns into it with i386's execve number, which
/// sys_exit would read as another syscall's (the kernel sets it for the first return), so
/// its record is written here, at the exec tracepoint, which fires only once the exec has
/// succeeded: with 0, and without a stack.
#[inline(always)]
pub fn finish_exec_into_compat(pid_tgid: u64) {
    // SAFETY: the entry is this thread's, as in `try_syscall_exit`.
    let Some(stash) = STASH
        .get_ptr_mut(&(pid_tgid as u32))
        .map(|p| unsafe { &mut *p })
    else {
        return;
    };
    let exec = stash.class == class::EXEC as u32 || stash.class == class::EXECAT as u32;
    if stash.live != 0 && exec {
        emit_syscall(pid_tgid, stash, 0, stash.flags, Aux::None);
        stash.live = 0;
    }
}

/// Copies an exec's path and argv from the stashed arguments (see `recorder_copy_argv`).
#[inline(always)]
pub fn copy_exec_args(pid_tgid: u64, stash: &Stash) -> u32 {
    let (path, argv) = if stash.class == class::EXECAT as u32 {
        (stash.args[1], stash.args[2])
    } else {
        (stash.args[0], stash.args[1])
    };
    recorder_copy_argv(pid_tgid, stash.nr as u64, path, argv)
}

/// The syscall's class if it is a boundary syscall; `None` for every other one (and for the
/// `-1` id of a syscall the kernel is restarting or skipping).
#[inline(always)]
fn boundary_class(nr: i64) -> Option<u8> {
    if !(0..recorder_common::MAX_SYSCALL_NR as i64).contains(&nr) {
        return None;
    }
    let class = *CLASSES.get(nr as u32)?;
    (class != class::NONE).then_some(class)
}

#[inline(always)]
fn source(iov: bool, ptr: u64, len: u64) -> Source {
    if iov {
        Source::Iov(ptr, len)
    } else {
        Source::Buf(ptr, len)
    }
}

/// The parts of a user `struct msghdr` (x86_64/aarch64 layout) the probes need; `valid` is
/// 0 when it could not be read.
#[derive(Clone, Copy, Default)]
struct Msghdr {
    name: u64,
    iov: u64,
    iovlen: u64,
    namelen: u32,
    valid: u32,
}

#[inline(always)]
fn read_msghdr(ptr: u64) -> Msghdr {
    // SAFETY: reads user memory through the probe helper; offsets of struct user_msghdr:
    // msg_name 0, msg_namelen 8, msg_iov 16, msg_iovlen 24.
    let (name, namelen, iov, iovlen) = unsafe {
        (
            bpf_probe_read_user(ptr as *const u64),
            bpf_probe_read_user((ptr + 8) as *const u32),
            bpf_probe_read_user((ptr + 16) as *const u64),
            bpf_probe_read_user((ptr + 24) as *const u64),
        )
    };
    match (name, namelen, iov, iovlen) {
        (Ok(name), Ok(namelen), Ok(iov), Ok(iovlen)) => Msghdr {
            name,
            iov,
            iovlen,
            namelen,
            valid: 1,
        },
        _ => Msghdr::default(),
    }
}
