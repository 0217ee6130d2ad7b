//! TLS plaintext: uprobes on the libraries' read and write functions (`recorder_common::tls`
//! lists them). The entry probe keeps the call's arguments per thread (`TLS_CALLS`); the
//! syscall programs, while a thread is in such a call, note the descriptor its first payload
//! syscall uses and mark those syscalls as the call's ciphertext; the return probe copies the
//! plaintext the call moved, in chunks like a syscall's payload, and writes its record.
//!
//! Both directions are copied at return: a write's buffer is still the caller's, and copying
//! at entry would put the plaintext's chunks before the ciphertext syscall's own, which the
//! daemon joins per thread with the next record.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe, uretprobe},
    maps::LruHashMap,
    programs::{ProbeContext, RetProbeContext},
};
use recorder_common::{
    class, loss,
    record::flags,
    tls::{Call, Count, FUNCTIONS, HANDSHAKE, NR_BASE},
    Stash,
};

use crate::{
    emit::{copy_payload, count_loss, emit_syscall, Aux, Origin, Source},
    global, targeted,
};

/// The TLS call each thread is in. LRU: a thread killed inside a call never returns from it.
#[map]
static TLS_CALLS: LruHashMap<u32, Call> = LruHashMap::with_max_entries(16384, 0);

/// 1 when these probes are attached (set at load): the syscall programs look calls up.
#[no_mangle]
static TLS: u32 = 0;

/// 1: copy the ciphertext payloads of syscalls inside a TLS call too (set at load).
#[no_mangle]
static TLS_KEEP_CIPHERTEXT: u32 = 0;

/// For a payload syscall on descriptor `fd` made by thread `tid`: if the thread is inside a
/// TLS call, notes the descriptor (the first one the call uses) and returns the flags that
/// mark the syscall's payload as that call's ciphertext; 0 otherwise.
#[inline(always)]
pub fn inside_call(tid: u32, fd: u64) -> u32 {
    if global(&TLS) == 0 {
        return 0;
    }
    let Some(call) = TLS_CALLS.get_ptr_mut(&tid) else {
        return 0;
    };
    // SAFETY: a pointer into the map's value for this thread, which only this thread
    // touches (its own entry and return probes, and its own syscalls).
    unsafe {
        if (*call).fd < 0 {
            (*call).fd = i64::from(fd as i32);
        }
    }
    // SAFETY: as above.
    let handshake = unsafe { (*call).function } == HANDSHAKE;
    // A handshake has no plaintext to stand for its records: they are kept.
    if handshake || global(&TLS_KEEP_CIPHERTEXT) != 0 {
        flags::TLS_CIPHERTEXT
    } else {
        flags::TLS_CIPHERTEXT | flags::PAYLOAD_OMITTED
    }
}

/// Every handshake function (`recorder_common::tls::HANDSHAKES`). A handshake the library
/// runs inside a read or write call leaves that call's entry alone.
#[uprobe]
pub fn tls_handshake(_ctx: ProbeContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // SAFETY: only presence is checked.
    if !targeted((pid_tgid >> 32) as u32) || unsafe { TLS_CALLS.get(&tid) }.is_some() {
        return 0;
    }
    let call = Call {
        fd: -1,
        function: HANDSHAKE,
        ..Call::default()
    };
    if TLS_CALLS.insert(&tid, &call, 0).is_err() {
        count_loss(loss::STASH);
    }
    0
}

#[uretprobe]
pub fn tls_handshake_return(_ctx: RetProbeContext) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is read before the entry is removed.
    if unsafe { TLS_CALLS.get(&tid) }.is_some_and(|call| call.function == HANDSHAKE) {
        let _ = TLS_CALLS.remove(&tid);
    }
    0
}

#[uprobe]
pub fn tls_ssl_write(ctx: ProbeContext) -> u32 {
    enter(&ctx, 0);
    0
}

#[uprobe]
pub fn tls_ssl_read(ctx: ProbeContext) -> u32 {
    enter(&ctx, 1);
    0
}

#[uprobe]
pub fn tls_ssl_write_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, 2);
    0
}

#[uprobe]
pub fn tls_ssl_read_ex(ctx: ProbeContext) -> u32 {
    enter(&ctx, 3);
    0
}

#[uprobe]
pub fn tls_gnutls_record_send(ctx: ProbeContext) -> u32 {
    enter(&ctx, 4);
    0
}

#[uprobe]
pub fn tls_gnutls_record_recv(ctx: ProbeContext) -> u32 {
    enter(&ctx, 5);
    0
}

/// Keeps the call's arguments for its return. The read and write functions do not call one
/// another, so a call left by a thread that died inside one is simply replaced (and so is
/// a handshake the call is made from: its records are the call's ciphertext now).
#[inline(always)]
fn enter(ctx: &ProbeContext, function: u32) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    if !targeted((pid_tgid >> 32) as u32) {
        return None;
    }
    let count_ptr = match FUNCTIONS.get(function as usize)?.count {
        Count::OutArg3 => ctx.arg(3)?,
        Count::Returned => 0,
    };
    let call = Call {
        conn: ctx.arg(0)?,
        buf: ctx.arg(1)?,
        num: ctx.arg(2)?,
        count_ptr,
        // SAFETY: a helper without arguments.
        enter_ns: unsafe { bpf_ktime_get_ns() },
        fd: -1,
        function,
        _pad: 0,
    };
    if TLS_CALLS.insert(&(pid_tgid as u32), &call, 0).is_err() {
        count_loss(loss::STASH);
    }
    Some(())
}

/// One return probe for every function: the call's entry says which it was.
#[uretprobe]
pub fn tls_return(ctx: RetProbeContext) -> u32 {
    try_return(&ctx);
    0
}

#[inline(always)]
fn try_return(ctx: &RetProbeContext) -> Option<()> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let call = *unsafe { TLS_CALLS.get(&tid) }?;
    if call.function == HANDSHAKE {
        // A handshake's own return removes it.
        return None;
    }
    let _ = TLS_CALLS.remove(&tid);
    let function = FUNCTIONS.get(call.function as usize)?;
    let raw: i64 = ctx.ret();
    // OpenSSL returns an int: the upper half of the register is not its own.
    let ret = if function.ret_bytes == 4 {
        i64::from(raw as i32)
    } else {
        raw
    };
    let moved = match function.count {
        Count::Returned => ret,
        Count::OutArg3 if ret == 1 => {
            // SAFETY: the caller's `size_t *`, read through the probe helper.
            unsafe { bpf_probe_read_user(call.count_ptr as *const u64) }.ok()? as i64
        }
        Count::OutArg3 => 0,
    };
    let origin = Origin {
        tgid: (pid_tgid >> 32) as u32,
        tid,
        nr: NR_BASE + call.function,
    };
    let record_flags = if moved > 0 {
        copy_payload(origin, Source::Buf(call.buf, moved as u64), moved as u64)
    } else {
        0
    };
    let stash = Stash {
        nr: origin.nr,
        class: u32::from(if function.out {
            class::OUT_BUF
        } else {
            class::IN_BUF
        }),
        args: [call.fd as u64, call.buf, call.num, call.conn, 0, 0],
        enter_ns: call.enter_ns,
        flags: 0,
        live: 0,
    };
    emit_syscall(pid_tgid, &stash, moved, record_flags, Aux::None);
    Some(())
}
