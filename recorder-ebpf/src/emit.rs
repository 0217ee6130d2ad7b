//! Writing records: payload chunks, the syscall record, and loss counting when the ring is full.

use aya_ebpf::helpers::{bpf_ktime_get_ns, generated as gen};
use core::mem::size_of;
use recorder_common::{
    kind, loss, record::flags, DataRecord, EventHeader, Scratch, SyscallRecord, CHUNK_BYTES,
    MAX_AUX_BYTES, MAX_CHUNKS, MAX_PAYLOAD_LIMIT,
};

use crate::{global, EVENTS, LOSSES, MAX_PAYLOAD_BYTES, SCRATCH};

const DATA_HEADER: usize = size_of::<DataRecord>();
const SYSCALL_HEADER: usize = size_of::<SyscallRecord>();

/// Who and when, shared by every record one syscall produces.
#[derive(Clone, Copy)]
pub struct Origin {
    pub tgid: u32,
    pub tid: u32,
    pub nr: u32,
}

pub fn count_loss(index: u32) {
    if let Some(counter) = LOSSES.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, and tracepoint programs do not nest on one CPU.
        unsafe { *counter += 1 };
    }
}

fn scratch() -> Option<*mut Scratch> {
    SCRATCH.get_ptr_mut(0)
}

/// Outputs the first `len` bytes of the scratch buffer; `len` is re-bounded here so the
/// verifier can see it never exceeds the buffer.
#[inline(always)]
fn output(buf: *mut Scratch, len: usize) -> bool {
    if len > size_of::<Scratch>() {
        return false;
    }
    // SAFETY: `buf` points at a whole Scratch and len is within it.
    let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, len) };
    EVENTS.output::<[u8]>(bytes, 0).is_ok()
}

/// Copies `len` bytes at user address `src` into DATA chunks (up to the payload cap) and
/// returns the `flags` bits that describe what happened.
pub fn copy_payload(origin: Origin, src: u64, len: u64) -> u32 {
    let cap = global(&MAX_PAYLOAD_BYTES).min(MAX_PAYLOAD_LIMIT) as u64;
    let mut result = 0;
    let total = if len > cap {
        result |= flags::PAYLOAD_TRUNCATED;
        cap
    } else {
        len
    };
    let Some(buf) = scratch() else {
        return result | flags::PAYLOAD_LOST;
    };
    let ktime_ns = unsafe { bpf_ktime_get_ns() };
    for i in 0..MAX_CHUNKS as u64 {
        let offset = i * CHUNK_BYTES as u64;
        if offset >= total {
            break;
        }
        let remaining = total - offset;
        let n = if remaining > CHUNK_BYTES as u64 {
            CHUNK_BYTES
        } else {
            remaining as usize
        };
        let header = DataRecord {
            header: EventHeader {
                kind: kind::DATA,
                len: (DATA_HEADER + n) as u32,
                ktime_ns,
                tgid: origin.tgid,
                tid: origin.tid,
            },
            nr: origin.nr,
            len: n as u32,
            offset,
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
            result |= flags::PAYLOAD_FAULT;
            break;
        }
        if !output(buf, DATA_HEADER + n) {
            count_loss(loss::DATA);
            result |= flags::PAYLOAD_LOST;
            break;
        }
    }
    result
}

/// Where the aux bytes of a syscall record come from.
pub enum Aux {
    None,
    /// A NUL-terminated path in user memory.
    Path(u64),
    /// A socket address in user memory and its length.
    Addr(u64, u64),
}

/// Writes the completed syscall record with its aux bytes; counts a loss if the ring is full.
pub fn emit_syscall(mut record: SyscallRecord, aux: Aux) {
    let Some(buf) = scratch() else {
        count_loss(loss::SYSCALL);
        return;
    };
    // SAFETY: the scratch buffer holds a SyscallRecord header plus MAX_AUX_BYTES; reads from
    // user memory go through the probe helpers, which bound them by the size passed.
    let aux_len = unsafe {
        let dst = (buf as *mut u8).add(SYSCALL_HEADER);
        match aux {
            Aux::None => 0,
            Aux::Path(src) => {
                let read = gen::bpf_probe_read_user_str(
                    dst.cast(),
                    MAX_AUX_BYTES as u32,
                    src as *const core::ffi::c_void,
                );
                if read <= 0 {
                    record.flags |= flags::AUX_FAULT;
                    0
                } else {
                    // The count includes the NUL; a full buffer means the path was cut.
                    if read as usize >= MAX_AUX_BYTES {
                        record.flags |= flags::AUX_TRUNCATED;
                    }
                    (read - 1) as usize
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
    // SAFETY: the header fits at the start of the scratch buffer.
    unsafe { (buf as *mut SyscallRecord).write_unaligned(record) };
    if !output(buf, SYSCALL_HEADER + aux_len) {
        count_loss(loss::SYSCALL);
    }
}
