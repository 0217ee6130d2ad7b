//! Reads a segment frame by frame, tolerant of a torn tail.
//!
//! The writer never splits a protobuf frame across zstd frames, so the reader walks the file
//! one zstd frame at a time: it finds the frame's exact compressed size, decodes it (checking
//! its checksum), and queues the protobuf frames inside. Damage is therefore reported at the
//! byte offset of the zstd frame where it starts, after every complete frame before it has
//! been returned. No length read from the file is trusted: every allocation is capped.
//!
//! A sealed segment holds one zstd frame per sealed block: the reader decrypts a block with
//! the identities it was given (`seal::Keyring`) and decodes the frame inside the same way.

use std::{
    collections::VecDeque,
    io::{self, Read, Seek},
    path::{Path, PathBuf},
};

pub use crate::source::{open_file, SegmentSource};

use prost::Message;
use recorder_proto::v1::{frame::Body, Frame};
use thiserror::Error;

use super::{
    seal::{self, Keyring, SealHeader},
    segment::{self, Preamble, MAX_FRAME_BYTES, PREAMBLE_LEN},
};

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
    #[error(
        "{path} has preamble flags {flags:#06x} this recorder does not know: upgrade recorder"
    )]
    UnknownFlags { path: PathBuf, flags: u16 },
    #[error("{path} is sealed for {}: {}", recipients.join(", "), sealed_hint(*identities))]
    Sealed {
        path: PathBuf,
        recipients: Vec<String>,
        /// How many identities were tried (0: none given).
        identities: usize,
    },
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

fn sealed_hint(identities: usize) -> String {
    match identities {
        0 => "pass --identity FILE (or set RECORDER_IDENTITY=FILE) holding one of their identities"
            .to_owned(),
        n => format!("none of the {n} given identities is one of them"),
    }
}

/// Reading state of a sealed segment.
struct Sealed {
    keyring: Keyring,
    header: SealHeader,
    next_block: u32,
    /// The end marker was read: nothing more may follow.
    ended: bool,
}

pub struct SegmentReader {
    path: PathBuf,
    file: Box<dyn SegmentSource>,
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
    sealed: Option<Sealed>,
}

impl SegmentReader {
    /// Opens an unsealed segment; a sealed one is refused with `ReadError::Sealed`.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        Self::open_with(path, &Keyring::default())
    }

    /// Opens a segment, sealed or not, trying `keyring`'s identities on a sealed one.
    pub fn open_with(path: &Path, keyring: &Keyring) -> Result<Self, ReadError> {
        let file = open_file(path).map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_source(path, file, keyring)
    }

    /// Reads the segment in `file` from its start; `path` names it in errors (a file's path
    /// or an object's address).
    pub fn from_source(
        path: &Path,
        mut file: Box<dyn SegmentSource>,
        keyring: &Keyring,
    ) -> Result<Self, ReadError> {
        let io_error = |source| ReadError::Io {
            path: path.to_owned(),
            source,
        };
        let mut preamble = Vec::with_capacity(PREAMBLE_LEN);
        (&mut file)
            .take(PREAMBLE_LEN as u64)
            .read_to_end(&mut preamble)
            .map_err(io_error)?;
        let flags = match segment::check_preamble(&preamble) {
            Preamble::Valid { flags, .. } => flags,
            Preamble::UnknownFlags { flags } => {
                return Err(ReadError::UnknownFlags {
                    path: path.to_owned(),
                    flags,
                })
            }
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
        };
        let mut pending_offset = PREAMBLE_LEN as u64;
        let mut sealed = None;
        if flags & seal::FLAG_SEALED != 0 {
            let header = read_seal_header(path, &mut file)?;
            if !keyring.opens(&header.recipients) {
                return Err(ReadError::Sealed {
                    path: path.to_owned(),
                    recipients: header.recipients,
                    identities: keyring.len(),
                });
            }
            pending_offset = file.stream_position().map_err(io_error)?;
            sealed = Some(Sealed {
                keyring: keyring.clone(),
                header,
                next_block: 0,
                ended: false,
            });
        }
        Ok(SegmentReader {
            path: path.to_owned(),
            file,
            pending_bytes: Vec::new(),
            pending_offset,
            at_eof: false,
            queued: VecDeque::new(),
            deferred: None,
            frames: 0,
            sealed,
        })
    }

    /// The plain seal header of a sealed segment.
    pub fn seal_header(&self) -> Option<&SealHeader> {
        self.sealed.as_ref().map(|s| &s.header)
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
                if self.frames == 0 {
                    self.check_sealed_header(&body)?;
                }
                self.frames += 1;
                return Ok(Some(body));
            }
            if let Some(error) = self.deferred.take() {
                return Err(error);
            }
            let more = match self.sealed.is_some() {
                true => self.decode_next_block()?,
                false => self.decode_next_zstd_frame()?,
            };
            if !more {
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

    /// Decrypts the next complete sealed block and queues the frames of its zstd frame;
    /// false at a clean end (the end marker, or the end of the file between blocks).
    fn decode_next_block(&mut self) -> Result<bool, ReadError> {
        let sealed = self
            .sealed
            .as_ref()
            .expect("only called on sealed segments");
        if sealed.ended {
            return Ok(false);
        }
        let offset = self.pending_offset;
        let len = loop {
            if let Some(len) = self
                .pending_bytes
                .first_chunk::<{ seal::BLOCK_LEN_BYTES }>()
            {
                break u32::from_le_bytes(*len);
            }
            if !self.fill()? {
                if self.pending_bytes.is_empty() {
                    return Ok(false);
                }
                return Err(self.truncated(offset));
            }
        };
        let whole = seal::BLOCK_LEN_BYTES + len as usize;
        if len == 0 {
            self.pending_bytes.drain(..seal::BLOCK_LEN_BYTES);
            self.pending_offset += seal::BLOCK_LEN_BYTES as u64;
            if !self.pending_bytes.is_empty() || self.fill()? {
                return Err(self.corrupt(offset, "bytes after the sealed segment's end marker"));
            }
            self.sealed.as_mut().expect("sealed").ended = true;
            return Ok(false);
        }
        if len > seal::MAX_BLOCK_BYTES {
            return Err(self.corrupt(offset, "sealed block larger than any the writer makes"));
        }
        while self.pending_bytes.len() < whole {
            if !self.fill()? {
                return Err(self.truncated(offset));
            }
        }
        let block: Vec<u8> = self.pending_bytes.drain(..whole).collect();
        self.pending_offset += whole as u64;
        let sealed = self.sealed.as_mut().expect("sealed");
        let index = sealed.next_block;
        sealed.next_block += 1;
        let opened = sealed
            .keyring
            .open_block(&block[seal::BLOCK_LEN_BYTES..], index);
        let zstd = match opened {
            Ok(zstd) => zstd,
            Err(reason) => return Err(self.corrupt(offset, &reason)),
        };
        match zstd::zstd_safe::find_frame_compressed_size(&zstd) {
            Ok(size) if size == zstd.len() => self.queue_frames(&zstd, offset),
            _ => {
                return Err(
                    self.corrupt(offset, "sealed block does not hold exactly one zstd frame")
                )
            }
        }
        Ok(true)
    }

    /// The sealed Header must be the one the plain seal header announces.
    fn check_sealed_header(&self, body: &Body) -> Result<(), ReadError> {
        let (Some(sealed), Body::Header(header)) = (&self.sealed, body) else {
            return Ok(());
        };
        let plain = &sealed.header;
        if header.recording_id == plain.recording_id && header.segment_seq == plain.segment_seq {
            return Ok(());
        }
        Err(self.corrupt(
            PREAMBLE_LEN as u64,
            &format!(
                "the seal header says recording {} segment {}, the sealed Header recording {} segment {}",
                plain.recording_id, plain.segment_seq, header.recording_id, header.segment_seq
            ),
        ))
    }

    fn truncated(&self, offset: u64) -> ReadError {
        ReadError::Truncated {
            path: self.path.clone(),
            frames: self.frames,
            offset,
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

/// Reads and parses the seal header that follows a sealed segment's preamble.
fn read_seal_header(
    path: &Path,
    file: &mut Box<dyn SegmentSource>,
) -> Result<SealHeader, ReadError> {
    match seal::read_seal_header(file) {
        Ok(Some(header)) => Ok(header),
        Ok(None) => Err(ReadError::Truncated {
            path: path.to_owned(),
            frames: 0,
            offset: PREAMBLE_LEN as u64,
        }),
        Err(reason) => Err(ReadError::Corrupt {
            path: path.to_owned(),
            frames: 0,
            offset: PREAMBLE_LEN as u64,
            reason,
        }),
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
