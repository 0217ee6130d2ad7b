//! Finding the segments whose writer has let go of them, queueing each once (or refusing
//! it), and keeping the queue within `queue_limit`.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use recorder_store::{catalog, dir, retention};

use super::Worker;
use crate::{layout, queue::Entry, transfer};

impl Worker {
    /// Queues every finished segment not seen before; keeps the queue within its bound.
    /// A directory that cannot be listed this time changes nothing (its markers stay).
    pub(super) async fn scan(&self) {
        let recordings = self.recordings.clone();
        let listed = tokio::task::spawn_blocking(move || finished_segments(&recordings)).await;
        let Ok(Some(Listing { finished, present })) = listed else {
            tracing::warn!("listing the recordings for upload failed; trying again");
            return;
        };
        for (name, path) in finished {
            if self.queue.knows(&name) {
                continue;
            }
            self.consider(name, path).await;
        }
        self.bound();
        if let Err(error) = self.queue.prune(&present) {
            tracing::warn!(%error, "pruning the upload queue's markers failed");
        }
        self.refresh_status();
    }

    /// Queues one finished segment, or refuses it under `require_sealed`.
    async fn consider(&self, name: String, path: PathBuf) {
        let identified = tokio::task::spawn_blocking(move || {
            let identity = catalog::identify(&path)?;
            let (bytes, sha256) = transfer::hash_file(&path).ok()?;
            Some((identity, bytes, sha256))
        })
        .await
        .ok()
        .flatten();
        let Some((identity, bytes, sha256)) = identified else {
            // Not a segment this recorder can name (a writer that died before its first
            // frame, a stray file): it is not uploaded, once said. A file made a moment
            // ago may be a segment whose writer has not locked it yet: it waits.
            if modified_within(&self.recordings.join(&name), SETTLE) {
                return;
            }
            eprintln!("recorderd: not uploading {name}: it is not a readable segment");
            self.skip(&name, "not a readable segment", "upload.refused");
            return;
        };
        if self.config.require_sealed && !identity.sealed {
            eprintln!(
                "recorderd: not uploading segment {name}: it is not sealed and [upload] require_sealed is on"
            );
            self.status_mut().refused += 1;
            self.skip(&name, "unsealed (require_sealed)", "upload.refused");
            return;
        }
        let entry = Entry {
            key: layout::segment_key(
                &self.config.prefix,
                &self.host,
                &identity.recording_id,
                identity.started_realtime_ns,
                &name,
            ),
            segment: name,
            recording_id: identity.recording_id,
            bytes,
            sha256,
            queued_at: unix_secs(),
        };
        if let Err(error) = self.queue.push(&entry) {
            tracing::error!(%error, segment = %entry.segment, "queueing a segment for upload failed");
        }
    }

    /// Drops the oldest waiting segments while the queue holds more than its limit; the
    /// one in flight is not dropped.
    fn bound(&self) {
        let Ok(mut entries) = self.queue.entries() else {
            return;
        };
        let in_flight = self.status_mut().in_flight.clone();
        entries.retain(|e| {
            in_flight
                .as_deref()
                .is_none_or(|f| !f.starts_with(&e.segment))
        });
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        while total > self.config.queue_limit && !entries.is_empty() {
            let oldest = entries.remove(0);
            total -= oldest.bytes;
            eprintln!(
                "recorderd: upload queue over its limit of {}: dropped segment {} ({}); its local copy stays",
                retention::format_bytes(self.config.queue_limit),
                oldest.segment,
                retention::format_bytes(oldest.bytes)
            );
            self.status_mut().dropped += 1;
            self.skip(
                &oldest.segment,
                "dropped: the upload queue was full",
                "upload.dropped",
            );
        }
    }
}

/// The segment files of the recordings directory, as one scan saw them.
struct Listing {
    /// Those whose writer has let go of them, by name.
    finished: Vec<(String, PathBuf)>,
    /// The name of every segment file there, finished or not.
    present: HashSet<String>,
}

/// The segment files in `dir`; `None` when the directory cannot be listed.
fn finished_segments(dir: &Path) -> Option<Listing> {
    let files = dir::segment_files(dir).ok()?;
    let mut finished = Vec::new();
    let mut present = HashSet::new();
    for (path, _) in files {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        present.insert(name.clone());
        // A lock that cannot be checked counts as held: the file waits for the next scan.
        if matches!(dir::is_locked(&path), Ok(false)) {
            finished.push((name, path));
        }
    }
    Some(Listing { finished, present })
}

/// How long a file that is not yet a readable segment may be one still being created.
const SETTLE: Duration = Duration::from_secs(60);

/// Whether the file at `path` was modified less than `within` ago (or cannot be told).
fn modified_within(path: &Path, within: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .map(|modified| modified.elapsed().unwrap_or_default() < within)
        .unwrap_or(true)
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_segments_no_writer_holds_are_finished() {
        let dir = tempfile::tempdir().unwrap();
        let output = recorder_store::OutputDir::open_or_create(dir.path()).unwrap();
        let held = output.create_file("b-0000.rcd").unwrap();
        std::fs::write(dir.path().join("a-0000.rcd"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let listing = finished_segments(dir.path()).unwrap();
        let names: Vec<&str> = listing.finished.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a-0000.rcd"]);
        assert_eq!(
            listing.present.len(),
            2,
            "one being written: present, not finished"
        );
        drop(held);
        assert_eq!(finished_segments(dir.path()).unwrap().finished.len(), 2);
        assert!(finished_segments(&dir.path().join("missing")).is_none());
    }
}
