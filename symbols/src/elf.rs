//! The loaded segments of an ELF file, from its program headers.

use std::fs::File;
use std::ops::Range;
use std::path::Path;

use object::elf::{FileHeader64, PF_X, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, ReadCache};

/// A loaded segment: its bytes in the file, where they are loaded, and whether they are code.
struct Segment {
    file: Range<u64>,
    address: u64,
    executable: bool,
}

fn segments(path: &Path) -> Vec<Segment> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    let cache = ReadCache::new(file);
    let Ok(header) = FileHeader64::<Endianness>::parse(&cache) else {
        return Vec::new();
    };
    let Ok(endian) = header.endian() else {
        return Vec::new();
    };
    let Ok(headers) = header.program_headers(endian, &cache) else {
        return Vec::new();
    };
    headers
        .iter()
        .filter(|segment| segment.p_type(endian) == PT_LOAD)
        .map(|segment| {
            let start = segment.p_offset(endian);
            Segment {
                file: start..start.saturating_add(segment.p_filesz(endian)),
                address: segment.p_vaddr(endian),
                executable: segment.p_flags(endian) & PF_X != 0,
            }
        })
        .collect()
}

/// The file ranges of the executable loaded segments of the ELF file at `path`.
pub fn executable_segments(path: &Path) -> Vec<Range<u64>> {
    segments(path)
        .into_iter()
        .filter(|segment| segment.executable)
        .map(|segment| segment.file)
        .collect()
}

/// `file_offset` as an address in the file's ELF layout; `None` outside its loaded bytes (a
/// separate debug file has none).
pub fn address_of(path: &Path, file_offset: u64) -> Option<u64> {
    segments(path)
        .into_iter()
        .find(|segment| segment.file.contains(&file_offset))
        .map(|segment| segment.address + (file_offset - segment.file.start))
}
