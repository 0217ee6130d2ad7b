//! The last stage on a thread of its own: protobuf encoding, zstd and the disk run beside
//! decode, assembly and redaction instead of after them.
//!
//! Frames leave the redactor in recording order and cross a bounded channel in batches, so
//! the order on disk is the order they were decided in. When the writer falls behind, the
//! pipeline waits on the channel, the drain's backlog grows, and past its budget payloads
//! are shed there (`session::drain`): the one place where load is turned into counted loss.

use std::{
    path::PathBuf,
    sync::mpsc::{sync_channel, Receiver, SyncSender},
    thread::JoinHandle,
};

use recorder_proto::v1::frame::Body;
use recorder_store::{RecordingWriter, WriteError};

/// Frames sent to the writer thread at once (fewer wake-ups than one send per frame).
const BATCH_FRAMES: usize = 512;
/// Batches in flight before the pipeline waits for the writer.
const QUEUED_BATCHES: usize = 64;

enum Command {
    Append(Vec<Body>),
    /// Periodic work at this monotonic time: rotation by age, fsync, idle zstd frames.
    Tick(u64),
    Finish {
        end_reason: String,
        end_mono_ns: u64,
    },
}

/// What the writer thread leaves: the segment files, and the frames it could not write.
type Finished = (Vec<PathBuf>, u64);

/// The recording writer, running on its own thread.
pub struct WriterThread {
    /// The first segment, to name in an error should the thread vanish.
    first_segment: PathBuf,
    /// Frames decided but not yet sent.
    pending: Vec<Body>,
    commands: SyncSender<Command>,
    thread: Option<JoinHandle<Result<Option<Finished>, WriteError>>>,
}

impl WriterThread {
    pub fn start(writer: RecordingWriter) -> std::io::Result<Self> {
        let first_segment = writer.paths()[0].clone();
        let (commands, receiver) = sync_channel(QUEUED_BATCHES);
        let thread = std::thread::Builder::new()
            .name("recorderd-writer".into())
            .spawn(move || run(writer, receiver))?;
        Ok(WriterThread {
            first_segment,
            pending: Vec::with_capacity(BATCH_FRAMES),
            commands,
            thread: Some(thread),
        })
    }

    pub fn append(&mut self, body: Body) -> Result<(), WriteError> {
        self.pending.push(body);
        if self.pending.len() >= BATCH_FRAMES {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is pending (the pipeline calls it after each drained batch).
    pub fn flush(&mut self) -> Result<(), WriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(BATCH_FRAMES));
        self.send(Command::Append(batch))
    }

    pub fn tick(&mut self, now_mono_ns: u64) -> Result<(), WriteError> {
        self.flush()?;
        self.send(Command::Tick(now_mono_ns))
    }

    /// Writes what is pending and the trailer; returns the segment files and how many
    /// frames, in all, could not be written.
    pub fn finish(mut self, end_reason: &str, end_mono_ns: u64) -> Result<Finished, WriteError> {
        self.flush()?;
        self.send(Command::Finish {
            end_reason: end_reason.to_owned(),
            end_mono_ns,
        })?;
        match self.join()? {
            Some(finished) => Ok(finished),
            None => Err(self.gone()),
        }
    }

    /// A send fails only when the thread has stopped: on a write error, which its result
    /// carries.
    fn send(&mut self, command: Command) -> Result<(), WriteError> {
        if self.commands.send(command).is_ok() {
            return Ok(());
        }
        self.join()?;
        Err(self.gone())
    }

    fn join(&mut self) -> Result<Option<Finished>, WriteError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => Err(self.gone()),
        }
    }

    /// The writer thread ended without a result to give (it panicked, or was joined).
    fn gone(&self) -> WriteError {
        WriteError::Io {
            path: self.first_segment.clone(),
            source: std::io::Error::other("the recording writer thread stopped"),
        }
    }
}

fn run(
    mut writer: RecordingWriter,
    commands: Receiver<Command>,
) -> Result<Option<Finished>, WriteError> {
    while let Ok(command) = commands.recv() {
        match command {
            Command::Append(batch) => {
                for body in batch {
                    writer.append(body)?;
                }
            }
            Command::Tick(now_mono_ns) => writer.tick(now_mono_ns)?,
            Command::Finish {
                end_reason,
                end_mono_ns,
            } => {
                let unwritten = writer.unwritten();
                return Ok(Some((writer.finish(&end_reason, end_mono_ns)?, unwritten)));
            }
        }
    }
    // The pipeline went away without finishing (it failed): the segment stays without a
    // trailer, as after a crash, and readers treat it so.
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use recorder_proto::v1::{Event, Header};
    use recorder_store::{Keyring, OutputDir, SegmentPolicy, SegmentReader};

    use super::*;

    #[test]
    fn frames_reach_the_segment_in_the_order_they_were_appended() {
        let dir = tempfile::tempdir().unwrap();
        let output = OutputDir::open_or_create(&dir.path().join("rec")).unwrap();
        let header = Header {
            recording_id: "0123456789ab".into(),
            ..Header::default()
        };
        let policy = SegmentPolicy {
            max_bytes: u64::MAX,
            max_age: Duration::from_secs(3600),
            fsync_interval: None,
            compression_level: 1,
        };
        let writer = RecordingWriter::create(output, header, policy, None).unwrap();
        let mut thread = WriterThread::start(writer).unwrap();
        // More than one batch, with a tick in between.
        for i in 0..(2 * BATCH_FRAMES as u64 + 7) {
            thread
                .append(Body::Event(Event {
                    mono_ns: i,
                    ..Event::default()
                }))
                .unwrap();
            if i == 100 {
                thread.tick(100).unwrap();
            }
        }
        let (paths, unwritten) = thread.finish("target exited", 10_000).unwrap();
        assert_eq!((paths.len(), unwritten), (1, 0));

        let mut reader = SegmentReader::open_with(&paths[0], &Keyring::default()).unwrap();
        let mut times = Vec::new();
        let mut trailer = None;
        while let Some(body) = reader.next_body().unwrap() {
            match body {
                Body::Event(event) => times.push(event.mono_ns),
                Body::Trailer(t) => trailer = Some(t),
                _ => {}
            }
        }
        let expected: Vec<u64> = (0..(2 * BATCH_FRAMES as u64 + 7)).collect();
        assert_eq!(times, expected);
        let trailer = trailer.expect("finish writes the trailer");
        assert_eq!(trailer.events, expected.len() as u64);
        assert_eq!(trailer.end_reason, "target exited");
    }
}
