//! Reads a segment frame by frame, tolerant of a torn tail.
//!
//! The writer never splits a protobuf frame across zstd frames, so the reader walks the file
//! one zstd frame at a time: it finds the frame's exact compressed size, decodes it (checking
//! its checksum), and queues the protobuf frames inside. Damage is therefore reported at the
//! byte offset of the zstd frame where it starts, after every complete frame before it has
//! been returned. No length read from the file is trusted: every allocation is capped.

use std::{
    collections::VecDeque,
    fs::File,
    io::{self, Read},
    path::{Path, PathBuf},
};

use prost::Message;
use recorder_proto::v1::{frame::Body, Frame};
use thiserror::Error;

use super::segment::{self, Preamble, MAX_FRAME_BYTES, PREAMBLE_LEN};

/// Largest compressed zstd frame accepted (the writer closes frames every MiB of input).
const MAX_ZSTD_FRAME_BYTES: usize = 2 * MAX_FRAME_BYTES as usize;
/// Largest decompressed zstd frame accepted.
const MAX_DECODED_BYTES: u64 = 2 * MAX_FRAME_BYTES;
const READ_CHUNK: usize = 256 * 1024;

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
    #[error("{path} ends in an unfinished zstd frame at byte {offset}, after {frames} complete frames: the writer stopped mid-write")]
    Truncated {
        path: PathBuf,
        frames: u64,
        offset: u64,
    },
    #[error("{path} is corrupt at byte {offset}, after {frames} complete frames: {reason}")]
    Corrupt {
        path: PathBuf,
        frames: u64,
        offset: u64,
        reason: String,
    },
}

impl ReadError {
    /// True for damage at the end of an otherwise valid file (a writer that died).
    pub fn is_truncation(&self) -> bool {
        matches!(self, ReadError::Truncated { .. })
    }
}

pub struct SegmentReader {
    path: PathBuf,
    file: File,
    /// Compressed bytes read but not yet decoded; `pending_bytes[0]` is at file offset
    /// `pending_offset`.
    pending_bytes: Vec<u8>,
    pending_offset: u64,
    at_eof: bool,
    /// Frames decoded from the current zstd frame and not yet returned.
    queued: VecDeque<Body>,
    /// An error found inside the current zstd frame, returned once `queued` is empty.
    deferred: Option<ReadError>,
    frames: u64,
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
                "it is a directory",
            )));
        }
        let mut preamble = Vec::with_capacity(PREAMBLE_LEN);
        (&mut file)
            .take(PREAMBLE_LEN as u64)
            .read_to_end(&mut preamble)
            .map_err(io_error)?;
        match segment::check_preamble(&preamble) {
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
        Ok(SegmentReader {
            path: path.to_owned(),
            file,
            pending_bytes: Vec::new(),
            pending_offset: PREAMBLE_LEN as u64,
            at_eof: false,
            queued: VecDeque::new(),
            deferred: None,
            frames: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames returned so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The next frame body; `Ok(None)` at a clean end of the file. Frames of a type this
    /// version does not know are skipped (forward compatibility).
    pub fn next_body(&mut self) -> Result<Option<Body>, ReadError> {
        loop {
            if let Some(body) = self.queued.pop_front() {
                self.frames += 1;
                return Ok(Some(body));
            }
            if let Some(error) = self.deferred.take() {
                return Err(error);
            }
            if !self.decode_next_zstd_frame()? {
                return Ok(None);
            }
        }
    }

    /// Lets the reader look past the end it saw: for following a segment still being
    /// written. After a `Truncated` error, the unfinished frame is tried again.
    pub fn refresh(&mut self) {
        self.at_eof = false;
    }

    /// Decodes the next complete zstd frame into `queued`; false at a clean end.
    fn decode_next_zstd_frame(&mut self) -> Result<bool, ReadError> {
        loop {
            if self.pending_bytes.is_empty() {
                if !self.fill()? {
                    return Ok(false);
                }
                continue;
            }
            match zstd::zstd_safe::find_frame_compressed_size(&self.pending_bytes) {
                Ok(size) => {
                    let offset = self.pending_offset;
                    let compressed: Vec<u8> = self.pending_bytes.drain(..size).collect();
                    self.pending_offset += size as u64;
                    self.queue_frames(&compressed, offset);
                    return Ok(true);
                }
                Err(code) if zstd::zstd_safe::get_error_name(code) == "Src size is incorrect" => {
                    if self.pending_bytes.len() > MAX_ZSTD_FRAME_BYTES {
                        return Err(self.corrupt(
                            self.pending_offset,
                            "zstd frame larger than any the writer makes",
                        ));
                    }
                    if !self.fill()? {
                        return Err(ReadError::Truncated {
                            path: self.path.clone(),
                            frames: self.frames,
                            offset: self.pending_offset,
                        });
                    }
                }
                Err(code) => {
                    let reason = format!(
                        "not a zstd frame ({})",
                        zstd::zstd_safe::get_error_name(code)
                    );
                    return Err(self.corrupt(self.pending_offset, &reason));
                }
            }
        }
    }

    /// Reads more compressed bytes; false when the file has no more.
    fn fill(&mut self) -> Result<bool, ReadError> {
        if self.at_eof {
            return Ok(false);
        }
        let start = self.pending_bytes.len();
        self.pending_bytes.resize(start + READ_CHUNK, 0);
        let read = self.file.read(&mut self.pending_bytes[start..]);
        let n = match read {
            Ok(n) => n,
            Err(source) => {
                self.pending_bytes.truncate(start);
                return Err(ReadError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        self.pending_bytes.truncate(start + n);
        if n == 0 {
            self.at_eof = true;
        }
        Ok(n > 0)
    }

    /// Decompresses one zstd frame (starting at file byte `offset`) and queues its frames;
    /// damage inside it is deferred until the frames before the damage are returned.
    fn queue_frames(&mut self, compressed: &[u8], offset: u64) {
        let mut decoded = Vec::new();
        let result = zstd::stream::read::Decoder::with_buffer(compressed)
            .map(|decoder| decoder.single_frame())
            .and_then(|decoder| {
                decoder
                    .take(MAX_DECODED_BYTES + 1)
                    .read_to_end(&mut decoded)
            });
        if let Err(error) = result {
            self.deferred =
                Some(self.corrupt(offset, &format!("zstd frame does not decode ({error})")));
            return;
        }
        if decoded.len() as u64 > MAX_DECODED_BYTES {
            self.deferred = Some(self.corrupt(
                offset,
                "zstd frame decodes to more than any the writer makes",
            ));
            return;
        }
        let mut rest = decoded.as_slice();
        while !rest.is_empty() {
            let frame = next_frame(&mut rest);
            match frame {
                Ok(Some(body)) => self.queued.push_back(body),
                Ok(None) => {}
                Err(reason) => {
                    let frames = self.frames + self.queued.len() as u64;
                    self.deferred = Some(ReadError::Corrupt {
                        path: self.path.clone(),
                        frames,
                        offset,
                        reason,
                    });
                    return;
                }
            }
        }
    }

    fn corrupt(&self, offset: u64, reason: &str) -> ReadError {
        ReadError::Corrupt {
            path: self.path.clone(),
            frames: self.frames,
            offset,
            reason: reason.to_owned(),
        }
    }
}

/// Takes one length-delimited frame off the front of `rest`; `None` for an unknown body.
fn next_frame(rest: &mut &[u8]) -> Result<Option<Body>, String> {
    let len =
        prost::encoding::decode_varint(rest).map_err(|_| "bad frame length prefix".to_owned())?;
    if len > MAX_FRAME_BYTES {
        return Err(format!(
            "frame length {len} exceeds the {MAX_FRAME_BYTES}-byte limit"
        ));
    }
    let len = len as usize;
    let Some(bytes) = rest.get(..len) else {
        return Err(format!(
            "frame of {len} bytes runs past the end of its zstd frame"
        ));
    };
    let frame = Frame::decode(bytes).map_err(|error| format!("undecodable frame ({error})"))?;
    *rest = &rest[len..];
    Ok(frame.body)
}
