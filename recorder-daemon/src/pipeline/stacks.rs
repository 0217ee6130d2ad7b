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
/// STACK records remembered as they arrived (frames and top-of-stack word) → id; past it
/// they are forgotten and worked out again.
const MAX_REMEMBERED: usize = 200_000;
/// Frames kept per generation of `sent`: twice the probes' own memory of what was sent,
/// so that a STACK_SEEN record finds the frames it stands for.
const SENT_GENERATION: usize = 2 * recorder_common::SENT_STACKS_ENTRIES as usize;

/// (tgid, key) → the build-id frames the probe sent under that key.
type SentFrames = FxHashMap<(u32, u64), Box<[u8]>>;

pub struct Stacks {
    symbols: Symbols,
    top: StackTop,
    /// A STACK record's bytes as they arrived (its frames, then the top-of-stack word) →
    /// its id: what a stack seen again costs.
    by_record: FxHashMap<Box<[u8]>, u32>,
    /// A stack's content (its frames, then the caller recovered from the top of the stack)
    /// → its id, so records that differ only in a word that was not a return address share one.
    by_content: FxHashMap<Box<[u8]>, u32>,
    key: Vec<u8>,
    /// The frames of the stacks the probes sent, by (tgid, key): what a STACK_SEEN record
    /// stands for. Two generations, the older dropped when the newer fills.
    sent: [SentFrames; 2],
    /// (tgid, key, top-of-stack word) → id: what a STACK_SEEN record seen before costs.
    seen_ids: FxHashMap<(u32, u64, u64), u32>,
    /// Per tid: the id of the stack taken for its next syscall record (0: its frames were
    /// not found), and when.
    pending: FxHashMap<u32, (u32, u64)>,
    /// Stacks seen for the first time, for the writer.
    new: Vec<Stack>,
}

impl Stacks {
    pub fn new(debug_dirs: Vec<PathBuf>) -> Self {
        Stacks {
            symbols: Symbols::new(debug_dirs, PathBuf::from("/tmp")),
            top: StackTop::default(),
            by_record: FxHashMap::default(),
            by_content: FxHashMap::default(),
            key: Vec::new(),
            sent: Default::default(),
            seen_ids: FxHashMap::default(),
            pending: FxHashMap::default(),
            new: Vec::new(),
        }
    }

    /// A STACK record: its id (a new one names the stack) is kept for the tid's next syscall,
    /// and its frames for the STACK_SEEN records that will stand for it.
    pub fn taken(&mut self, record: &StackRecord, raw: &[u8]) {
        let key = (record.header.tgid, record.key);
        if self.sent[0].len() >= SENT_GENERATION {
            self.sent[1] = std::mem::take(&mut self.sent[0]);
        }
        self.sent[0].insert(key, raw.into());
        let id = self.id_of(record, raw);
        self.remember(record, id);
    }

    /// A STACK_SEEN record: the frames are those its key was sent with.
    pub fn seen(&mut self, record: &StackRecord) {
        let seen = (record.header.tgid, record.key, record.top_of_stack);
        if let Some(&id) = self.seen_ids.get(&seen) {
            self.pending
                .insert(record.header.tid, (id, record.header.ktime_ns));
            return;
        }
        let key = (record.header.tgid, record.key);
        let frames = self.sent[0]
            .remove(&key)
            .or_else(|| self.sent[1].remove(&key));
        let id = match frames {
            Some(frames) => {
                let id = self.id_of(record, &frames);
                // Used again: kept in the newer generation.
                self.sent[0].insert(key, frames);
                id
            }
            None => 0,
        };
        self.remember(record, id);
    }

    /// Keeps `id` (0: unknown) for the record's thread's next syscall, and for the
    /// STACK_SEEN records that will repeat it.
    fn remember(&mut self, record: &StackRecord, id: u32) {
        if id != 0 {
            if self.seen_ids.len() >= MAX_REMEMBERED {
                self.seen_ids.clear();
            }
            let seen = (record.header.tgid, record.key, record.top_of_stack);
            self.seen_ids.insert(seen, id);
        }
        self.pending
            .insert(record.header.tid, (id, record.header.ktime_ns));
    }

    /// The id of the stack of `record` with these frames.
    fn id_of(&mut self, record: &StackRecord, raw: &[u8]) -> u32 {
        self.key.clear();
        self.key.extend_from_slice(raw);
        self.key
            .extend_from_slice(&record.top_of_stack.to_ne_bytes());
        if let Some(&id) = self.by_record.get(self.key.as_slice()) {
            return id;
        }
        let id = self.identify(record, raw);
        if self.by_record.len() >= MAX_REMEMBERED {
            self.by_record.clear();
        }
        self.by_record.insert(self.key.as_slice().into(), id);
        id
    }

    /// The id of a stack not seen as these bytes before: its content's, or a new one.
    fn identify(&mut self, record: &StackRecord, raw: &[u8]) -> u32 {
        let pid = record.header.tgid;
        let frames: Vec<recorder_common::StackFrame> = stack_frames(raw).collect();
        let placed = |index: usize, address: u64| {
            let frame = frames.get(index)?;
            (frame.status == stack_status::VALID).then_some(Placed {
                address,
                build_id: &frame.build_id,
                file_offset: frame.offset_or_ip,
            })
        };
        let walked = [placed(0, record.ip), placed(1, record.caller)];
        if walked.iter().any(Option::is_some) {
            self.symbols.modules().offer_mapped_by(pid);
        }
        let recovered = self
            .top
            .caller(self.symbols.modules(), walked, record.top_of_stack, pid);
        let mut content = raw.to_vec();
        if let Some((build_id, offset)) = &recovered {
            content.extend_from_slice(build_id);
            content.extend_from_slice(&offset.to_ne_bytes());
        }
        if let Some(&id) = self.by_content.get(content.as_slice()) {
            return id;
        }
        let id = self.by_content.len() as u32 + 1;
        let stack = self.name(id, pid, &frames, recovered, record.top_of_stack);
        self.by_content.insert(content.into(), id);
        self.new.push(stack);
        id
    }

    fn name(
        &mut self,
        id: u32,
        pid: u32,
        raw: &[recorder_common::StackFrame],
        recovered: Option<(Vec<u8>, u64)>,
        top: u64,
    ) -> Stack {
        let mut frames = Vec::with_capacity(raw.len() + 1);
        for (index, frame) in raw.iter().enumerate() {
            match frame.status {
                stack_status::VALID => {
                    // Past a frame outside its module's code the frame-pointer chain went
                    // through code built without frame pointers: the rest is not a stack.
                    let code = self.top.is_code(
                        self.symbols.modules(),
                        &frame.build_id,
                        frame.offset_or_ip,
                    );
                    if index > 0 && code == Some(false) {
                        break;
                    }
                    frames.push(StackFrame {
                        build_id: frame.build_id.to_vec(),
                        file_offset: frame.offset_or_ip,
                        ..StackFrame::default()
                    });
                }
                // No build id from the kernel (anonymous memory, or the module's note was not
                // at hand): the live process's map may still place it.
                stack_status::IP => {
                    let address = frame.offset_or_ip;
                    let placed = self.symbols.modules().place(pid, address);
                    frames.push(match placed {
                        Some((build_id, file_offset)) => StackFrame {
                            address,
                            build_id,
                            file_offset,
                            ..StackFrame::default()
                        },
                        None => StackFrame {
                            address,
                            ..StackFrame::default()
                        },
                    });
                }
                _ => break,
            }
        }
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
        if self.by_content.len() < MAX_NAMED {
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
            // An address in no module and no perf map is where the frame-pointer chain
            // left the stack (code built without frame pointers): what follows is not a stack.
            if let Some(cut) = frames
                .iter()
                .skip(1)
                .position(|frame| frame.build_id.is_empty() && frame.function.is_empty())
            {
                frames.truncate(cut + 1);
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
        // Every recorded syscall has a stack or says it lost it; one without either had a
        // STACK_SEEN record whose frames were forgotten here. (TLS library calls, recorded
        // by uprobes, take none.)
        if event.stack_id == 0 && record.nr < recorder_common::tls::NR_BASE {
            event.stack_lost = true;
        }
    }

    /// A program or library a process opened or ran: a candidate module file.
    pub fn observe(&mut self, event: &Event) {
        if event.ret >= 0 && event.path.starts_with('/') && looks_like_code(&event.path) {
            self.symbols
                .modules()
                .offer(std::path::Path::new(&event.path));
        }
    }

    /// Stacks first seen since the last call, for the writer.
    pub fn take_new(&mut self) -> impl Iterator<Item = Stack> + '_ {
        self.new.drain(..)
    }
}

/// Executables and shared libraries: the files worth reading a build id from.
fn looks_like_code(path: &str) -> bool {
    path.contains(".so") || !path.rsplit('/').next().unwrap_or("").contains('.')
}

#[cfg(test)]
mod tests {
    use recorder_common::{EventHeader, StackFrame as RawFrame};

    use super::super::decode::tests::as_bytes;
    use super::*;

    /// No such process: nothing can be placed by a memory map.
    const GONE: u32 = u32::MAX;

    fn record(tid: u32, ktime_ns: u64, top_of_stack: u64) -> StackRecord {
        StackRecord {
            header: EventHeader {
                tgid: GONE,
                tid,
                ktime_ns,
                ..EventHeader::default()
            },
            top_of_stack,
            ..StackRecord::default()
        }
    }

    /// Frames in anonymous memory: addresses only.
    fn frames(addresses: &[u64]) -> Vec<u8> {
        addresses
            .iter()
            .flat_map(|&address| {
                as_bytes(&RawFrame {
                    status: stack_status::IP,
                    build_id: [0; 20],
                    offset_or_ip: address,
                })
            })
            .collect()
    }

    fn syscall(tid: u32, enter_ns: u64, flags: u32) -> SyscallRecord {
        SyscallRecord {
            header: EventHeader {
                tid,
                ..EventHeader::default()
            },
            enter_ns,
            flags,
            ..SyscallRecord::default()
        }
    }

    #[test]
    fn a_stack_seen_again_keeps_its_id_and_is_named_once() {
        let mut stacks = Stacks::new(Vec::new());
        let (a, b) = (frames(&[0x1000, 0x2000]), frames(&[0x3000]));
        // The same frames with a different word on top of the stack (not a return address
        // anywhere): the same stack.
        for (raw, top) in [(&a, 0), (&a, 7), (&b, 0), (&a, 0)] {
            stacks.taken(&record(1, 10, top), raw);
        }
        let new: Vec<Stack> = stacks.take_new().collect();
        assert_eq!(new.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
        // An address no module or perf map places ends the walk: what follows it is not a
        // stack.
        assert_eq!(new[0].frames.len(), 1);
        assert_eq!(new[0].frames[0].address, 0x1000);
    }

    #[test]
    fn an_event_takes_the_stack_its_thread_took_during_its_syscall() {
        let mut stacks = Stacks::new(Vec::new());
        stacks.taken(&record(7, 100, 0), &frames(&[0x1000]));
        let mut event = Event::default();
        stacks.attach(&syscall(7, 90, 0), &mut event);
        assert_eq!((event.stack_id, event.stack_lost), (1, false));

        // Taken for an earlier syscall whose record was lost: not this one's.
        stacks.taken(&record(7, 100, 0), &frames(&[0x1000]));
        let mut event = Event::default();
        stacks.attach(&syscall(7, 150, flags::STACK_LOST), &mut event);
        assert_eq!((event.stack_id, event.stack_lost), (0, true));
        // Nor is it kept for the next one, which says it has none.
        let mut event = Event::default();
        stacks.attach(&syscall(7, 160, 0), &mut event);
        assert_eq!((event.stack_id, event.stack_lost), (0, true));
    }

    #[test]
    fn a_stack_seen_again_by_the_probe_stands_for_the_frames_sent_with_its_key() {
        let mut stacks = Stacks::new(Vec::new());
        let keyed = |key: u64, ktime_ns: u64| StackRecord {
            key,
            ..record(7, ktime_ns, 0)
        };
        stacks.taken(&keyed(42, 100), &frames(&[0x1000]));
        stacks.taken(&keyed(43, 110), &frames(&[0x2000]));
        for (key, id) in [(42, 1), (43, 2)] {
            stacks.seen(&keyed(key, 200));
            let mut event = Event::default();
            stacks.attach(&syscall(7, 190, 0), &mut event);
            assert_eq!((event.stack_id, event.stack_lost), (id, false));
        }
        // A key whose frames are not known: the event says its stack is lost.
        stacks.seen(&keyed(44, 300));
        let mut event = Event::default();
        stacks.attach(&syscall(7, 290, 0), &mut event);
        assert_eq!((event.stack_id, event.stack_lost), (0, true));
        assert_eq!(stacks.take_new().count(), 2);
    }
}
