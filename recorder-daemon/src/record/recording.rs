//! A recording as the daemon writes it: a sequence of segments sharing one recording id,
//! rotated by size and age, each finished with a trailer that counts what it holds.

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use recorder_proto::v1::{frame::Body, Header, Loss, Trailer};

use super::{catalog::END_ROTATED, segment, OutputDir, Seal, SegmentWriter, WriteError};

/// When to start a new segment, and how often to fsync the open one.
#[derive(Clone, Copy, Debug)]
pub struct SegmentPolicy {
    pub max_bytes: u64,
    pub max_age: Duration,
    /// `None`: fsync only when a segment is finished.
    pub fsync_interval: Option<Duration>,
}

/// Counts for the open segment's trailer.
#[derive(Default)]
struct SegmentCounts {
    events: u64,
    payload_bytes: u64,
    losses: Loss,
    redactions: u64,
}

pub struct RecordingWriter {
    dir: OutputDir,
    header: Header,
    started: SystemTime,
    policy: SegmentPolicy,
    segment: SegmentWriter,
    segment_opened: Instant,
    segment_start_mono_ns: u64,
    last_sync: Instant,
    counts: SegmentCounts,
    paths: Vec<PathBuf>,
    /// Every segment is sealed to these recipients, if set.
    seal: Option<Seal>,
}

impl RecordingWriter {
    /// Creates segment 0; `header.segment_seq` is set for each segment. With `seal`, every
    /// segment is sealed to its recipients.
    pub fn create(
        dir: OutputDir,
        mut header: Header,
        policy: SegmentPolicy,
        seal: Option<Seal>,
    ) -> Result<Self, WriteError> {
        let started = SystemTime::now();
        header.segment_seq = 0;
        let name = segment::file_name(started, &header.recording_id, 0);
        let segment = create_segment(&dir, &name, header.clone(), seal.as_ref())?;
        let paths = vec![segment.path().clone()];
        let now = Instant::now();
        Ok(RecordingWriter {
            dir,
            header,
            started,
            policy,
            segment,
            segment_opened: now,
            segment_start_mono_ns: crate::host_info::monotonic_ns(),
            last_sync: now,
            counts: SegmentCounts::default(),
            paths,
            seal,
        })
    }

    /// Every segment file written so far, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    pub fn append(&mut self, body: Body) -> Result<(), WriteError> {
        match &body {
            Body::Event(event) => {
                self.counts.events += 1;
                let payload = event.payload.as_ref();
                self.counts.payload_bytes += payload.map_or(0, |p| p.data.len() as u64);
                self.counts.redactions +=
                    (event.redactions.len() + payload.map_or(0, |p| p.redactions.len())) as u64;
            }
            Body::Loss(loss) => {
                let total = &mut self.counts.losses;
                total.syscalls += loss.syscalls;
                total.payload_chunks += loss.payload_chunks;
                total.stash_failures += loss.stash_failures;
                total.process_events += loss.process_events;
            }
            Body::Header(_) | Body::Trailer(_) | Body::Process(_) => {}
        }
        self.segment.append(body)?;
        if self.segment.approximate_bytes() >= self.policy.max_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Periodic work: rotate an old segment, fsync, close an idle zstd frame.
    pub fn tick(&mut self, now_mono_ns: u64) -> Result<(), WriteError> {
        if self.segment_opened.elapsed() >= self.policy.max_age && self.counts.events > 0 {
            return self.rotate_at(now_mono_ns);
        }
        if self
            .policy
            .fsync_interval
            .is_some_and(|every| self.last_sync.elapsed() >= every)
        {
            self.last_sync = Instant::now();
            return self.segment.sync();
        }
        self.segment.tick()
    }

    fn rotate(&mut self) -> Result<(), WriteError> {
        self.rotate_at(crate::host_info::monotonic_ns())
    }

    fn rotate_at(&mut self, now_mono_ns: u64) -> Result<(), WriteError> {
        self.header.segment_seq += 1;
        self.header.clock = Some(crate::host_info::clock_base());
        let name = segment::file_name(
            self.started,
            &self.header.recording_id,
            self.header.segment_seq,
        );
        let next = create_segment(&self.dir, &name, self.header.clone(), self.seal.as_ref())?;
        self.paths.push(next.path().clone());
        let previous = std::mem::replace(&mut self.segment, next);
        let trailer = self.trailer(END_ROTATED, now_mono_ns);
        self.counts = SegmentCounts::default();
        self.segment_opened = Instant::now();
        self.segment_start_mono_ns = now_mono_ns;
        previous.finish(trailer, &self.dir)?;
        Ok(())
    }

    fn trailer(&self, end_reason: &str, end_mono_ns: u64) -> Trailer {
        Trailer {
            events: self.counts.events,
            payload_bytes: self.counts.payload_bytes,
            losses: Some(Loss {
                from_mono_ns: self.segment_start_mono_ns,
                to_mono_ns: end_mono_ns,
                ..self.counts.losses
            }),
            end_reason: end_reason.to_owned(),
            end_mono_ns,
            redactions: self.counts.redactions,
        }
    }

    /// Finishes the last segment with a trailer; returns every segment path.
    pub fn finish(self, end_reason: &str, end_mono_ns: u64) -> Result<Vec<PathBuf>, WriteError> {
        let trailer = self.trailer(end_reason, end_mono_ns);
        self.segment.finish(trailer, &self.dir)?;
        Ok(self.paths)
    }
}

fn create_segment(
    dir: &OutputDir,
    name: &str,
    header: Header,
    seal: Option<&Seal>,
) -> Result<SegmentWriter, WriteError> {
    match seal {
        Some(seal) => SegmentWriter::create_sealed(dir, name, header, seal),
        None => SegmentWriter::create(dir, name, header),
    }
}
