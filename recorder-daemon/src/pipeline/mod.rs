//! The synchronous path every ring-buffer record takes: decode → assemble → fd table →
//! processes → redaction → the recording writer. The async edges (ring readiness, signals)
//! live in `session`.

/// Ring-buffer bytes into typed kernel records.
pub mod decode;
/// A syscall record joined with its payload chunks, as a recording Event.
pub mod assemble;
/// What each descriptor of each recorded process refers to.
pub mod fdtable;
/// Which recorded processes are alive, and how each ended.
pub mod processes;
/// Redaction between the events and the writer, stream by stream.
pub mod redaction;
/// Written events, kept to build the next ones from without allocating.
pub mod spare;
/// `--stacks`: user stacks, named once and referred to by id.
pub mod stacks;
/// TLS connections: their descriptors, and those recorded as ciphertext only.
pub mod tls;

use std::path::PathBuf;

use recorder_common::{record::process_op, ProcessRecord};
use recorder_proto::v1::{frame::Body, Event, Loss};
use recorder_store::{loss, RecordingWriter, WriteError};
use recorder_syscalls::{by_nr, Effect};

use self::{
    assemble::Assembler,
    decode::{decode, RawRecord},
    fdtable::FdTable,
    processes::Processes,
    redaction::Redactor,
    stacks::Stacks,
    tls::TlsConnections,
};

/// What an event's syscall does to descriptors and processes. Events reach the pipeline from
/// this host's probes, so the row is found by number (an index), not by name (a search).
fn effect_of(event: &Event) -> Effect {
    by_nr(event.syscall_nr).map_or(Effect::Unchanged, |row| row.effect)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct PipelineStats {
    pub events: u64,
    /// Records that did not decode (never expected; counted, not fatal).
    pub decode_errors: u64,
}

pub struct Pipeline {
    assembler: Assembler,
    fds: FdTable,
    processes: Processes,
    redactor: Redactor,
    writer: RecordingWriter,
    tls: TlsConnections,
    /// With `--stacks`.
    stacks: Option<Stacks>,
    stats: PipelineStats,
    /// Payloads the drain shed that a Loss frame has already counted.
    shed_reported: u64,
    /// Stream holds the memory bound forced that a Loss frame has already counted.
    holds_forced_reported: u64,
    /// Every record the targets made before this moment has been handled (`seen_to`).
    seen_to_ns: u64,
}

impl Pipeline {
    pub fn new(
        max_payload_bytes: u32,
        fds: FdTable,
        processes: Processes,
        redactor: Redactor,
        writer: RecordingWriter,
    ) -> Self {
        Pipeline {
            assembler: Assembler::new(max_payload_bytes),
            fds,
            processes,
            redactor,
            writer,
            tls: TlsConnections::default(),
            stacks: None,
            stats: PipelineStats::default(),
            shed_reported: 0,
            holds_forced_reported: 0,
            seen_to_ns: 0,
        }
    }

    /// Takes each syscall's stack (`--stacks`).
    pub fn with_stacks(mut self, stacks: Stacks) -> Self {
        self.stacks = Some(stacks);
        self
    }

    pub fn processes(&mut self) -> &mut Processes {
        &mut self.processes
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    /// Sockets recorded as TLS ciphertext only, and why, per process.
    pub fn not_decrypted(&self) -> (usize, Vec<String>) {
        self.tls.not_decrypted()
    }

    pub fn handle(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        match decode(bytes) {
            Ok(RawRecord::Data { record, bytes }) => self.assembler.data(&record, bytes),
            Ok(RawRecord::Syscall { mut record, aux }) => {
                self.tls.resolve(&mut record);
                let mut event = self.assembler.syscall(&record, aux);
                if let Some(stacks) = &mut self.stacks {
                    stacks.attach(&record, &mut event);
                    stacks.observe(&event);
                }
                self.record(event)?;
            }
            Ok(RawRecord::Stack { record, frames }) => {
                if let Some(stacks) = &mut self.stacks {
                    stacks.taken(&record, frames);
                    for stack in stacks.take_new() {
                        self.writer.add_stack(stack);
                    }
                }
            }
            Ok(RawRecord::StackSeen(record)) => {
                if let Some(stacks) = &mut self.stacks {
                    stacks.seen(&record);
                    for stack in stacks.take_new() {
                        self.writer.add_stack(stack);
                    }
                }
            }
            Ok(RawRecord::Process(record)) => self.process(&record)?,
            Ok(RawRecord::ShedData(record)) => self.assembler.shed(&record),
            Err(error) => {
                self.stats.decode_errors += 1;
                tracing::debug!(%error, "Undecodable record skipped.");
            }
        }
        Ok(())
    }

    /// The end of a batch of records: what was pushed goes to the redaction workers, and
    /// what they have decided is written.
    pub fn end_batch(&mut self) -> Result<(), WriteError> {
        self.redactor.flush();
        self.release()
    }

    fn record(&mut self, mut event: Box<Event>) -> Result<(), WriteError> {
        self.fds.apply(&mut event, self.assembler.spare());
        self.tls.check_ciphertext(&mut event);
        self.processes.observe(&event);
        self.stats.events += 1;
        let now_ns = event.mono_ns;
        self.write(Body::Event(event), now_ns)
    }

    /// Every frame goes through the redactor, which hands it on once it is decided.
    fn write(&mut self, body: Body, now_ns: u64) -> Result<(), WriteError> {
        self.redactor.push(body, now_ns);
        self.release()?;
        if self.redactor.over_memory() {
            self.redactor.relieve_memory();
            self.release()?;
        }
        Ok(())
    }

    /// Writes what the redactor has decided; the events go back to be built on again.
    fn release(&mut self) -> Result<(), WriteError> {
        let (writer, spare) = (&mut self.writer, self.assembler.spare());
        self.redactor.release(spare, |body, spare| {
            writer.append(&body)?;
            spare.keep(body);
            Ok(())
        })
    }

    fn process(&mut self, record: &ProcessRecord) -> Result<(), WriteError> {
        let (pid, tid) = (record.header.tgid, record.header.tid);
        match record.op {
            process_op::FORK if record.flags != 0 => self.fds.fork(pid, record.child),
            process_op::EXIT if record.value != 0 => {
                self.fds.forget(pid);
                self.tls.forget(pid);
            }
            process_op::COMM_MATCH => self.fds.seed(pid),
            process_op::EXEC => self.assembler.rename_tid(record.child, tid),
            _ => {}
        }
        match self.processes.apply(record) {
            Some(frame) => self.write(Body::Process(Box::new(frame)), record.header.ktime_ns),
            None => Ok(()),
        }
    }

    /// Writes a Loss frame for what the kernel dropped in `from..to`, with the payloads the
    /// drain shed and the holds the memory bound forced since the last one, if there was
    /// any of it.
    pub fn record_loss(
        &mut self,
        lost: Loss,
        from_mono_ns: u64,
        to_mono_ns: u64,
    ) -> Result<(), WriteError> {
        let shed = self.assembler.stats().shed_payloads;
        let holds_forced = self.redactor.holds_forced();
        let frame = Loss {
            from_mono_ns,
            to_mono_ns,
            payloads_shed: lost.payloads_shed + (shed - self.shed_reported),
            holds_forced: holds_forced - self.holds_forced_reported,
            ..lost
        };
        self.shed_reported = shed;
        self.holds_forced_reported = holds_forced;
        if loss::total(&frame) == 0
            && frame.payloads_shed == 0
            && frame.stacks_lost == 0
            && frame.holds_forced == 0
            && frame.compat_syscalls == 0
        {
            return Ok(());
        }
        self.write(Body::Loss(Box::new(frame)), to_mono_ns)
    }

    /// The writer's periodic work: closing a frame open too long, rotation by age, fsync.
    pub fn tick(&mut self, now_mono_ns: u64) -> Result<(), WriteError> {
        self.writer.tick(now_mono_ns)
    }

    /// Every record the targets made before `ns` (monotonic) has now been handled: what
    /// the drain stamps on its batches.
    pub fn seen_to(&mut self, ns: u64) {
        self.seen_to_ns = self.seen_to_ns.max(ns);
    }

    /// The hold-back time bound, judged at the moment up to which every record has been
    /// handled ([`seen_to`](Self::seen_to)): what waited that long before it for its stream
    /// to go on is decided, fail-closed, and written. Judged by the daemon's own clock
    /// instead, a pipeline running behind would mask the tail of a stream whose next bytes,
    /// or close, came in time and are only waiting in the queue.
    pub fn expire(&mut self) -> Result<(), WriteError> {
        self.redactor.expire(self.seen_to_ns);
        self.release()
    }

    /// Frames that could not be written (disk full, write errors) so far.
    pub fn unwritten(&self) -> u64 {
        self.writer.unwritten()
    }

    /// The redaction worker threads running now (`--priority background` moves them).
    pub fn redaction_workers(&self) -> &[std::thread::JoinHandle<()>] {
        self.redactor.workers()
    }

    /// Finishes the recording; returns its segment files and how many frames, in all, could
    /// not be written.
    pub fn finish(
        mut self,
        end_reason: &str,
        end_mono_ns: u64,
    ) -> Result<(Vec<PathBuf>, u64), WriteError> {
        self.redactor.finish();
        self.release()?;
        let unwritten = self.writer.unwritten();
        Ok((self.writer.finish(end_reason, end_mono_ns)?, unwritten))
    }
}
