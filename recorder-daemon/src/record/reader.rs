//! Reads a segment frame by frame, tolerant of a torn tail: every complete frame before the
//! damage is returned, then an error that says where reading stopped.

use std::{
    fs::File,
    io::{self, BufReader, Read},
    path::{Path, PathBuf},
};

use prost::Message;
use recorder_proto::v1::{frame::Body, Frame};
use thiserror::Error;

use super::segment::{self, Preamble, MAX_FRAME_BYTES, PREAMBLE_LEN};

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not a recorderd recording (no segment header)")]
    NotARecording { path: PathBuf },
    #[error(
        "{path} is format version {version}; this recorder reads up to {}: upgrade recorder",
        segment::FORMAT_VERSION
    )]
    FutureVersion { path: PathBuf, version: u16 },
    #[error("{path} ends early, after frame {frames} (byte {offset} of its decompressed stream): the writer stopped mid-frame")]
    Truncated {
        path: PathBuf,
        frames: u64,
        offset: u64,
    },
    #[error(
        "{path} is corrupt at frame {frames} (byte {offset} of its decompressed stream): {reason}"
    )]
    Corrupt {
        path: PathBuf,
        frames: u64,
        offset: u64,
        reason: String,
    },
}

pub struct SegmentReader {
    path: PathBuf,
    stream: BufReader<zstd::stream::read::Decoder<'static, BufReader<File>>>,
    frames: u64,
    offset: u64,
    buf: Vec<u8>,
}

impl SegmentReader {
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let io_error = |source| ReadError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = File::open(path).map_err(io_error)?;
        if file.metadata().map_err(io_error)?.is_dir() {
            return Err(io_error(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )));
        }
        let mut preamble = [0u8; PREAMBLE_LEN];
        let got = read_up_to(&mut file, &mut preamble).map_err(io_error)?;
        match segment::check_preamble(&preamble[..got]) {
            Preamble::Valid { .. } => {}
            Preamble::NotARecording => {
                return Err(ReadError::NotARecording {
                    path: path.to_owned(),
                })
            }
            Preamble::FutureVersion { version } => {
                return Err(ReadError::FutureVersion {
                    path: path.to_owned(),
                    version,
                })
            }
        }
        let decoder = zstd::stream::read::Decoder::new(file).map_err(io_error)?;
        Ok(SegmentReader {
            path: path.to_owned(),
            stream: BufReader::new(decoder),
            frames: 0,
            offset: 0,
            buf: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next frame body, `Ok(None)` at a clean end of stream. Frames of a type this
    /// version does not know are skipped (forward compatibility).
    pub fn next_body(&mut self) -> Result<Option<Body>, ReadError> {
        loop {
            let Some(len) = self.read_length()? else {
                return Ok(None);
            };
            if len > MAX_FRAME_BYTES {
                return Err(self.corrupt(format!("frame length {len} exceeds {MAX_FRAME_BYTES}")));
            }
            self.buf.resize(len as usize, 0);
            let mut buf = std::mem::take(&mut self.buf);
            let read = self.stream.read_exact(&mut buf);
            self.buf = buf;
            read.map_err(|error| self.stream_error(error))?;
            let frame = Frame::decode(self.buf.as_slice())
                .map_err(|error| self.corrupt(format!("undecodable frame: {error}")))?;
            self.offset += len;
            self.frames += 1;
            if let Some(body) = frame.body {
                return Ok(Some(body));
            }
        }
    }

    /// Reads a varint length prefix; `None` when the stream ends cleanly before it.
    fn read_length(&mut self) -> Result<Option<u64>, ReadError> {
        let mut value = 0u64;
        for index in 0..10 {
            let mut byte = [0u8; 1];
            match self.stream.read(&mut byte) {
                Ok(0) if index == 0 => return Ok(None),
                Ok(0) => return Err(self.truncated()),
                Ok(_) => {}
                Err(error) => return Err(self.stream_error(error)),
            }
            self.offset += 1;
            value |= u64::from(byte[0] & 0x7f) << (7 * index);
            if byte[0] & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(self.corrupt("length prefix longer than 10 bytes".to_owned()))
    }

    fn stream_error(&self, error: io::Error) -> ReadError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            self.truncated()
        } else {
            // zstd says "incomplete frame" style errors with other kinds; the checksum and
            // framing errors mean the bytes themselves are wrong.
            let reason = error.to_string();
            if reason.contains("incomplete")
                || reason.contains("Unknown frame descriptor") && self.frames > 0
            {
                self.truncated()
            } else {
                self.corrupt(reason)
            }
        }
    }

    fn truncated(&self) -> ReadError {
        ReadError::Truncated {
            path: self.path.clone(),
            frames: self.frames,
            offset: self.offset,
        }
    }

    fn corrupt(&self, reason: String) -> ReadError {
        ReadError::Corrupt {
            path: self.path.clone(),
            frames: self.frames,
            offset: self.offset,
            reason,
        }
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
