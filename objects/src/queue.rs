//! The upload queue, persisted in `<recordings dir>/.upload/` (0700) so that a restart or a
//! SIGKILL neither loses nor repeats an upload:
//!
//! - `queue/<segment file>.json`: a segment waiting, with its key, size and SHA-256;
//! - `done/<segment file>`: uploaded and confirmed;
//! - `skipped/<segment file>`: refused or dropped, with the reason inside;
//! - `audit.json`: how much of the audit log has been shipped.
//!
//! An entry is written to a temporary name and renamed, so a crash leaves either the old
//! state or the new one. A segment is known once it has a file in one of the three folders;
//! markers of segments that no longer exist here are pruned.

use std::{
    collections::HashSet,
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// The folder in the recordings directory.
pub const FOLDER: &str = ".upload";

/// A segment waiting for its upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The segment's file name in the recordings directory.
    pub segment: String,
    pub recording_id: String,
    pub key: String,
    pub bytes: u64,
    /// Of the whole file, lower-case hex.
    pub sha256: String,
    /// When it was queued, seconds since the epoch: the queue's order.
    pub queued_at: u64,
}

pub struct Queue {
    root: PathBuf,
}

impl Queue {
    /// The queue of the recordings in `recordings`, its folders created if missing.
    pub fn open(recordings: &Path) -> io::Result<Queue> {
        let root = recordings.join(FOLDER);
        for folder in ["", "queue", "done", "skipped"] {
            match fs::DirBuilder::new().mode(0o700).create(root.join(folder)) {
                Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
                _ => {}
            }
        }
        Ok(Queue { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The waiting segments, oldest first. An entry that cannot be parsed is set aside in
    /// `skipped/` rather than stopping the queue.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for file in fs::read_dir(self.root.join("queue"))? {
            let path = file?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let parsed = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Entry>(&bytes).ok());
            match parsed {
                Some(entry) => entries.push(entry),
                None => {
                    let name = path.file_stem().unwrap_or_default().to_string_lossy();
                    self.mark("skipped", &name, "the queue entry was unreadable")?;
                    fs::remove_file(&path)?;
                }
            }
        }
        entries.sort_by(|a, b| (a.queued_at, &a.segment).cmp(&(b.queued_at, &b.segment)));
        Ok(entries)
    }

    /// Whether the segment is waiting, done or skipped.
    pub fn knows(&self, segment: &str) -> bool {
        self.entry_path(segment).exists()
            || self.root.join("done").join(segment).exists()
            || self.root.join("skipped").join(segment).exists()
    }

    /// Queues a segment.
    pub fn push(&self, entry: &Entry) -> io::Result<()> {
        let bytes = serde_json::to_vec(entry).map_err(io::Error::other)?;
        write_atomically(&self.entry_path(&entry.segment), &bytes)
    }

    /// The segment is uploaded and confirmed.
    pub fn finish(&self, segment: &str) -> io::Result<()> {
        self.mark("done", segment, "")?;
        remove_if_present(&self.entry_path(segment))
    }

    /// The segment will not be uploaded, for `reason`.
    pub fn skip(&self, segment: &str, reason: &str) -> io::Result<()> {
        self.mark("skipped", segment, reason)?;
        remove_if_present(&self.entry_path(segment))
    }

    /// Forgets done and skipped segments that no longer exist among `present` (their file
    /// names), so the folders do not grow without end.
    pub fn prune(&self, present: &HashSet<String>) -> io::Result<()> {
        for folder in ["done", "skipped"] {
            for file in fs::read_dir(self.root.join(folder))? {
                let file = file?;
                let name = file.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') && !present.contains(&name) {
                    remove_if_present(&file.path())?;
                }
            }
        }
        Ok(())
    }

    fn entry_path(&self, segment: &str) -> PathBuf {
        self.root.join("queue").join(format!("{segment}.json"))
    }

    fn mark(&self, folder: &str, segment: &str, reason: &str) -> io::Result<()> {
        write_atomically(&self.root.join(folder).join(segment), reason.as_bytes())
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, both made durable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = folder.join(format!(".{name}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    fs::File::open(folder)?.sync_all()
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(segment: &str, queued_at: u64) -> Entry {
        Entry {
            segment: segment.to_owned(),
            recording_id: "3f2a".to_owned(),
            key: format!("host/{segment}"),
            bytes: 10,
            sha256: "00".repeat(32),
            queued_at,
        }
    }

    #[test]
    fn entries_survive_reopening_in_queue_order_until_finished_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        queue.push(&entry("b.rcd", 2)).unwrap();
        queue.push(&entry("a.rcd", 3)).unwrap();
        queue.push(&entry("c.rcd", 1)).unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        let order: Vec<String> = queue
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.segment)
            .collect();
        assert_eq!(order, ["c.rcd", "b.rcd", "a.rcd"]);
        queue.finish("c.rcd").unwrap();
        queue.skip("b.rcd", "dropped: the queue was full").unwrap();
        assert_eq!(queue.entries().unwrap(), vec![entry("a.rcd", 3)]);
        assert!(queue.knows("c.rcd") && queue.knows("b.rcd") && queue.knows("a.rcd"));
        assert!(!queue.knows("d.rcd"));
        let reason = fs::read_to_string(queue.root().join("skipped/b.rcd")).unwrap();
        assert_eq!(reason, "dropped: the queue was full");
        queue.prune(&HashSet::from(["b.rcd".to_owned()])).unwrap();
        assert!(!queue.knows("c.rcd") && queue.knows("b.rcd"));
    }

    #[test]
    fn an_unreadable_entry_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path()).unwrap();
        fs::write(queue.root().join("queue/x.rcd.json"), b"{torn").unwrap();
        queue.push(&entry("y.rcd", 1)).unwrap();
        assert_eq!(queue.entries().unwrap(), vec![entry("y.rcd", 1)]);
        assert!(queue.knows("x.rcd"));
    }
}
