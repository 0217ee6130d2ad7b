//! `--stacks`: each recorded syscall's user stack. A stack is named once, when it is first
//! seen, and gets a recording-wide id; events carry the id and the writer puts the stack in
//! every segment that refers to it. A hot loop costs a hash lookup per event, not a stack.

use std::path::PathBuf;

use recorder_common::{
    record::{flags, stack_status},
    StackRecord, SyscallRecord,
};
use recorder_proto::v1::{Event, Stack, StackFrame};
use recorder_symbols::{Placed, StackTop, Symbols};
use rustc_hash::FxHashMap;

use super::decode::stack_frames;

/// Distinct stacks named per recording; past it, stacks are recorded by id with their raw
/// frames only (a program with endless distinct stacks must not make the daemon name them all).
const MAX_NAMED: usize = 100_000;

pub struct Stacks {
    symbols: Symbols,
    top: StackTop,
    /// Raw frames (and the recovered caller) → id.
    ids: FxHashMap<Box<[u8]>, u32>,
    key: Vec<u8>,
    /// Per tid: the id of the stack taken for its next syscall record, and when.
    pending: FxHashMap<u32, (u32, u64)>,
    /// Stacks seen for the first time, for the writer.
    new: Vec<Stack>,
}

impl Stacks {
    pub fn new(debug_dirs: Vec<PathBuf>) -> Self {
        Stacks {
            symbols: Symbols::new(debug_dirs, PathBuf::from("/tmp")),
            top: StackTop::default(),
            ids: FxHashMap::default(),
            key: Vec::new(),
            pending: FxHashMap::default(),
            new: Vec::new(),
        }
    }

    /// A STACK record: its id (a new one names the stack) is kept for the tid's next syscall.
    pub fn taken(&mut self, record: &StackRecord, raw: &[u8]) {
        let pid = record.header.tgid;
        let walked = |index: usize, address: u64| {
            let frame = raw.get(index * size_of_frame()..)?;
            let frame = stack_frames(frame).next()?;
            (frame.status == stack_status::VALID).then_some((frame, address))
        };
        let first = walked(0, record.ip);
        let second = walked(1, record.caller);
        if first.is_some() || second.is_some() {
            self.symbols.modules().offer_mapped_by(pid);
        }
        let placed = |frame: &Option<(recorder_common::StackFrame, u64)>| {
            frame.as_ref().map(|(frame, address)| (frame.build_id, frame.offset_or_ip, *address))
        };
        let (first, second) = (placed(&first), placed(&second));
        let recovered = self.top.caller(
            self.symbols.modules(),
            [
                first.as_ref().map(|(id, offset, address)| Placed {
                    address: *address,
                    build_id: id,
                    file_offset: *offset,
                }),
                second.as_ref().map(|(id, offset, address)| Placed {
                    address: *address,
                    build_id: id,
                    file_offset: *offset,
                }),
            ],
            record.top_of_stack,
        );
        self.key.clear();
        self.key.extend_from_slice(raw);
        if let Some((build_id, offset)) = recovered {
            self.key.extend_from_slice(build_id);
            self.key.extend_from_slice(&offset.to_ne_bytes());
        }
        let id = match self.ids.get(self.key.as_slice()) {
            Some(&id) => id,
            None => {
                let id = self.ids.len() as u32 + 1;
                let recovered = recovered.map(|(build_id, offset)| (build_id.to_vec(), offset));
                let stack = self.name(id, pid, raw, recovered, record.top_of_stack);
                self.ids.insert(self.key.as_slice().into(), id);
                self.new.push(stack);
                id
            }
        };
        self.pending.insert(record.header.tid, (id, record.header.ktime_ns));
    }

    fn name(
        &mut self,
        id: u32,
        pid: u32,
        raw: &[u8],
        recovered: Option<(Vec<u8>, u64)>,
        top: u64,
    ) -> Stack {
        let mut frames: Vec<StackFrame> = stack_frames(raw)
            .filter(|frame| frame.status != stack_status::EMPTY)
            .map(|frame| match frame.status {
                stack_status::VALID => StackFrame {
                    build_id: frame.build_id.to_vec(),
                    file_offset: frame.offset_or_ip,
                    ..StackFrame::default()
                },
                _ => StackFrame {
                    address: frame.offset_or_ip,
                    ..StackFrame::default()
                },
            })
            .collect();
        if let Some((build_id, file_offset)) = recovered {
            let frame = StackFrame {
                address: top,
                build_id,
                file_offset,
                from_stack_top: true,
                ..StackFrame::default()
            };
            frames.insert(1.min(frames.len()), frame);
        }
        if self.ids.len() < MAX_NAMED {
            let mut reloaded = false;
            for (index, frame) in frames.iter_mut().enumerate() {
                self.symbols.name(frame, pid, index > 0);
                // JIT code newer than the perf map last read: read it again, once a stack.
                if frame.function.is_empty() && frame.build_id.is_empty() && !reloaded {
                    reloaded = true;
                    self.symbols.reload_perf_map(pid);
                    self.symbols.name(frame, pid, index > 0);
                }
            }
        }
        Stack { id, frames }
    }

    /// Sets the event's stack from the STACK record its thread wrote just before it. A stack
    /// taken before this syscall began belongs to an earlier one whose record was lost.
    pub fn attach(&mut self, record: &SyscallRecord, event: &mut Event) {
        event.stack_lost = record.flags & flags::STACK_LOST != 0;
        event.stack_id = match self.pending.remove(&record.header.tid) {
            Some((id, taken_ns)) if taken_ns >= record.enter_ns => id,
            _ => 0,
        };
    }

    /// A program or library a process opened or ran: a candidate module file.
    pub fn observe(&mut self, event: &Event) {
        if event.ret >= 0 && event.path.starts_with('/') && looks_like_code(&event.path) {
            self.symbols.modules().offer(&event.path);
        }
    }

    /// Stacks first seen since the last call, for the writer.
    pub fn take_new(&mut self) -> impl Iterator<Item = Stack> + '_ {
        self.new.drain(..)
    }
}

fn size_of_frame() -> usize {
    std::mem::size_of::<recorder_common::StackFrame>()
}

/// Executables and shared libraries: the files worth reading a build id from.
fn looks_like_code(path: &str) -> bool {
    path.contains(".so") || !path.rsplit('/').next().unwrap_or("").contains('.')
}
