//! Whose segment a file is, from its first frame (or its clear seal header), without
//! reading it through: for sweeps, which group segments by recording, and for uploads, which
//! name objects by recording.

use std::{io::Seek, path::Path};

use recorder_proto::v1::frame::Body;

use crate::{seal, segment, Keyring, SegmentReader};

/// What a segment says of itself without being read through: whose segment it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentIdentity {
    /// Plain hex (checked: ids name files and object keys).
    pub recording_id: String,
    pub segment_seq: u32,
    /// Wall-clock start of the recording's clock (the segment's, if sealed), ns since the epoch.
    pub started_realtime_ns: i64,
    pub sealed: bool,
}

/// The identity in a segment's plain Header frame or clear seal header; `None` for a file
/// that is not a segment (or names an id that is not plain hex). A symlink is not followed.
pub fn identify(path: &Path) -> Option<SegmentIdentity> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let mut preamble = [0u8; segment::PREAMBLE_LEN];
    file.read_exact(&mut preamble).ok()?;
    let segment::Preamble::Valid { flags, .. } = segment::check_preamble(&preamble) else {
        return None;
    };
    let identity = if flags & seal::FLAG_SEALED != 0 {
        let header = seal::read_seal_header(&mut file).ok()??;
        SegmentIdentity {
            recording_id: header.recording_id,
            segment_seq: header.segment_seq,
            started_realtime_ns: header.started_realtime_ns,
            sealed: true,
        }
    } else {
        file.rewind().ok()?;
        match SegmentReader::from_source(path, Box::new(file), &Keyring::default())
            .ok()?
            .next_body()
        {
            Ok(Some(Body::Header(header))) => SegmentIdentity {
                started_realtime_ns: header.clock.as_ref().map_or(0, |c| c.realtime_ns),
                recording_id: header.recording_id,
                segment_seq: header.segment_seq,
                sealed: false,
            },
            _ => return None,
        }
    };
    let id = &identity.recording_id;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(identity)
}
