//! The synchronous path every ring-buffer record takes: decode → assemble → fd table →
//! segment writer. The async edges (ring readiness, signals) live in `session`.

use recorder_proto::v1::{frame::Body, Event, Loss, Trailer};

use crate::{
    capture::LossCounts,
    event::{decode, Assembler, RawRecord},
    fdtable::FdTable,
    record::{OutputDir, SegmentWriter, WriteError},
};

#[derive(Clone, Copy, Debug, Default)]
pub struct PipelineStats {
    pub events: u64,
    pub payload_bytes: u64,
    /// Records that did not decode (never expected; counted, not fatal).
    pub decode_errors: u64,
}

pub struct Pipeline {
    assembler: Assembler,
    pub fds: FdTable,
    writer: SegmentWriter,
    stats: PipelineStats,
}

impl Pipeline {
    pub fn new(max_payload_bytes: u32, fds: FdTable, writer: SegmentWriter) -> Self {
        Pipeline {
            assembler: Assembler::new(max_payload_bytes),
            fds,
            writer,
            stats: PipelineStats::default(),
        }
    }

    pub fn stats(&self) -> PipelineStats {
        self.stats
    }

    pub fn handle(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        match decode(bytes) {
            Ok(RawRecord::Data { record, bytes }) => self.assembler.data(&record, bytes),
            Ok(RawRecord::Syscall { record, aux }) => {
                let event = self.assembler.syscall(&record, aux);
                self.record(event)?;
            }
            Err(error) => {
                self.stats.decode_errors += 1;
                tracing::debug!(%error, "Undecodable record skipped.");
            }
        }
        Ok(())
    }

    fn record(&mut self, mut event: Event) -> Result<(), WriteError> {
        self.fds.apply(&mut event);
        self.stats.events += 1;
        self.stats.payload_bytes += event.payload.as_ref().map_or(0, |p| p.data.len() as u64);
        self.writer.append(Body::Event(event))
    }

    /// Writes a Loss frame for what the kernel dropped in `from..to`, if it dropped anything.
    pub fn record_loss(
        &mut self,
        lost: LossCounts,
        from_mono_ns: u64,
        to_mono_ns: u64,
    ) -> Result<(), WriteError> {
        if lost.total() == 0 {
            return Ok(());
        }
        self.writer
            .append(Body::Loss(loss_frame(lost, from_mono_ns, to_mono_ns)))
    }

    pub fn tick(&mut self) -> Result<(), WriteError> {
        self.writer.tick()
    }

    pub fn finish(
        self,
        totals: LossCounts,
        end_reason: &str,
        start_mono_ns: u64,
        end_mono_ns: u64,
        dir: &OutputDir,
    ) -> Result<std::path::PathBuf, WriteError> {
        let trailer = Trailer {
            events: self.stats.events,
            payload_bytes: self.stats.payload_bytes,
            losses: Some(loss_frame(totals, start_mono_ns, end_mono_ns)),
            end_reason: end_reason.to_owned(),
            end_mono_ns,
        };
        self.writer.finish(trailer, dir)
    }
}

fn loss_frame(lost: LossCounts, from_mono_ns: u64, to_mono_ns: u64) -> Loss {
    Loss {
        from_mono_ns,
        to_mono_ns,
        syscalls: lost.syscalls,
        payload_chunks: lost.payload_chunks,
        stash_failures: lost.stash_failures,
    }
}
