//! Writes one segment: preamble, then length-delimited protobuf frames in a zstd stream whose
//! frames are closed every second or MiB, so a crash loses at most that tail. A sealed segment
//! (`seal`) puts each zstd frame in its own age-sealed block, closed with the frame.

use std::{
    fs::File,
    io::{self, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use prost::Message;
use recorder_proto::v1::{frame::Body, Frame, Header, Trailer};
use thiserror::Error;

use super::{
    dir::OutputDir,
    seal::{self, Seal, SealHeader},
    segment, DirError,
};

/// zstd level 3: about 190 MB/s per core here, and a better ratio than level 1 for text.
const ZSTD_LEVEL: i32 = 3;
/// Close the zstd frame after this much uncompressed input...
const MAX_OPEN_FRAME_BYTES: u64 = 1024 * 1024;
/// ...or after this long, whichever comes first.
const MAX_OPEN_FRAME_AGE: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum WriteError {
    #[error(transparent)]
    Create(#[from] DirError),
    #[error("writing {path} failed: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The segment file, counting the bytes that reach it (for rotation by size).
struct CountingFile {
    file: File,
    written: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
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
    /// `None` only between closing one zstd frame and opening the next.
    encoder: Option<zstd::stream::write::Encoder<'static, Sink>>,
    frame_buf: Vec<u8>,
    open_frame_bytes: u64,
    open_since: Instant,
    seal: Option<Seal>,
    /// Index of the next sealed block to open.
    next_block: u32,
}

impl SegmentWriter {
    /// Creates `name` in `dir` and writes the preamble and the Header frame.
    pub fn create(dir: &OutputDir, name: &str, header: Header) -> Result<Self, WriteError> {
        Self::create_with(dir, name, header, None)
    }

    /// Like `create`, but seals the segment to `seal`'s recipients: only their identities
    /// can read it, and this process cannot.
    pub fn create_sealed(
        dir: &OutputDir,
        name: &str,
        header: Header,
        seal: &Seal,
    ) -> Result<Self, WriteError> {
        Self::create_with(dir, name, header, Some(seal.clone()))
    }

    fn create_with(
        dir: &OutputDir,
        name: &str,
        header: Header,
        seal: Option<Seal>,
    ) -> Result<Self, WriteError> {
        let path = dir.path().join(name);
        let file = dir.create_file(name)?;
        let io_error = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
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
            frame_buf: Vec::with_capacity(4096),
            open_frame_bytes: 0,
            open_since: Instant::now(),
            seal,
            next_block: 0,
        };
        let encoder = writer
            .open_encoder(file)
            .map_err(|source| writer.io_error(source))?;
        writer.encoder = Some(encoder);
        writer.append(Body::Header(header))?;
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
            .map_or(0, |e| e.get_ref().file.written);
        on_disk + self.open_frame_bytes
    }

    /// Closes the open zstd frame and asks the kernel to put the file on stable storage.
    pub fn sync(&mut self) -> Result<(), WriteError> {
        self.close_frame()?;
        let file = &self
            .encoder
            .as_ref()
            .expect("encoder is open between frames")
            .get_ref()
            .file
            .file;
        file.sync_data().map_err(|source| WriteError::Io {
            path: self.path.clone(),
            source,
        })
    }

    pub fn append(&mut self, body: Body) -> Result<(), WriteError> {
        let frame = Frame { body: Some(body) };
        self.frame_buf.clear();
        frame
            .encode_length_delimited(&mut self.frame_buf)
            .expect("a Vec grows to fit any frame");
        let encoder = self
            .encoder
            .as_mut()
            .expect("encoder is open between frames");
        encoder
            .write_all(&self.frame_buf)
            .map_err(|source| WriteError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.open_frame_bytes += self.frame_buf.len() as u64;
        if self.open_frame_bytes >= MAX_OPEN_FRAME_BYTES {
            self.close_frame()?;
        }
        Ok(())
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
        if self.open_frame_bytes == 0 {
            return Ok(());
        }
        let file = self.end_frame()?;
        let encoder = self.open_encoder(file).map_err(|e| self.io_error(e))?;
        self.encoder = Some(encoder);
        self.open_frame_bytes = 0;
        self.open_since = Instant::now();
        Ok(())
    }

    /// Writes the trailer, closes the stream and makes the segment durable.
    pub fn finish(mut self, trailer: Trailer, dir: &OutputDir) -> Result<PathBuf, WriteError> {
        self.append(Body::Trailer(trailer))?;
        let mut file = self.end_frame()?;
        if self.seal.is_some() {
            seal::write_end_marker(&mut file).map_err(|e| self.io_error(e))?;
        }
        file.file.sync_all().map_err(|e| self.io_error(e))?;
        dir.sync().map_err(|e| self.io_error(e))?;
        Ok(self.path)
    }

    /// Finishes the zstd frame and, in a sealed segment, writes its block; returns the file.
    fn end_frame(&mut self) -> Result<CountingFile, WriteError> {
        let encoder = self.encoder.take().expect("encoder is open between frames");
        let mut sink = encoder.finish().map_err(|e| self.io_error(e))?;
        if let Some(block) = sink.block.take() {
            seal::write_block(block, &mut sink.file).map_err(|e| self.io_error(e))?;
        }
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
        let mut encoder = zstd::stream::write::Encoder::new(Sink { file, block }, ZSTD_LEVEL)?;
        // A checksum per zstd frame lets the reader tell corruption from a valid prefix.
        encoder.include_checksum(true)?;
        Ok(encoder)
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
