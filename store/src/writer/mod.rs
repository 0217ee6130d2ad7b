//! Writes one segment: preamble, then length-delimited protobuf frames in a zstd stream whose
//! frames are closed every second or MiB, so a crash loses at most that tail. A sealed segment
//! (`seal`) puts each zstd frame in its own age-sealed block, closed with the frame.
//!
//! When a write fails (disk full, I/O error), `cut` ends the segment at its last complete
//! frame (block) and tries once to add a Trailer saying why; `recording` decides what comes
//! next. Nothing before the failed frame is ever rewritten.

use std::{
    fs::File,
    io::{self, Seek, SeekFrom, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use prost::Message;
use recorder_proto::v1::{frame::Body, Frame, Header, Trailer};
use thiserror::Error;

use super::{
    dir::OutputDir,
    frame,
    seal::{self, Seal, SealHeader},
    segment, DirError,
};

/// The zstd level unless the recording asks for another (`--compression-level`). Chosen by
/// `cargo bench -p recorder-store --bench writer` (docs/BENCHMARKS.md, "Writer"): on HTTP/JSON
/// payloads level 1 compresses as well as 3 (5.7 : 1) for about a third less CPU per event,
/// and -3 saves a further fifth of the CPU but needs half again as much disk.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 1;

/// Checks a zstd level: negative levels are faster than 1 and compress less, 1 to 19 trade
/// speed for ratio (20 to 22 need far more memory and are refused).
pub fn check_compression_level(level: i32) -> Result<i32, String> {
    let fastest = *zstd::compression_level_range().start();
    if (fastest..=19).contains(&level) && level != 0 {
        Ok(level)
    } else {
        Err(format!("a zstd level from {fastest} to -1 or 1 to 19"))
    }
}
/// Close the zstd frame after this much uncompressed input...
const MAX_OPEN_FRAME_BYTES: u64 = 1024 * 1024;
/// ...or after this long, whichever comes first.
const MAX_OPEN_FRAME_AGE: Duration = Duration::from_secs(1);
/// Frames smaller than this are handed to zstd together, once they reach `HAND_OVER_BYTES`:
/// each call into it costs about as much as compressing a 64-byte event's frame. zstd holds
/// its input until a block or the zstd frame ends anyway, and the frames wait at most until
/// the zstd frame they belong to closes, so no zstd frame (what a reader recovers after a
/// crash) closes later than before. Larger frames go to it as they are: copying them first
/// cost more than the call saved (`xtask/count-pipeline.sh 4096`).
const SMALL_FRAME_BYTES: usize = 1024;
const HAND_OVER_BYTES: usize = 16 * 1024;

#[derive(Debug, Error)]
pub enum WriteError {
    #[error(transparent)]
    Create(#[from] DirError),
    #[error("writing {path} failed: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} takes no more frames: an earlier write to it failed")]
    Stopped { path: PathBuf },
}

impl WriteError {
    /// The I/O error behind this one, if any (a create failure carries one too).
    pub fn io_source(&self) -> Option<&io::Error> {
        match self {
            WriteError::Io { source, .. } => Some(source),
            WriteError::Create(DirError::CreateFile { source, .. }) => Some(source),
            WriteError::Create(_) | WriteError::Stopped { .. } => None,
        }
    }
}

/// The segment file, counting the bytes that reach it (for rotation by size).
struct CountingFile {
    file: File,
    written: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(result) = fault::intercept(&mut self.file, buf) {
            self.written += *result.as_ref().unwrap_or(&0) as u64;
            return result;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Where zstd output goes: straight to the file, or into the open sealed block.
struct Sink {
    file: CountingFile,
    /// The age stream of the open block; `Some` exactly when the segment is sealed.
    block: Option<age::stream::StreamWriter<Vec<u8>>>,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.block {
            Some(block) => block.write(buf),
            None => self.file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.block {
            // A block reaches the file only whole, in `close_frame`.
            Some(_) => Ok(()),
            None => self.file.flush(),
        }
    }
}

pub struct SegmentWriter {
    path: PathBuf,
    /// A second handle on the segment file (same open file, offset and lock), so that `cut`
    /// can reach it after the encoder holding the first one failed.
    file: File,
    /// File offset just after the last complete zstd frame (or sealed block).
    complete_bytes: u64,
    /// Sealed blocks on disk: the index the next complete block must carry.
    complete_blocks: u32,
    /// How many zstd frames have been completed; `recording` watches it to know what is on disk.
    frames_closed: u64,
    /// A write failed: only `cut` is left to do.
    failed: bool,
    /// `None` only between closing one zstd frame and opening the next.
    encoder: Option<zstd::stream::write::Encoder<'static, Sink>>,
    frame_buf: Vec<u8>,
    /// Small frames encoded and not yet handed to the encoder (`SMALL_FRAME_BYTES`).
    pending: Vec<u8>,
    open_frame_bytes: u64,
    open_since: Instant,
    seal: Option<Seal>,
    /// Index of the next sealed block to open.
    next_block: u32,
    /// The zstd level of every frame.
    level: i32,
}

impl SegmentWriter {
    /// Creates `name` in `dir` and writes the preamble and the Header frame.
    pub fn create(dir: &OutputDir, name: &str, header: Header) -> Result<Self, WriteError> {
        Self::create_with(dir, name, header, None, DEFAULT_COMPRESSION_LEVEL)
    }

    /// Like `create`, but seals the segment to `seal`'s recipients: only their identities
    /// can read it, and this process cannot.
    pub fn create_sealed(
        dir: &OutputDir,
        name: &str,
        header: Header,
        seal: &Seal,
    ) -> Result<Self, WriteError> {
        Self::create_with(
            dir,
            name,
            header,
            Some(seal.clone()),
            DEFAULT_COMPRESSION_LEVEL,
        )
    }

    /// Like `create`, sealed to `seal` if given, compressing at zstd `level`.
    pub fn create_with(
        dir: &OutputDir,
        name: &str,
        header: Header,
        seal: Option<Seal>,
        level: i32,
    ) -> Result<Self, WriteError> {
        let path = dir.path().join(name);
        let file = dir.create_file(name)?;
        let created = Self::start(path.clone(), file, header, seal, level);
        if created.is_err() {
            // A segment without its Header frame is of no use to anyone; a failure here is
            // usually a full disk, so give the space back.
            let _ = std::fs::remove_file(&path);
        }
        created
    }

    /// Writes the preamble and the Header frame into the new, empty `file`.
    fn start(
        path: PathBuf,
        file: File,
        header: Header,
        seal: Option<Seal>,
        level: i32,
    ) -> Result<Self, WriteError> {
        let io_error = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        let handle = file.try_clone().map_err(io_error)?;
        let mut file = CountingFile { file, written: 0 };
        match &seal {
            None => file.write_all(&segment::preamble()).map_err(io_error)?,
            Some(seal) => {
                let mut plain = segment::preamble_with_flags(seal::FLAG_SEALED).to_vec();
                plain.extend(seal_header(&header, seal).encode());
                file.write_all(&plain).map_err(io_error)?;
            }
        }
        let mut writer = SegmentWriter {
            encoder: None,
            path,
            file: handle,
            complete_bytes: file.written,
            complete_blocks: 0,
            frames_closed: 0,
            failed: false,
            frame_buf: Vec::with_capacity(4096),
            pending: Vec::with_capacity(HAND_OVER_BYTES),
            open_frame_bytes: 0,
            open_since: Instant::now(),
            seal,
            next_block: 0,
            level,
        };
        let encoder = writer
            .open_encoder(file)
            .map_err(|source| writer.io_error(source))?;
        writer.encoder = Some(encoder);
        writer.append(&Body::Header(Box::new(header)))?;
        // The header is on disk before any event, so even a crash leaves a readable segment.
        writer.close_frame()?;
        Ok(writer)
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }

    /// Bytes in the file so far, plus what is still buffered uncompressed.
    pub fn approximate_bytes(&self) -> u64 {
        let on_disk = self
            .encoder
            .as_ref()
            .map_or(self.complete_bytes, |e| e.get_ref().file.written);
        on_disk + self.open_frame_bytes
    }

    /// How many zstd frames (sealed blocks) have been completed so far; every frame appended
    /// before the latest completion is on disk.
    pub fn frames_closed(&self) -> u64 {
        self.frames_closed
    }

    /// Closes the open zstd frame and asks the kernel to put the file on stable storage.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        self.close_frame()?;
        let synced = self.file.sync_data();
        self.check(synced.map_err(|e| self.io_error(e)))
    }

    pub fn append(&mut self, body: &Body) -> Result<(), WriteError> {
        self.ensure_writable()?;
        let start = frame::encode(body, &mut self.frame_buf);
        let len = self.frame_buf.len() - start;
        if len < SMALL_FRAME_BYTES {
            if self.pending.len() + len > HAND_OVER_BYTES {
                self.hand_over()?;
            }
            self.pending.extend_from_slice(&self.frame_buf[start..]);
        } else {
            self.hand_over()?;
            let encoder = self
                .encoder
                .as_mut()
                .expect("encoder is open between frames");
            let written = encoder.write_all(&self.frame_buf[start..]);
            self.check(written.map_err(|e| self.io_error(e)))?;
        }
        self.open_frame_bytes += len as u64;
        if self.open_frame_bytes >= MAX_OPEN_FRAME_BYTES {
            self.close_frame()?;
        }
        Ok(())
    }

    /// Gives the frames encoded so far to the encoder.
    fn hand_over(&mut self) -> Result<(), WriteError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let encoder = self
            .encoder
            .as_mut()
            .expect("encoder is open between frames");
        let written = encoder.write_all(&self.pending);
        // Cleared even when the write failed: the writer is then failed, and `cut` drops
        // everything after the last complete zstd frame.
        self.pending.clear();
        self.check(written.map_err(|e| self.io_error(e)))
    }

    /// Closes the zstd frame if it has been open for a second; call this periodically.
    pub fn tick(&mut self) -> Result<(), WriteError> {
        if self.open_frame_bytes > 0 && self.open_since.elapsed() >= MAX_OPEN_FRAME_AGE {
            self.close_frame()?;
        }
        Ok(())
    }

    /// Ends the current zstd frame (and sealed block), so everything appended so far is
    /// decodable from disk. Nothing to end when nothing was appended since the last one.
    pub fn close_frame(&mut self) -> Result<(), WriteError> {
        self.ensure_writable()?;
        if self.open_frame_bytes == 0 {
            return Ok(());
        }
        let closed = self.end_frame().and_then(|file| {
            let encoder = self.open_encoder(file).map_err(|e| self.io_error(e))?;
            self.encoder = Some(encoder);
            Ok(())
        });
        self.check(closed)?;
        self.open_frame_bytes = 0;
        self.open_since = Instant::now();
        Ok(())
    }

    /// Writes the trailer, closes the stream and makes the segment durable.
    pub fn finish(mut self, trailer: Trailer, dir: &OutputDir) -> Result<PathBuf, WriteError> {
        self.end(trailer, dir)?;
        Ok(self.path)
    }

    /// `finish`, keeping the writer (and so the file, open) for `cut` should it fail.
    pub fn end(&mut self, trailer: Trailer, dir: &OutputDir) -> Result<(), WriteError> {
        self.append(&Body::Trailer(Box::new(trailer)))?;
        let ended = self.end_frame().and_then(|mut file| {
            if self.seal.is_some() {
                seal::write_end_marker(&mut file).map_err(|e| self.io_error(e))?;
            }
            file.file.sync_all().map_err(|e| self.io_error(e))?;
            dir.sync().map_err(|e| self.io_error(e))
        });
        self.check(ended)?;
        // Nothing may follow the trailer.
        self.failed = true;
        Ok(())
    }

    /// After a failed write: cuts the file back to the end of its last complete frame (or
    /// sealed block), then tries once to end it there with `trailer`, in a frame of its own.
    /// Returns whether the trailer landed. If it did not, the file is cut back again, so it
    /// ends at its last complete frame either way and every frame before is untouched.
    pub fn cut(&mut self, trailer: Trailer) -> bool {
        self.failed = true;
        // Whatever the encoder holds belongs to the frame that failed: drop it unwritten.
        self.encoder = None;
        self.pending.clear();
        self.open_frame_bytes = 0;
        if let Err(error) = self.truncate() {
            tracing::warn!(%error, "Cannot cut a failed segment back to its last complete frame.");
            return false;
        }
        let landed = self.trailer_bytes(trailer).and_then(|bytes| {
            let file = self.file.try_clone()?;
            CountingFile { file, written: 0 }.write_all(&bytes)?;
            self.file.sync_all()
        });
        if landed.is_ok() {
            return true;
        }
        let _ = self.truncate().and_then(|()| self.file.sync_all());
        false
    }

    fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(self.complete_bytes)?;
        (&self.file).seek(SeekFrom::Start(self.complete_bytes))?;
        Ok(())
    }

    /// The Trailer as a complete zstd frame (in a sealed block followed by the end marker, if
    /// sealed), ready to be written in one call.
    fn trailer_bytes(&self, trailer: Trailer) -> io::Result<Vec<u8>> {
        let frame = Frame {
            body: Some(Body::Trailer(Box::new(trailer))),
        };
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), self.level)?;
        encoder.include_checksum(true)?;
        encoder.write_all(&frame.encode_length_delimited_to_vec())?;
        let compressed = encoder.finish()?;
        let Some(seal) = &self.seal else {
            return Ok(compressed);
        };
        let mut block = seal.open_block(self.complete_blocks)?;
        block.write_all(&compressed)?;
        let mut bytes = Vec::new();
        seal::write_block(block, &mut bytes)?;
        seal::write_end_marker(&mut bytes)?;
        Ok(bytes)
    }

    /// Finishes the zstd frame and, in a sealed segment, writes its block; returns the file.
    fn end_frame(&mut self) -> Result<CountingFile, WriteError> {
        self.hand_over()?;
        let encoder = self.encoder.take().expect("encoder is open between frames");
        let mut sink = encoder.finish().map_err(|e| self.io_error(e))?;
        if let Some(block) = sink.block.take() {
            seal::write_block(block, &mut sink.file).map_err(|e| self.io_error(e))?;
            self.complete_blocks += 1;
        }
        self.complete_bytes = sink.file.written;
        self.frames_closed += 1;
        Ok(sink.file)
    }

    /// A zstd encoder for the next frame, writing into a new sealed block if sealed.
    fn open_encoder(
        &mut self,
        file: CountingFile,
    ) -> io::Result<zstd::stream::write::Encoder<'static, Sink>> {
        let block = match &self.seal {
            Some(seal) => {
                let block = seal.open_block(self.next_block)?;
                self.next_block += 1;
                Some(block)
            }
            None => None,
        };
        let mut encoder = zstd::stream::write::Encoder::new(Sink { file, block }, self.level)?;
        // A checksum per zstd frame lets the reader tell corruption from a valid prefix.
        encoder.include_checksum(true)?;
        Ok(encoder)
    }

    fn ensure_writable(&self) -> Result<(), WriteError> {
        if self.failed {
            return Err(WriteError::Stopped {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Marks the writer failed when `result` is an error: the file then needs `cut`.
    fn check<T>(&mut self, result: Result<T, WriteError>) -> Result<T, WriteError> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn io_error(&self, source: io::Error) -> WriteError {
        WriteError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// What a sealed segment says in the clear (docs/SECURITY.md, "Sealed recordings").
fn seal_header(header: &Header, seal: &Seal) -> SealHeader {
    SealHeader {
        recording_id: header.recording_id.clone(),
        segment_seq: header.segment_seq,
        started_realtime_ns: header.clock.as_ref().map_or(0, |c| c.realtime_ns),
        recipients: seal.recipients().iter().map(ToString::to_string).collect(),
    }
}

/// Test-only fault injection: makes segment writes on the calling thread fail as on a full
/// disk, so tests can show what a failure leaves behind without a small filesystem.
#[cfg(test)]
pub(crate) mod fault;
