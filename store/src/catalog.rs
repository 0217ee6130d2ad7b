//! Finding and summarising recordings on disk: the segments of one recording grouped by
//! recording id, what state each is in, and resolving a FILE, DIR or ID argument.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use recorder_proto::v1::{frame::Body, ClockBase, Header, Trailer};

use crate::loss::PayloadTally;
use thiserror::Error;

use super::{
    dir,
    reader::ReadError,
    reader::SegmentSource,
    seal::{self, Keyring, SealHeader},
    segment, SegmentReader,
};
use std::io::Seek;

pub use crate::identity::{identify, SegmentIdentity};

/// End reason of a segment that was closed to continue in the next one.
pub const END_ROTATED: &str = "rotated";
/// End reason of a segment cut short because the disk was full (ENOSPC, EDQUOT).
pub const END_DISK_FULL: &str = "disk full";
/// End reason (a prefix: `write failed: <error kind>`) of a segment cut short by another
/// write error.
pub const END_WRITE_FAILED: &str = "write failed";

/// The writer cut this segment short after a failed write; the recording may go on in the
/// next segment, which then opens with a Loss frame counting what was not written.
pub fn ended_by_write_failure(end_reason: &str) -> bool {
    end_reason == END_DISK_FULL || end_reason.starts_with(END_WRITE_FAILED)
}

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("cannot read directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no recordings (no readable .{} files)",
        segment::EXTENSION
    )]
    Empty { path: PathBuf },
    #[error("{path} holds {count} recordings: pass one of their ids (see `recorder list {path}`)")]
    Ambiguous { path: PathBuf, count: usize },
    #[error("no recording with id `{id}` in {dir} (see `recorder list {dir}`)")]
    UnknownId { id: String, dir: PathBuf },
    #[error("id `{id}` matches {count} recordings in {dir}: give more of it")]
    AmbiguousId {
        id: String,
        dir: PathBuf,
        count: usize,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path} does not start with a Header frame")]
    NoHeader { path: PathBuf },
}

/// How far a segment can be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentState {
    /// Ends with a Trailer.
    Complete,
    /// Readable to the end, but the writer stopped without a trailer (it was killed, or is
    /// still writing). `damage` says where a torn tail starts, if there is one.
    Incomplete { damage: Option<String> },
    /// Unreadable past some point for a reason other than a torn tail.
    Corrupt { reason: String },
    /// Sealed, and no identity given opens it: only its seal header was read. `ended`: the
    /// writer wrote the end marker (unauthenticated).
    Sealed { detail: String, ended: bool },
}

/// One segment, read to the end.
#[derive(Clone, Debug)]
pub struct SegmentSummary {
    pub path: PathBuf,
    pub header: Header,
    pub trailer: Option<Trailer>,
    pub state: SegmentState,
    pub events: u64,
    pub losses: u64,
    pub payload: PayloadTally,
    pub first_mono_ns: Option<u64>,
    pub last_mono_ns: Option<u64>,
    pub file_bytes: u64,
    /// The plain seal header of a sealed segment, opened or not.
    pub seal: Option<SealHeader>,
}

/// Reads a whole segment to summarise it, opening a sealed one with `keyring`. Fails only
/// when it is not a segment at all.
pub fn summarize(path: &Path, keyring: &Keyring) -> Result<SegmentSummary, CatalogError> {
    summarize_from(path, &crate::reader::open_file, keyring)
}

/// Opens the segment a path names: a file's path, or an object's address.
pub type Opener<'a> = &'a dyn Fn(&Path) -> std::io::Result<Box<dyn SegmentSource>>;

/// [`summarize`] for a segment that `open` reads (twice for a sealed one without its key).
pub fn summarize_from(
    path: &Path,
    open: Opener<'_>,
    keyring: &Keyring,
) -> Result<SegmentSummary, CatalogError> {
    let io_error = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut source = open(path).map_err(io_error)?;
    let file_bytes = source
        .seek(std::io::SeekFrom::End(0))
        .and_then(|end| source.rewind().map(|()| end))
        .map_err(io_error)?;
    let mut reader = match SegmentReader::from_source(path, source, keyring) {
        Ok(reader) => reader,
        Err(error @ ReadError::Sealed { .. }) => {
            let source = open(path).map_err(io_error)?;
            return summarize_sealed(path, source, file_bytes, error);
        }
        Err(error) => return Err(error.into()),
    };
    let seal = reader.seal_header().cloned();
    let header = match reader.next_body() {
        Ok(Some(Body::Header(header))) => header,
        Ok(_) => {
            return Err(CatalogError::NoHeader {
                path: path.to_owned(),
            })
        }
        Err(error) => return Err(error.into()),
    };
    let mut summary = SegmentSummary {
        path: path.to_owned(),
        header: *header,
        trailer: None,
        state: SegmentState::Incomplete { damage: None },
        events: 0,
        losses: 0,
        payload: PayloadTally::default(),
        first_mono_ns: None,
        last_mono_ns: None,
        file_bytes,
        seal,
    };
    loop {
        match reader.next_body() {
            Ok(Some(Body::Event(event))) => {
                summary.events += 1;
                if let Some(payload) = &event.payload {
                    summary.payload.add_event(payload);
                }
                summary.first_mono_ns.get_or_insert(event.mono_ns);
                summary.last_mono_ns = Some(event.mono_ns);
            }
            Ok(Some(Body::Loss(loss))) => {
                // Saturating, as every sum of a recording's counts: a damaged file's
                // numbers can be anything.
                summary.losses = summary.losses.saturating_add(crate::loss::total(&loss));
                summary.payload.add_lost_records(&loss);
            }
            Ok(Some(Body::Process(_) | Body::Stack(_))) => {}
            Ok(Some(Body::Trailer(trailer))) => {
                summary.last_mono_ns = Some(trailer.end_mono_ns);
                summary.trailer = Some(*trailer);
                summary.state = SegmentState::Complete;
            }
            Ok(Some(Body::Header(_))) => {
                summary.state = SegmentState::Corrupt {
                    reason: "a second Header frame".to_owned(),
                };
                return Ok(summary);
            }
            Ok(None) => return Ok(summary),
            Err(error) if error.is_truncation() => {
                summary.state = SegmentState::Incomplete {
                    damage: Some(error.to_string()),
                };
                return Ok(summary);
            }
            Err(error) => {
                summary.state = SegmentState::Corrupt {
                    reason: error.to_string(),
                };
                return Ok(summary);
            }
        }
    }
}

/// What can be known of a sealed segment without its key: the seal header and the block
/// walk. `sealed` is the `ReadError::Sealed` that opening it gave.
fn summarize_sealed(
    path: &Path,
    mut file: Box<dyn SegmentSource>,
    file_bytes: u64,
    sealed: ReadError,
) -> Result<SegmentSummary, CatalogError> {
    use std::io::SeekFrom;

    let io_error = |source| ReadError::Io {
        path: path.to_owned(),
        source,
    };
    file.seek(SeekFrom::Start(segment::PREAMBLE_LEN as u64))
        .map_err(io_error)?;
    let header = match seal::read_seal_header(&mut file) {
        Ok(Some(header)) => header,
        // Opening read this same header a moment ago; report what opening said.
        _ => return Err(sealed.into()),
    };
    let offset = file.stream_position().map_err(io_error)?;
    let walk = seal::walk_blocks(&mut file, offset).map_err(io_error)?;
    Ok(SegmentSummary {
        path: path.to_owned(),
        header: Header {
            recording_id: header.recording_id.clone(),
            segment_seq: header.segment_seq,
            clock: Some(ClockBase {
                monotonic_ns: 0,
                realtime_ns: header.started_realtime_ns,
            }),
            ..Header::default()
        },
        trailer: None,
        state: SegmentState::Sealed {
            detail: sealed.to_string(),
            ended: walk.ended,
        },
        events: 0,
        losses: 0,
        payload: PayloadTally::default(),
        first_mono_ns: None,
        last_mono_ns: None,
        file_bytes,
        seal: Some(header),
    })
}

/// The segments of one recording, in sequence order.
#[derive(Clone, Debug)]
pub struct RecordingSummary {
    pub id: String,
    pub segments: Vec<SegmentSummary>,
}

/// The state of a whole recording, as `recorder verify` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordingState {
    Complete,
    Incomplete {
        detail: String,
    },
    Corrupt {
        detail: String,
    },
    /// No identity given opens it; `detail` names its recipients.
    Sealed {
        detail: String,
    },
}

impl RecordingSummary {
    pub fn header(&self) -> &Header {
        &self.segments[0].header
    }

    pub fn events(&self) -> u64 {
        self.segments.iter().map(|s| s.events).sum()
    }

    pub fn losses(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.losses)
            .fold(0, u64::saturating_add)
    }

    pub fn payload(&self) -> PayloadTally {
        let mut sum = PayloadTally::default();
        for segment in &self.segments {
            sum.add(&segment.payload);
        }
        sum
    }

    pub fn file_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.file_bytes).sum()
    }

    /// The plain seal header of the first segment, if the recording is sealed.
    pub fn seal(&self) -> Option<&SealHeader> {
        self.segments[0].seal.as_ref()
    }

    /// Sealed, and no identity given opens it.
    pub fn is_locked(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s.state, SegmentState::Sealed { .. }))
    }

    pub fn duration_ns(&self) -> u64 {
        let start = self.header().clock.as_ref().map_or(0, |c| c.monotonic_ns);
        let end = self
            .segments
            .iter()
            .filter_map(|s| s.last_mono_ns)
            .max()
            .unwrap_or(start);
        end.saturating_sub(start)
    }

    pub fn state(&self) -> RecordingState {
        for (expected, segment) in self.segments.iter().enumerate() {
            let name = segment.path.display();
            if segment.header.segment_seq != expected as u32 {
                return RecordingState::Corrupt {
                    detail: format!(
                        "segment {expected} is missing (found {name} with sequence {})",
                        segment.header.segment_seq
                    ),
                };
            }
            let last = expected + 1 == self.segments.len();
            match &segment.state {
                SegmentState::Sealed { detail, .. } => {
                    return RecordingState::Sealed {
                        detail: detail.clone(),
                    }
                }
                SegmentState::Corrupt { reason } => {
                    return RecordingState::Corrupt {
                        detail: reason.clone(),
                    }
                }
                SegmentState::Incomplete { damage } if last => {
                    let detail = match damage {
                        Some(damage) => damage.clone(),
                        None => format!("{name} ends without a trailer: the writer stopped (killed, or still recording)"),
                    };
                    return RecordingState::Incomplete { detail };
                }
                // Only a write failure (disk full) leaves a segment that ends cleanly without
                // a trailer and a later segment after it: the trailer did not fit.
                SegmentState::Incomplete { damage: None } => {}
                SegmentState::Incomplete { .. } => {
                    return RecordingState::Corrupt {
                        detail: format!("{name} has no trailer but a later segment exists"),
                    };
                }
                SegmentState::Complete => {
                    let rotated = segment
                        .trailer
                        .as_ref()
                        .is_some_and(|t| t.end_reason == END_ROTATED);
                    if last && rotated {
                        return RecordingState::Incomplete {
                            detail: format!(
                                "segment {} after {name} is missing or not yet written",
                                expected + 1
                            ),
                        };
                    }
                }
            }
        }
        RecordingState::Complete
    }
}

/// Every recording in `dir`, oldest first, and the files that are not readable segments.
pub fn scan(
    dir: &Path,
    keyring: &Keyring,
) -> Result<(Vec<RecordingSummary>, Vec<CatalogError>), CatalogError> {
    let files = dir::segment_files(dir).map_err(|source| CatalogError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    let paths = files.into_iter().map(|(path, _)| path);
    Ok(scan_from(paths, &crate::reader::open_file, keyring))
}

/// Every recording among the segments `paths` names, oldest first, each read with `open`,
/// and the ones that are not readable segments.
pub fn scan_from(
    paths: impl IntoIterator<Item = PathBuf>,
    open: Opener<'_>,
    keyring: &Keyring,
) -> (Vec<RecordingSummary>, Vec<CatalogError>) {
    let mut by_id: BTreeMap<String, Vec<SegmentSummary>> = BTreeMap::new();
    let mut problems = Vec::new();
    for path in paths {
        match summarize_from(&path, open, keyring) {
            Ok(summary) => by_id
                .entry(summary.header.recording_id.clone())
                .or_default()
                .push(summary),
            Err(error) => problems.push(error),
        }
    }
    let mut recordings: Vec<RecordingSummary> = by_id
        .into_iter()
        .map(|(id, mut segments)| {
            segments.sort_by_key(|s| s.header.segment_seq);
            RecordingSummary { id, segments }
        })
        .collect();
    recordings.sort_by_key(|r| r.header().clock.as_ref().map_or(0, |c| c.realtime_ns));
    (recordings, problems)
}

/// Turns a FILE, DIR or ID argument into the recording it names. An ID (or a unique prefix
/// of one) is looked up in `default_dir`. Sealed segments are opened with `keyring`.
pub fn resolve(
    target: &str,
    default_dir: &Path,
    keyring: &Keyring,
) -> Result<RecordingSummary, CatalogError> {
    let path = Path::new(target);
    if path.is_file() {
        let summary = summarize(path, keyring)?;
        return Ok(RecordingSummary {
            id: summary.header.recording_id.clone(),
            segments: vec![summary],
        });
    }
    if path.is_dir() {
        let (mut recordings, problems) = scan(path, keyring)?;
        return match recordings.len() {
            0 => Err(problems.into_iter().next().unwrap_or(CatalogError::Empty {
                path: path.to_owned(),
            })),
            1 => Ok(recordings.remove(0)),
            count => Err(CatalogError::Ambiguous {
                path: path.to_owned(),
                count,
            }),
        };
    }
    let looks_like_id = !target.is_empty() && target.chars().all(|c| c.is_ascii_hexdigit());
    if !looks_like_id {
        return Err(ReadError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no such file, directory or recording id",
            ),
        }
        .into());
    }
    let (recordings, _) = scan(default_dir, keyring)?;
    let mut matches: Vec<RecordingSummary> = recordings
        .into_iter()
        .filter(|r| r.id.starts_with(target))
        .collect();
    match matches.len() {
        0 => Err(CatalogError::UnknownId {
            id: target.to_owned(),
            dir: default_dir.to_owned(),
        }),
        1 => Ok(matches.remove(0)),
        count => Err(CatalogError::AmbiguousId {
            id: target.to_owned(),
            dir: default_dir.to_owned(),
            count,
        }),
    }
}

/// The file of segment `seq` of recording `id` in `dir`, if it exists yet.
pub fn find_segment(dir: &Path, id: &str, seq: u32) -> Option<PathBuf> {
    let short_id = id.get(..12).unwrap_or(id);
    let suffix = format!("-{short_id}-{seq:04}.{}", segment::EXTENSION);
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().ends_with(&suffix))
        })
}
