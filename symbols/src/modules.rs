//! Which file has which build id. Files are offered as candidates (the files a process maps,
//! the programs and libraries it opened, a directory of debug files) and read only when a
//! build id is not known yet, each at most once.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Candidates kept at most; past it new ones are ignored (a process opening files without
/// end must not grow the daemon without end).
const MAX_CANDIDATES: usize = 65_536;

pub struct Modules {
    debug_dirs: Vec<PathBuf>,
    known: HashMap<Vec<u8>, PathBuf>,
    /// Offered and not read yet.
    queued: Vec<PathBuf>,
    offered: HashSet<PathBuf>,
}

impl Modules {
    pub fn new(debug_dirs: Vec<PathBuf>) -> Self {
        Modules {
            debug_dirs,
            known: HashMap::new(),
            queued: Vec::new(),
            offered: HashSet::new(),
        }
    }

    /// Offers `path` as a file that may be a module of some stack.
    pub fn offer(&mut self, path: impl Into<PathBuf>) {
        let path = path.into();
        if self.offered.len() < MAX_CANDIDATES && !self.offered.contains(&path) {
            self.offered.insert(path.clone());
            self.queued.push(path);
        }
    }

    /// Offers every file the live process `pid` has mapped (nothing if it is gone).
    pub fn offer_mapped_by(&mut self, pid: u32) {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return;
        };
        for line in maps.lines() {
            // address perms offset dev inode path
            if let Some(path) = line.split_whitespace().nth(5) {
                if path.starts_with('/') {
                    self.offer(path);
                }
            }
        }
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
                    Ok(kind) if kind.is_file() => self.offer(entry.path()),
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
