//! Writing records: payload chunks, the syscall record, and loss counting when the ring is full.

use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated as gen};
use core::mem::size_of;
use recorder_common::{
    class, kind, loss, record::flags, DataRecord, EventHeader, ProcessRecord, Scratch, Stash,
    SyscallRecord, CHUNK_BYTES, MAX_ARGV, MAX_ARG_BYTES, MAX_AUX_BYTES, MAX_CHUNKS, MAX_IOV,
    MAX_PAYLOAD_LIMIT,
};

use crate::{global, EVENTS, LOSSES, MAX_PAYLOAD_BYTES, PAYLOAD_STOP_BYTES, SCRATCH, WAKEUP_BYTES};
use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};

const DATA_HEADER: usize = size_of::<DataRecord>();
const SYSCALL_HEADER: usize = size_of::<SyscallRecord>();

/// Who and when, shared by every record one syscall produces.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Origin {
    pub tgid: u32,
    pub tid: u32,
    pub nr: u32,
}

impl Origin {
    fn pid_tgid(&self) -> u64 {
        (u64::from(self.tgid) << 32) | u64::from(self.tid)
    }
}

pub fn count_loss(index: u32) {
    add_loss(index, 1);
}

fn add_loss(index: u32, n: u64) {
    if let Some(counter) = LOSSES.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, and tracepoint programs do not nest on one CPU.
        unsafe { *counter += n };
    }
}

/// Bytes waiting in the ring for the daemon: one read of its positions, which a chunk uses
/// twice (the high-water mark, then the wake-up decision).
#[inline(always)]
fn waiting() -> u64 {
    EVENTS.query(BPF_RB_AVAIL_DATA as u64)
}

/// Whether a payload chunk of `len` bytes would take the ring, with `waiting` bytes in it,
/// past its high-water mark. Past it only syscall and process records are written: events
/// before payloads.
#[inline(always)]
fn past_high_water(waiting: u64, len: usize) -> bool {
    waiting + len as u64 > u64::from(global(&PAYLOAD_STOP_BYTES))
}

fn scratch() -> Option<*mut Scratch> {
    SCRATCH.get_ptr_mut(0)
}

/// Outputs the first `len` bytes of the scratch buffer; `len` is re-bounded here so the
/// verifier can see it never exceeds the buffer.
#[inline(always)]
fn output(buf: *mut Scratch, len: usize, waiting: u64) -> bool {
    if len > size_of::<Scratch>() {
        return false;
    }
    // SAFETY: `buf` points at a whole Scratch and len is within it.
    let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
    EVENTS.output::<[u8]>(bytes, wakeup_flags(waiting)).is_ok()
}

/// Records are submitted without a wake-up — a wake-up per record costs the traced program
/// more than the copy itself, and the daemon drains on a timer — until a quarter of the ring
/// is waiting: then every record wakes the daemon, so a burst cannot fill the ring unseen.
/// (Never NO_WAKEUP alone: a consumer waiting on epoll would never be woken.)
#[inline(always)]
fn wakeup_flags(waiting: u64) -> u64 {
    if waiting >= u64::from(global(&WAKEUP_BYTES)) {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Where a payload lives in user memory.
#[derive(Clone, Copy)]
pub enum Source {
    /// One buffer: address and length.
    Buf(u64, u64),
    /// An array of `struct iovec` and its entry count.
    Iov(u64, u64),
}

/// `struct iovec` as user space lays it out on 64-bit targets.
#[repr(C)]
#[derive(Clone, Copy)]
struct Iovec {
    base: u64,
    len: u64,
}

/// Copies up to `limit` bytes of the payload at `source` (capped at MAX_PAYLOAD_BYTES) into
/// DATA chunks, and returns the `flags` bits that describe what happened. An iovec array is
/// walked entry by entry, up to MAX_IOV entries; a payload spread over more is marked lost
/// past them.
pub fn copy_payload(origin: Origin, source: Source, limit: u64) -> u32 {
    let cap = global(&MAX_PAYLOAD_BYTES).min(MAX_PAYLOAD_LIMIT) as u64;
    let (total, mut result) = if limit > cap {
        (cap, flags::PAYLOAD_TRUNCATED)
    } else {
        (limit, 0)
    };
    let (iov, count) = match source {
        Source::Buf(ptr, len) => {
            let n = if len < total { len } else { total };
            return result | recorder_copy_chunks(origin.pid_tgid(), origin.nr as u64, ptr, n, 0);
        }
        Source::Iov(iov, count) => (iov, count),
    };
    let mut offset = 0u64;
    for i in 0..MAX_IOV {
        if i >= count || offset >= total {
            return result;
        }
        // SAFETY: reads one iovec from user memory through the probe helper.
        let Ok(entry) = (unsafe { bpf_probe_read_user((iov + i * 16) as *const Iovec) }) else {
            return result | flags::PAYLOAD_FAULT;
        };
        let room = total - offset;
        let n = if entry.len < room { entry.len } else { room };
        let copied =
            recorder_copy_chunks(origin.pid_tgid(), origin.nr as u64, entry.base, n, offset);
        if copied != 0 {
            return result | copied;
        }
        offset += n;
    }
    if count > MAX_IOV && offset < total {
        result |= flags::PAYLOAD_LOST;
    }
    result
}

/// The length of the next chunk when `remaining` (at least 1) payload bytes are left: at most
/// CHUNK_BYTES, and bounded by a mask every verifier follows, on a value the compiler cannot
/// see through (so it cannot drop the mask as redundant). The clamp alone is not enough: laid
/// out differently (once DATA chunks stopped reading the clock), it lost Linux 6.1's verifier
/// the length's lower bound at the read ("R2 min value is negative").
#[inline(always)]
fn chunk_len(remaining: u64) -> usize {
    let n = if remaining > CHUNK_BYTES as u64 {
        CHUNK_BYTES
    } else {
        remaining as usize
    };
    (core::hint::black_box(n).wrapping_sub(1) & (CHUNK_BYTES - 1)) + 1
}

/// Copies `len` bytes at user address `src` as DATA chunks numbered from payload byte
/// `start`; returns flags for what went wrong, 0 if nothing did.
///
/// A global (non-static) BPF function: the verifier checks it once, with its arguments
/// unknown, instead of once per call and caller state — which is what lets `copy_payload`
/// call it for each of MAX_IOV iovec entries. Global functions take at most five scalars.
#[no_mangle]
#[inline(never)]
pub extern "C" fn recorder_copy_chunks(
    pid_tgid: u64,
    nr: u64,
    src: u64,
    len: u64,
    start: u64,
) -> u32 {
    let origin = Origin {
        tgid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        nr: nr as u32,
    };
    let len = if len > MAX_PAYLOAD_LIMIT as u64 {
        MAX_PAYLOAD_LIMIT as u64
    } else {
        len
    };
    let Some(buf) = scratch() else {
        return flags::PAYLOAD_LOST;
    };
    for i in 0..MAX_CHUNKS as u64 {
        let offset = i * CHUNK_BYTES as u64;
        // Read afresh, so that `remaining` comes from the value this test bounds. Kept as a
        // counter of its own, it did not, and the verifier followed it below zero after the
        // last chunk through every later iteration: past 6.1's million-instruction limit.
        let len = core::hint::black_box(len);
        if offset >= len {
            break;
        }
        let remaining = len - offset;
        let n = chunk_len(remaining);
        let in_ring = waiting();
        if past_high_water(in_ring, DATA_HEADER + n) {
            count_loss(loss::SHED);
            return flags::PAYLOAD_SHED;
        }
        let header = DataRecord {
            header: EventHeader {
                kind: kind::DATA,
                len: (DATA_HEADER + n) as u32,
                ktime_ns: 0,
                tgid: origin.tgid,
                tid: origin.tid,
            },
            nr: origin.nr,
            len: n as u32,
            offset: start + offset,
        };
        // SAFETY: the scratch buffer holds a DataRecord header plus CHUNK_BYTES, and n is at
        // most CHUNK_BYTES; the user pointer is only read through the probe helper.
        let read = unsafe {
            (buf as *mut DataRecord).write_unaligned(header);
            gen::bpf_probe_read_user(
                (buf as *mut u8).add(DATA_HEADER).cast(),
                n as u32,
                (src + offset) as *const core::ffi::c_void,
            )
        };
        if read != 0 {
            return flags::PAYLOAD_FAULT;
        }
        if !output(buf, DATA_HEADER + n, in_ring) {
            count_loss(loss::DATA);
            return flags::PAYLOAD_LOST;
        }
    }
    0
}

/// Copies an exec's path and argv as DATA chunks, one per string with its NUL:
/// `path \0 argv[0] \0 argv[1] \0 ...`; returns flags for what went wrong. Read at enter,
/// because a successful exec leaves none of the old memory behind. A global function for the
/// same reason as `recorder_copy_chunks`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn recorder_copy_argv(pid_tgid: u64, nr: u64, path: u64, argv: u64) -> u32 {
    let Some(buf) = scratch() else {
        return flags::PAYLOAD_LOST;
    };
    let mut offset = 0u64;
    let mut result = 0;
    for i in 0..=MAX_ARGV {
        let src = if i == 0 {
            path
        } else if argv == 0 {
            0
        } else {
            // SAFETY: reads one pointer of the user's argv array through the probe helper.
            match unsafe { bpf_probe_read_user((argv + (i - 1) * 8) as *const u64) } {
                Ok(src) => src,
                Err(_) => return result | flags::PAYLOAD_FAULT,
            }
        };
        if src == 0 {
            return result;
        }
        // SAFETY: the scratch buffer has CHUNK_BYTES >= MAX_ARG_BYTES after the header; the
        // helper bounds the read by the size passed.
        let read = unsafe {
            gen::bpf_probe_read_user_str(
                (buf as *mut u8).add(DATA_HEADER).cast(),
                MAX_ARG_BYTES as u32,
                src as *const core::ffi::c_void,
            )
        };
        if read <= 0 {
            return result | flags::PAYLOAD_FAULT;
        }
        // The count includes the NUL; a full buffer means the string was cut.
        let n = (read as usize) & (2 * MAX_ARG_BYTES - 1);
        if n >= MAX_ARG_BYTES {
            result |= flags::PAYLOAD_TRUNCATED;
        }
        let header = DataRecord {
            header: EventHeader {
                kind: kind::DATA,
                len: (DATA_HEADER + n) as u32,
                ktime_ns: 0,
                tgid: (pid_tgid >> 32) as u32,
                tid: pid_tgid as u32,
            },
            nr: nr as u32,
            len: n as u32,
            offset,
        };
        // SAFETY: the header fits at the start of the scratch buffer.
        unsafe { (buf as *mut DataRecord).write_unaligned(header) };
        if !output(buf, DATA_HEADER + n, waiting()) {
            count_loss(loss::DATA);
            return result | flags::PAYLOAD_LOST;
        }
        offset += n as u64;
    }
    // More arguments than MAX_ARGV.
    result | flags::PAYLOAD_TRUNCATED
}

/// Writes a process record; counts a loss if the ring is full.
pub fn emit_process(tgid: u32, tid: u32, op: u32, child: u32, value: u32, record_flags: u32) {
    let record = ProcessRecord {
        header: EventHeader {
            kind: kind::PROCESS,
            len: size_of::<ProcessRecord>() as u32,
            // SAFETY: a helper without arguments.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
            tgid,
            tid,
        },
        op,
        child,
        value,
        flags: record_flags,
    };
    if EVENTS
        .output::<ProcessRecord>(&record, wakeup_flags(waiting()))
        .is_err()
    {
        count_loss(loss::PROCESS);
    }
}

/// Where the aux bytes of a syscall record come from.
pub enum Aux {
    None,
    /// A NUL-terminated path in user memory.
    Path(u64),
    /// A socket address in user memory and its length.
    Addr(u64, u64),
    /// Two NUL-terminated paths; stored as `first \0 second`, each cut at half the room.
    TwoPaths(u64, u64),
}

const HALF_AUX: usize = MAX_AUX_BYTES / 2;

/// Reads the NUL-terminated string at user address `src` into `dst` (at most `room` bytes,
/// NUL included) and returns its length without the NUL; sets AUX_FAULT when it cannot be
/// read and AUX_TRUNCATED when it filled `room`.
///
/// # Safety
/// `dst` must have `room` writable bytes; `room` must be a power of two.
#[inline(always)]
unsafe fn read_path(dst: *mut u8, room: usize, src: u64, record_flags: &mut u32) -> usize {
    // SAFETY: the caller guarantees `room` bytes at `dst`; the helper bounds the read by it.
    let read = unsafe {
        gen::bpf_probe_read_user_str(dst.cast(), room as u32, src as *const core::ffi::c_void)
    };
    if read <= 0 {
        *record_flags |= flags::AUX_FAULT;
        return 0;
    }
    // The count includes the NUL; a full buffer means the string was cut.
    if read as usize >= room {
        *record_flags |= flags::AUX_TRUNCATED;
    }
    (read as usize - 1) & (room - 1)
}

/// Writes the completed syscall record for what was stashed at enter, with its aux bytes;
/// counts a loss if the ring is full.
///
/// The record is built in the scratch buffer, not on the caller's stack: on kernels before
/// 6.13 (no private BPF stacks) a program and the functions it calls share 512 bytes, and a
/// 104-byte record there pushed the syscall programs past it on 6.1.
///
/// Inlined: as a BPF subprogram taking `aux` by pointer it loaded on 6.1 but never wrote a
/// socket address there (every bind and connect came without one; 6.18 was fine).
#[inline(always)]
pub fn emit_syscall(pid_tgid: u64, stash: &Stash, ret: i64, record_flags: u32, aux: Aux) {
    let Some(buf) = scratch() else {
        count_loss(loss::SYSCALL);
        return;
    };
    // SAFETY: the scratch buffer is a per-CPU map value, aligned and larger than a record.
    let record = unsafe { &mut *(buf as *mut SyscallRecord) };
    *record = SyscallRecord {
        header: EventHeader {
            kind: kind::SYSCALL,
            len: 0,
            // SAFETY: a helper without arguments.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
            tgid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
        },
        nr: stash.nr,
        flags: record_flags,
        args: stash.args,
        ret,
        enter_ns: stash.enter_ns,
        aux_len: 0,
        class: stash.class,
    };
    // SAFETY: the scratch buffer holds a SyscallRecord header plus MAX_AUX_BYTES; reads from
    // user memory go through the probe helpers, which bound them by the size passed.
    let aux_len = unsafe {
        let dst = (buf as *mut u8).add(SYSCALL_HEADER);
        match aux {
            Aux::None => 0,
            Aux::Path(src) => read_path(dst, MAX_AUX_BYTES, src, &mut record.flags),
            Aux::TwoPaths(first, second) => {
                let first_len = read_path(dst, HALF_AUX, first, &mut record.flags);
                if record.flags & flags::AUX_FAULT != 0 {
                    0
                } else {
                    // The first path's NUL stays as the separator.
                    let at = if first_len >= HALF_AUX {
                        HALF_AUX
                    } else {
                        first_len + 1
                    };
                    at + read_path(dst.add(at), HALF_AUX, second, &mut record.flags)
                }
            }
            Aux::Addr(src, len) => {
                let n = if len > 128 { 128 } else { len as usize };
                if gen::bpf_probe_read_user(dst.cast(), n as u32, src as *const core::ffi::c_void)
                    != 0
                {
                    record.flags |= flags::AUX_FAULT;
                    0
                } else {
                    n
                }
            }
        }
    };
    let aux_len = aux_len & (MAX_AUX_BYTES - 1);
    record.aux_len = aux_len as u32;
    record.header.len = (SYSCALL_HEADER + aux_len) as u32;
    if !output(buf, SYSCALL_HEADER + aux_len, waiting()) {
        count_loss(loss::SYSCALL);
        if carries_payload(stash.class as u8) && ret > 0 {
            add_loss(loss::LOST_SYSCALL_BYTES, ret as u64);
        }
    }
}

/// Whether a syscall of this class moves payload bytes (its return value counts them).
#[inline(always)]
pub fn carries_payload(class: u8) -> bool {
    matches!(
        class,
        class::OUT_BUF
            | class::OUT_IOV
            | class::OUT_MSG
            | class::IN_BUF
            | class::IN_IOV
            | class::IN_MSG
    )
}
