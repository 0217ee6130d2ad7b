//! Where a segment's bytes are read from.

use std::{
    fs::File,
    io::{self, Read, Seek},
    path::Path,
};

/// Where a segment's bytes are read from: a file here, or (for `recorder … s3://`) an
/// object in a bucket read by ranges. Seek is for the sealed block walk of `recorder list`.
pub trait SegmentSource: Read + Seek + Send {}
impl<T: Read + Seek + Send> SegmentSource for T {}

/// Opens the segment file at `path` as a source; a directory is refused.
pub fn open_file(path: &Path) -> io::Result<Box<dyn SegmentSource>> {
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "it is a directory",
        ));
    }
    Ok(Box::new(file))
}
