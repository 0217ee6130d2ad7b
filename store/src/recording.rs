//! A recording as the daemon writes it: a sequence of segments sharing one recording id,
//! rotated by size and age, each finished with a trailer that counts what it holds.
//!
//! A failed write (a full disk, an I/O error) never ends the recording. The segment is cut
//! back to its last complete frame and ends there with a trailer naming the reason, when one
//! still fits; writing is then *suspended*: frames are counted instead of written, and about
//! once a second a new segment is tried. The first frame after the header of the segment
//! that succeeds is a Loss frame with the count (`unwritten_frames`) and the window it covers.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use recorder_proto::v1::{frame::Body, Header, Loss, Stack, Trailer};

use crate::{
    catalog::{END_DISK_FULL, END_ROTATED, END_WRITE_FAILED},
    clock, loss, segment, OutputDir, Seal, SegmentWriter, WriteError,
};

/// How long a suspended recording waits before it first tries to start a new segment; the
/// wait doubles after every attempt that fails, up to `MAX_RESUME_WAIT`, so a disk that
/// stays broken costs one attempt (and one log line) a minute, not one a second.
const RESUME_INTERVAL: Duration = Duration::from_secs(1);
const MAX_RESUME_WAIT: Duration = Duration::from_secs(60);

/// When to start a new segment, and how often to fsync the open one.
#[derive(Clone, Copy, Debug)]
pub struct SegmentPolicy {
    pub max_bytes: u64,
    pub max_age: Duration,
    /// `None`: fsync only when a segment is finished.
    pub fsync_interval: Option<Duration>,
    /// zstd level of every frame (`writer::DEFAULT_COMPRESSION_LEVEL` unless asked).
    pub compression_level: i32,
}

/// Counts for the open segment's trailer.
#[derive(Clone, Default)]
struct SegmentCounts {
    events: u64,
    payload: loss::PayloadTally,
    losses: Loss,
    redactions: u64,
    /// Event and Process frames (a Loss frame's counts travel in `losses`).
    frames: u64,
}

/// Writing stopped after a failure; what the Loss frame of the next segment will say.
struct Suspension {
    /// `from_mono_ns`: the end of the last complete frame; counts accumulate until resumed.
    loss: Loss,
    last_attempt: Instant,
}

pub struct RecordingWriter {
    dir: OutputDir,
    header: Header,
    started: SystemTime,
    policy: SegmentPolicy,
    /// The segment being written. While suspended, the last one written (ended), still open:
    /// an open segment is what marks the recording as active.
    segment: SegmentWriter,
    segment_opened: Instant,
    segment_start_mono_ns: u64,
    last_sync: Instant,
    counts: SegmentCounts,
    /// `counts` when the segment last completed a zstd frame: what it holds for sure.
    committed: SegmentCounts,
    /// `segment.frames_closed()` at that point, and the time.
    committed_frames: u64,
    committed_mono_ns: u64,
    paths: Vec<PathBuf>,
    /// Every segment is sealed to these recipients, if set.
    seal: Option<Seal>,
    suspension: Option<Suspension>,
    /// Attempts to resume that failed since writing last worked (a frame reached the disk).
    failed_resumes: u32,
    /// Event and Process frames that could not be written, over the whole recording.
    unwritten: u64,
    /// Every stack of the recording by id (`--stacks`), and those the current segment holds:
    /// a stack is written into each segment before the first event there that refers to it.
    stacks: HashMap<u32, Stack>,
    stacks_in_segment: HashSet<u32>,
}

impl RecordingWriter {
    /// Creates segment 0; `header.segment_seq` is set for each segment. With `seal`, every
    /// segment is sealed to its recipients. Failing to create segment 0 is an error; after
    /// that, failed writes suspend writing instead (module docs).
    pub fn create(
        dir: OutputDir,
        mut header: Header,
        policy: SegmentPolicy,
        seal: Option<Seal>,
    ) -> Result<Self, WriteError> {
        let started = SystemTime::now();
        header.segment_seq = 0;
        let name = segment::file_name(started, &header.recording_id, 0);
        let segment = SegmentWriter::create_with(
            &dir,
            &name,
            header.clone(),
            seal.clone(),
            policy.compression_level,
        )?;
        let paths = vec![segment.path().clone()];
        let now = Instant::now();
        let now_mono_ns = clock::monotonic_ns();
        let committed_frames = segment.frames_closed();
        Ok(RecordingWriter {
            dir,
            header,
            started,
            policy,
            segment,
            segment_opened: now,
            segment_start_mono_ns: now_mono_ns,
            last_sync: now,
            counts: SegmentCounts::default(),
            committed: SegmentCounts::default(),
            committed_frames,
            committed_mono_ns: now_mono_ns,
            paths,
            seal,
            suspension: None,
            failed_resumes: 0,
            unwritten: 0,
            stacks: HashMap::new(),
            stacks_in_segment: HashSet::new(),
        })
    }

    /// Every segment file written so far, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Event and Process frames that could not be written so far (the disk was full or a
    /// write failed).
    pub fn unwritten(&self) -> u64 {
        self.unwritten
    }

    /// Writing has stopped after a failure and not resumed yet.
    pub fn suspended(&self) -> bool {
        self.suspension.is_some()
    }

    /// A stack events may refer to from now on (`Event::stack_id`).
    pub fn add_stack(&mut self, stack: Stack) {
        self.stacks.insert(stack.id, stack);
    }

    /// Appends a frame, or counts it while writing is suspended. A write failure suspends
    /// writing rather than returning an error.
    pub fn append(&mut self, body: &Body) -> Result<(), WriteError> {
        if let Body::Event(event) = body {
            if event.stack_id != 0 && self.suspension.is_none() {
                self.append_stack(event.stack_id);
            }
        }
        self.append_frame(body)
    }

    /// Writes stack `id` into the current segment, if it is not there yet.
    fn append_stack(&mut self, id: u32) {
        if self.stacks_in_segment.contains(&id) {
            return;
        }
        let Some(stack) = self.stacks.get(&id) else {
            return;
        };
        let body = Body::Stack(Box::new(stack.clone()));
        if self.append_frame(&body).is_ok() && self.suspension.is_none() {
            self.stacks_in_segment.insert(id);
        }
    }

    fn append_frame(&mut self, body: &Body) -> Result<(), WriteError> {
        if let Some(suspension) = &mut self.suspension {
            match body {
                Body::Loss(loss) => loss::add(&mut suspension.loss, loss),
                Body::Event(_) | Body::Process(_) => {
                    suspension.loss.unwritten_frames += 1;
                    self.unwritten += 1;
                }
                Body::Header(_) | Body::Trailer(_) | Body::Stack(_) => {}
            }
            return Ok(());
        }
        self.count(body);
        if let Err(error) = self.segment.append(body) {
            self.suspend(&error, clock::monotonic_ns());
            return Ok(());
        }
        self.note_commit();
        // Never between a stack and the event it was written for.
        let stack = matches!(body, Body::Stack(_));
        if !stack && self.segment.approximate_bytes() >= self.policy.max_bytes {
            self.rotate_at(clock::monotonic_ns());
        }
        Ok(())
    }

    fn count(&mut self, body: &Body) {
        let counts = &mut self.counts;
        match body {
            Body::Event(event) => {
                counts.frames += 1;
                counts.events += 1;
                let payload = event.payload.as_ref();
                if let Some(payload) = payload {
                    counts.payload.add_event(payload);
                }
                counts.redactions +=
                    (event.redactions.len() + payload.map_or(0, |p| p.redactions.len())) as u64;
            }
            Body::Process(_) => counts.frames += 1,
            Body::Loss(loss) => loss::add(&mut counts.losses, loss),
            Body::Header(_) | Body::Trailer(_) | Body::Stack(_) => {}
        }
    }

    /// Periodic work: rotate an old segment, fsync, close an idle zstd frame; while
    /// suspended, try to resume once the wait after the last attempt is over.
    pub fn tick(&mut self, now_mono_ns: u64) -> Result<(), WriteError> {
        if let Some(suspension) = &self.suspension {
            if suspension.last_attempt.elapsed() >= self.resume_wait() {
                self.try_resume(now_mono_ns);
            }
            return Ok(());
        }
        if self.segment_opened.elapsed() >= self.policy.max_age && self.counts.events > 0 {
            self.rotate_at(now_mono_ns);
            return Ok(());
        }
        let done = if self
            .policy
            .fsync_interval
            .is_some_and(|every| self.last_sync.elapsed() >= every)
        {
            self.last_sync = Instant::now();
            self.segment.sync()
        } else {
            self.segment.tick()
        };
        match done {
            Ok(()) => self.note_commit(),
            Err(error) => self.suspend(&error, now_mono_ns),
        }
        Ok(())
    }

    fn rotate_at(&mut self, now_mono_ns: u64) {
        // Everything on disk first: if the disk is full from here on, this segment lost
        // nothing and only its trailer is at stake.
        if let Err(error) = self.segment.close_frame() {
            return self.suspend(&error, now_mono_ns);
        }
        self.note_commit();
        let next = match self.create_next() {
            Ok(next) => next,
            Err(error) => return self.suspend(&error, now_mono_ns),
        };
        let trailer = self.trailer(&self.counts, END_ROTATED, now_mono_ns);
        let mut previous = std::mem::replace(&mut self.segment, next);
        self.stacks_in_segment.clear();
        self.reset_counts(now_mono_ns);
        if let Err(error) = previous.end(trailer.clone(), &self.dir) {
            let end_reason = failure_reason(&error);
            let landed = previous.cut(Trailer {
                end_reason: end_reason.clone(),
                ..trailer
            });
            tracing::warn!(
                recording = %self.header.recording_id,
                segment = self.header.segment_seq - 1,
                reason = %end_reason,
                trailer = landed,
                "Finishing a rotated segment failed; its frames are all on disk."
            );
        }
    }

    /// Creates segment `segment_seq + 1`; on failure nothing changes (and no file is left).
    fn create_next(&mut self) -> Result<SegmentWriter, WriteError> {
        let mut header = self.header.clone();
        header.segment_seq += 1;
        header.clock = Some(clock::clock_base());
        let name = segment::file_name(self.started, &header.recording_id, header.segment_seq);
        let next = SegmentWriter::create_with(
            &self.dir,
            &name,
            header.clone(),
            self.seal.clone(),
            self.policy.compression_level,
        )?;
        self.header = header;
        self.paths.push(next.path().clone());
        Ok(next)
    }

    fn reset_counts(&mut self, now_mono_ns: u64) {
        self.counts = SegmentCounts::default();
        self.committed = SegmentCounts::default();
        self.committed_frames = self.segment.frames_closed();
        self.committed_mono_ns = now_mono_ns;
        self.segment_opened = Instant::now();
        self.segment_start_mono_ns = now_mono_ns;
    }

    /// Remembers what is on disk for sure after the segment completed a zstd frame.
    fn note_commit(&mut self) {
        if self.segment.frames_closed() != self.committed_frames {
            self.failed_resumes = 0;
            self.committed_frames = self.segment.frames_closed();
            self.committed = self.counts.clone();
            self.committed_mono_ns = clock::monotonic_ns();
        }
    }

    /// After `error`: cut the segment back to its last complete frame, end it there if a
    /// trailer still fits, and count from now on instead of writing.
    fn suspend(&mut self, error: &WriteError, now_mono_ns: u64) {
        let end_reason = failure_reason(error);
        let trailer = self.trailer(&self.committed, &end_reason, now_mono_ns);
        let landed = self.segment.cut(trailer);
        let _ = self.dir.sync();
        let lost_frames = self.counts.frames - self.committed.frames;
        let mut loss = loss::since(&self.counts.losses, &self.committed.losses);
        loss.from_mono_ns = self.committed_mono_ns;
        loss.unwritten_frames += lost_frames;
        self.unwritten += lost_frames;
        tracing::warn!(
            recording = %self.header.recording_id,
            segment = self.header.segment_seq,
            reason = %end_reason,
            trailer = landed,
            failed_resumes = self.failed_resumes,
            next_attempt_s = self.resume_wait().as_secs(),
            "Writing stopped; counting what cannot be written until writing works again."
        );
        self.suspension = Some(Suspension {
            loss,
            last_attempt: Instant::now(),
        });
    }

    /// Starts the next segment with a Loss frame for the gap; stays suspended if it cannot.
    fn try_resume(&mut self, now_mono_ns: u64) {
        let Some(suspension) = &mut self.suspension else {
            return;
        };
        suspension.last_attempt = Instant::now();
        // Counted as failed until a frame reaches the disk (`note_commit`): a new segment
        // whose first frame fails is no recovery.
        self.failed_resumes = self.failed_resumes.saturating_add(1);
        let next = match self.create_next() {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(
                    recording = %self.header.recording_id,
                    reason = %failure_reason(&error),
                    failed_resumes = self.failed_resumes,
                    next_attempt_s = self.resume_wait().as_secs(),
                    "Writing is still stopped: a new segment could not be started."
                );
                return;
            }
        };
        // Replacing closes the segment that failed, now that the new one is open.
        self.segment = next;
        self.stacks_in_segment.clear();
        self.reset_counts(now_mono_ns);
        let mut loss = self.suspension.take().expect("suspended").loss;
        loss.to_mono_ns = now_mono_ns;
        let unwritten_frames = loss.unwritten_frames;
        self.append(&Body::Loss(Box::new(loss)))
            .expect("append suspends instead of failing");
        // A warning, like the stop: it reports how much was lost.
        if self.suspension.is_none() {
            tracing::warn!(
                recording = %self.header.recording_id,
                segment = self.header.segment_seq,
                unwritten_frames,
                attempts = self.failed_resumes,
                "Writing resumed; frames captured while stopped were counted, not written."
            );
        }
    }

    /// How long to wait after the last attempt before the next: `RESUME_INTERVAL`,
    /// doubled for every attempt that failed, at most `MAX_RESUME_WAIT`.
    pub(super) fn resume_wait(&self) -> Duration {
        let doublings = self.failed_resumes.min(6);
        (RESUME_INTERVAL * (1 << doublings)).min(MAX_RESUME_WAIT)
    }

    /// Lets the next `tick` try to resume without waiting.
    #[cfg(test)]
    pub(super) fn expire_resume_wait(&mut self) {
        if let Some(suspension) = &mut self.suspension {
            suspension.last_attempt = Instant::now() - MAX_RESUME_WAIT;
        }
    }

    fn trailer(&self, counts: &SegmentCounts, end_reason: &str, end_mono_ns: u64) -> Trailer {
        Trailer {
            events: counts.events,
            payload_bytes: counts.payload.kept,
            payload_bytes_moved: counts.payload.moved,
            payload_bytes_lost: counts.payload.lost,
            payload_bytes_capped: counts.payload.capped,
            payload_bytes_omitted: counts.payload.omitted,
            losses: Some(Loss {
                from_mono_ns: self.segment_start_mono_ns,
                to_mono_ns: end_mono_ns,
                ..counts.losses
            }),
            end_reason: end_reason.to_owned(),
            end_mono_ns,
            redactions: counts.redactions,
        }
    }

    /// Finishes the last segment with a trailer; returns every segment path. While
    /// suspended, first tries once to resume; if that fails, the segments stay as they are:
    /// each already ends at a complete frame.
    pub fn finish(
        mut self,
        end_reason: &str,
        end_mono_ns: u64,
    ) -> Result<Vec<PathBuf>, WriteError> {
        if self.suspension.is_some() {
            self.try_resume(end_mono_ns);
        }
        if self.suspension.is_none() {
            let trailer = self.trailer(&self.counts, end_reason, end_mono_ns);
            if let Err(error) = self.segment.end(trailer, &self.dir) {
                self.suspend(&error, end_mono_ns);
            }
        }
        if self.suspension.is_some() {
            tracing::warn!(
                recording = %self.header.recording_id,
                unwritten_frames = self.unwritten,
                "Recording ended while writing was stopped; its last segment ends where writing stopped."
            );
        }
        Ok(self.paths)
    }
}

/// The trailer's end reason for a failed write: never a path or anything recorded.
fn failure_reason(error: &WriteError) -> String {
    match error.io_source() {
        Some(io) if matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => {
            END_DISK_FULL.to_owned()
        }
        Some(io) => format!("{END_WRITE_FAILED}: {}", io.kind()),
        None => END_WRITE_FAILED.to_owned(),
    }
}
