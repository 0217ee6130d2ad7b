//! Parses one ring-buffer record into a borrowed view. Pure; never trusts a length it has
//! not checked against the bytes it was given.

use std::mem::size_of;

use recorder_common::{
    kind, DataRecord, EventHeader, ProcessRecord, StackFrame, StackRecord, SyscallRecord,
};
use thiserror::Error;

/// One record as the kernel wrote it, borrowing its trailing bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RawRecord<'a> {
    Syscall {
        record: SyscallRecord,
        aux: &'a [u8],
    },
    Data {
        record: DataRecord,
        bytes: &'a [u8],
    },
    Process(ProcessRecord),
    /// A chunk the daemon's drain shed under load: its header, without bytes.
    ShedData(DataRecord),
    /// The user stack of the tid's next syscall record: `frames` holds whole
    /// [`StackFrame`]s, innermost first (read them with [`stack_frames`]).
    Stack {
        record: StackRecord,
        frames: &'a [u8],
    },
    /// As `Stack`, for a stack the process sent before under the same key (no frames).
    StackSeen(StackRecord),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {have} bytes is shorter than its {need}-byte header")]
    Short { need: usize, have: usize },
    #[error("record says it has {claimed} bytes but {have} arrived")]
    Length { claimed: usize, have: usize },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u32 },
}

pub fn decode(bytes: &[u8]) -> Result<RawRecord<'_>, DecodeError> {
    let header: EventHeader = read(bytes)?;
    match header.kind {
        kind::SYSCALL => {
            let record: SyscallRecord = read(bytes)?;
            let aux = trailing(bytes, size_of::<SyscallRecord>(), record.aux_len)?;
            Ok(RawRecord::Syscall { record, aux })
        }
        kind::DATA => {
            let record: DataRecord = read(bytes)?;
            let data = trailing(bytes, size_of::<DataRecord>(), record.len)?;
            Ok(RawRecord::Data {
                record,
                bytes: data,
            })
        }
        kind::PROCESS => Ok(RawRecord::Process(read(bytes)?)),
        kind::SHED_DATA => Ok(RawRecord::ShedData(read(bytes)?)),
        kind::STACK => {
            let record: StackRecord = read(bytes)?;
            let len = (record.frames as usize)
                .checked_mul(size_of::<StackFrame>())
                .and_then(|len| u32::try_from(len).ok())
                .ok_or(DecodeError::Length {
                    claimed: usize::MAX,
                    have: bytes.len(),
                })?;
            let frames = trailing(bytes, size_of::<StackRecord>(), len)?;
            Ok(RawRecord::Stack { record, frames })
        }
        kind::STACK_SEEN => Ok(RawRecord::StackSeen(read(bytes)?)),
        kind => Err(DecodeError::UnknownKind { kind }),
    }
}

/// The frames of a decoded STACK record.
pub fn stack_frames(frames: &[u8]) -> impl Iterator<Item = StackFrame> + '_ {
    frames
        .chunks_exact(size_of::<StackFrame>())
        .filter_map(|frame| read(frame).ok())
}

/// Reads a `T` from the start of `bytes`.
fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            need,
            have: bytes.len(),
        });
    }
    // SAFETY: `bytes` holds at least size_of::<T>() bytes, and T is one of the plain #[repr(C)]
    // integer-only records of recorder-common (every bit pattern valid); read_unaligned copes
    // with alignment.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

/// The `len` bytes after a header of `header_len` bytes.
fn trailing(bytes: &[u8], header_len: usize, len: u32) -> Result<&[u8], DecodeError> {
    let claimed = header_len
        .checked_add(len as usize)
        .ok_or(DecodeError::Length {
            claimed: usize::MAX,
            have: bytes.len(),
        })?;
    bytes.get(header_len..claimed).ok_or(DecodeError::Length {
        claimed,
        have: bytes.len(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn as_bytes<T: Copy>(value: &T) -> Vec<u8> {
        // SAFETY: T is a plain #[repr(C)] struct; we only read its bytes.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    pub fn syscall_bytes(record: SyscallRecord, aux: &[u8]) -> Vec<u8> {
        let mut record = record;
        record.header.kind = kind::SYSCALL;
        record.aux_len = aux.len() as u32;
        let mut bytes = as_bytes(&record);
        bytes.extend_from_slice(aux);
        bytes
    }

    pub fn data_bytes(record: DataRecord, payload: &[u8]) -> Vec<u8> {
        let mut record = record;
        record.header.kind = kind::DATA;
        record.len = payload.len() as u32;
        let mut bytes = as_bytes(&record);
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn decodes_a_stack_and_rejects_one_longer_than_its_bytes() {
        let frame = StackFrame {
            status: recorder_common::record::stack_status::VALID,
            build_id: [7; 20],
            offset_or_ip: 0x1234,
        };
        let record = StackRecord {
            header: EventHeader {
                kind: kind::STACK,
                ..Default::default()
            },
            frames: 2,
            ..Default::default()
        };
        let mut bytes = as_bytes(&record);
        bytes.extend(as_bytes(&frame));
        assert!(matches!(decode(&bytes), Err(DecodeError::Length { .. })));
        bytes.extend(as_bytes(&frame));
        let Ok(RawRecord::Stack { frames, .. }) = decode(&bytes) else {
            panic!("a whole stack record did not decode");
        };
        assert_eq!(stack_frames(frames).collect::<Vec<_>>(), vec![frame, frame]);
    }

    #[test]
    fn decodes_a_syscall_with_its_path() {
        let bytes = syscall_bytes(
            SyscallRecord {
                nr: 257,
                ret: 3,
                ..Default::default()
            },
            b"/tmp/x",
        );
        match decode(&bytes).unwrap() {
            RawRecord::Syscall { record, aux } => {
                assert_eq!((record.nr, record.ret), (257, 3));
                assert_eq!(aux, b"/tmp/x");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decodes_a_data_chunk() {
        let bytes = data_bytes(
            DataRecord {
                offset: 16,
                ..Default::default()
            },
            b"hello",
        );
        assert!(matches!(
            decode(&bytes),
            Ok(RawRecord::Data {
                bytes: b"hello",
                ..
            })
        ));
    }

    #[test]
    fn decodes_a_process_record() {
        let record = ProcessRecord {
            header: EventHeader {
                kind: kind::PROCESS,
                tgid: 5,
                ..Default::default()
            },
            op: recorder_common::record::process_op::FORK,
            child: 6,
            ..Default::default()
        };
        assert_eq!(decode(&as_bytes(&record)), Ok(RawRecord::Process(record)));
        assert!(matches!(
            decode(&as_bytes(&record)[..30]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn rejects_short_and_overlong_records_and_unknown_kinds() {
        assert!(matches!(decode(&[1, 2, 3]), Err(DecodeError::Short { .. })));
        let mut bytes = data_bytes(DataRecord::default(), b"hello");
        bytes.truncate(bytes.len() - 1);
        assert!(matches!(decode(&bytes), Err(DecodeError::Length { .. })));
        let header = EventHeader {
            kind: 77,
            ..Default::default()
        };
        assert_eq!(
            decode(&as_bytes(&header)),
            Err(DecodeError::UnknownKind { kind: 77 })
        );
    }
}
