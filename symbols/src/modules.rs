//! Which file has which build id. Files are offered as candidates (the files a process maps,
//! the programs and libraries it opened, a directory of debug files) and read only when a
//! build id is not known yet, each at most once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A process's memory map is read again after this long, at most.
const MAPS_TTL: Duration = Duration::from_secs(1);
/// Processes whose maps are kept.
const MAX_PROCESSES: usize = 4096;

/// A file mapped into a process: `start..end` in memory, from `file_offset` in `path`.
struct Mapping {
    start: u64,
    end: u64,
    file_offset: u64,
    path: PathBuf,
}

/// Candidates kept at most; past it new ones are ignored (a process opening files without
/// end must not grow the daemon without end).
const MAX_CANDIDATES: usize = 65_536;

pub struct Modules {
    debug_dirs: Vec<PathBuf>,
    /// Per process: its file mappings as last read, and when.
    maps: HashMap<u32, (Instant, Vec<Mapping>)>,
    known: HashMap<Vec<u8>, PathBuf>,
    /// Offered and not read yet.
    queued: Vec<PathBuf>,
    offered: HashSet<PathBuf>,
}

impl Modules {
    pub fn new(debug_dirs: Vec<PathBuf>) -> Self {
        Modules {
            debug_dirs,
            maps: HashMap::new(),
            known: HashMap::new(),
            queued: Vec::new(),
            offered: HashSet::new(),
        }
    }

    /// Offers `path` as a file that may be a module of some stack.
    /// Allocates only for a path not offered before: the daemon offers every path its
    /// processes open.
    pub fn offer(&mut self, path: &Path) {
        if self.offered.len() < MAX_CANDIDATES && !self.offered.contains(path) {
            self.offered.insert(path.to_path_buf());
            self.queued.push(path.to_path_buf());
        }
    }

    /// Offers every file the live process `pid` has mapped (nothing if it is gone).
    pub fn offer_mapped_by(&mut self, pid: u32) {
        let paths: Vec<PathBuf> = self
            .mappings(pid)
            .iter()
            .map(|mapping| mapping.path.clone())
            .collect();
        for path in paths {
            self.offer(&path);
        }
    }

    /// The module (build id) and file offset of `address` in the live process `pid`.
    pub fn place(&mut self, pid: u32, address: u64) -> Option<(Vec<u8>, u64)> {
        let mapping = self
            .mappings(pid)
            .iter()
            .find(|mapping| (mapping.start..mapping.end).contains(&address))?;
        let offset = address - mapping.start + mapping.file_offset;
        let path = mapping.path.clone();
        let build_id = build_id_of(&path)?;
        self.known.entry(build_id.clone()).or_insert(path);
        Some((build_id, offset))
    }

    /// `pid`'s file mappings, read from /proc at most once per MAPS_TTL.
    fn mappings(&mut self, pid: u32) -> &[Mapping] {
        let stale = self
            .maps
            .get(&pid)
            .is_none_or(|(read, _)| read.elapsed() >= MAPS_TTL);
        if stale {
            if self.maps.len() >= MAX_PROCESSES {
                self.maps.clear();
            }
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            self.maps.insert(
                pid,
                (
                    Instant::now(),
                    maps.lines().filter_map(parse_mapping).collect(),
                ),
            );
        }
        &self.maps[&pid].1
    }

    /// Offers every file under `dir` (for `recorder inspect --symbols DIR`).
    pub fn offer_tree(&mut self, dir: &Path) {
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                    Ok(kind) if kind.is_file() => self.offer(&entry.path()),
                    _ => {}
                }
            }
        }
    }

    /// The file with this build id: an offered one, or a debug file named by it.
    pub fn find(&mut self, build_id: &[u8]) -> Option<PathBuf> {
        if let Some(path) = self.known.get(build_id) {
            return Some(path.clone());
        }
        while let Some(path) = self.queued.pop() {
            if let Some(id) = build_id_of(&path) {
                let found = id == build_id;
                self.known.entry(id).or_insert(path);
                if found {
                    break;
                }
            }
        }
        if let Some(path) = self.known.get(build_id) {
            return Some(path.clone());
        }
        let path = debug_file(&self.debug_dirs, build_id)?;
        self.known.insert(build_id.to_vec(), path.clone());
        Some(path)
    }
}

/// One line of /proc/PID/maps, if it maps a file: `start-end perms offset dev inode path`.
fn parse_mapping(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let file_offset = fields.nth(1)?;
    let path = fields.nth(2)?;
    path.starts_with('/').then_some(())?;
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        file_offset: u64::from_str_radix(file_offset, 16).ok()?,
        path: PathBuf::from(path),
    })
}

/// The GNU build id of an ELF file; `None` for anything else.
pub fn build_id_of(path: &Path) -> Option<Vec<u8>> {
    match blazesym::helper::read_elf_build_id(&path) {
        Ok(Some(id)) => Some(id.into_owned()),
        _ => None,
    }
}

/// `DIR/.build-id/xx/rest.debug` in the first debug directory that has it.
fn debug_file(dirs: &[PathBuf], build_id: &[u8]) -> Option<PathBuf> {
    let (first, rest) = build_id.split_first()?;
    let rest: String = rest.iter().map(|byte| format!("{byte:02x}")).collect();
    dirs.iter()
        .map(|dir| {
            dir.join(".build-id")
                .join(format!("{first:02x}"))
                .join(format!("{rest}.debug"))
        })
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_file_mappings_only() {
        let line = "7f3c2a000000-7f3c2a028000 r-xp 00028000 fe:01 1234   /usr/lib/libc.so.6";
        let mapping = parse_mapping(line).unwrap();
        assert_eq!(
            (mapping.start, mapping.end, mapping.file_offset),
            (0x7f3c2a000000, 0x7f3c2a028000, 0x28000)
        );
        assert_eq!(mapping.path, Path::new("/usr/lib/libc.so.6"));
        assert!(parse_mapping("7ffd1000-7ffd2000 rw-p 00000000 00:00 0   [stack]").is_none());
        assert!(parse_mapping("7ffd1000-7ffd2000 rw-p 00000000 00:00 0").is_none());
    }
}
