//! Writes one segment: preamble, then length-delimited protobuf frames in a zstd stream whose
//! frames are closed every second or MiB, so a crash loses at most that tail.

use std::{
    fs::File,
    io::{self, Write},
    path::PathBuf,
    time::{Duration, Instant},
};

use prost::Message;
use recorder_proto::v1::{frame::Body, Frame, Header, Trailer};
use thiserror::Error;

use super::{dir::OutputDir, segment, DirError};

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

pub struct SegmentWriter {
    path: PathBuf,
    /// `None` only between closing one zstd frame and opening the next.
    encoder: Option<zstd::stream::write::Encoder<'static, CountingFile>>,
    frame_buf: Vec<u8>,
    open_frame_bytes: u64,
    open_since: Instant,
}

impl SegmentWriter {
    /// Creates `name` in `dir` and writes the preamble and the Header frame.
    pub fn create(dir: &OutputDir, name: &str, header: Header) -> Result<Self, WriteError> {
        let path = dir.path().join(name);
        let file = dir.create_file(name)?;
        let io_error = |source| WriteError::Io {
            path: path.clone(),
            source,
        };
        let mut file = CountingFile { file, written: 0 };
        file.write_all(&segment::preamble()).map_err(io_error)?;
        let mut writer = SegmentWriter {
            encoder: Some(new_encoder(file).map_err(io_error)?),
            path,
            frame_buf: Vec::with_capacity(4096),
            open_frame_bytes: 0,
            open_since: Instant::now(),
        };
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
        let on_disk = self.encoder.as_ref().map_or(0, |e| e.get_ref().written);
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

    /// Ends the current zstd frame, so everything appended so far is decodable from disk.
    pub fn close_frame(&mut self) -> Result<(), WriteError> {
        let encoder = self.encoder.take().expect("encoder is open between frames");
        let io_error = |source| WriteError::Io {
            path: self.path.clone(),
            source,
        };
        let file = encoder.finish().map_err(io_error)?;
        self.encoder = Some(new_encoder(file).map_err(io_error)?);
        self.open_frame_bytes = 0;
        self.open_since = Instant::now();
        Ok(())
    }

    /// Writes the trailer, closes the stream and makes the segment durable.
    pub fn finish(mut self, trailer: Trailer, dir: &OutputDir) -> Result<PathBuf, WriteError> {
        self.append(Body::Trailer(trailer))?;
        let encoder = self.encoder.take().expect("encoder is open between frames");
        let io_error = |source| WriteError::Io {
            path: self.path.clone(),
            source,
        };
        let file = encoder.finish().map_err(io_error)?;
        file.file.sync_all().map_err(io_error)?;
        dir.sync().map_err(io_error)?;
        Ok(self.path)
    }
}

fn new_encoder(
    file: CountingFile,
) -> io::Result<zstd::stream::write::Encoder<'static, CountingFile>> {
    let mut encoder = zstd::stream::write::Encoder::new(file, ZSTD_LEVEL)?;
    // A checksum per zstd frame lets the reader tell corruption from a valid prefix.
    encoder.include_checksum(true)?;
    Ok(encoder)
}
