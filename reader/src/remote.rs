//! Recordings in a bucket (`s3://bucket/prefix`), read the same way as local ones: the
//! segments are listed, then read by ranges through recorder-objects; the commands see
//! the same summaries and frames. Nothing is written to the local disk.

use std::path::Path;

use recorder_objects::{remote, Address, Remote};
use recorder_store::{
    catalog::{self, CatalogError, RecordingSummary},
    Keyring, ReadError, SegmentReader,
};

use crate::command::CommandError;

/// Whether a path names an object rather than a local file.
pub fn is_remote(path: &Path) -> bool {
    Address::is_remote(&path.to_string_lossy())
}

/// Opens a segment, local or in a bucket.
pub fn open_segment(path: &Path, keyring: &Keyring) -> Result<SegmentReader, ReadError> {
    if !is_remote(path) {
        return SegmentReader::open_with(path, keyring);
    }
    let source = remote::open(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    SegmentReader::from_source(path, source, keyring)
}

/// Every recording whose segments' keys start with the address's key.
pub fn scan(
    address: &str,
    keyring: &Keyring,
) -> Result<(Vec<RecordingSummary>, Vec<CatalogError>), CommandError> {
    let address = Address::parse(address).map_err(CommandError::Remote)?;
    let bucket = Remote::for_bucket(&address.bucket).map_err(CommandError::Remote)?;
    let segments = bucket
        .segments(&address.key)
        .map_err(CommandError::Remote)?;
    Ok(catalog::scan_from(segments, &remote::open, keyring))
}

/// The one recording an address names: `s3://bucket/prefix/ID` (or an id's first digits).
pub fn resolve(address: &str, keyring: &Keyring) -> Result<RecordingSummary, CommandError> {
    let (mut recordings, problems) = scan(address, keyring)?;
    match recordings.len() {
        1 => Ok(recordings.remove(0)),
        0 => Err(match problems.into_iter().next() {
            Some(problem) => problem.into(),
            None => CommandError::Remote(format!(
                "no recording under {address}: `recorder list` the prefix above it to see what is there"
            )),
        }),
        count => Err(CommandError::Remote(format!(
            "{address} holds {count} recordings: add the id of one (`recorder list {address}` shows them)"
        ))),
    }
}
