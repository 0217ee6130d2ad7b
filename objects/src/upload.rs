//! The service's uploader, a task beside the control loop. Every second it looks for
//! segments whose writer has let go of them (rotated, finished, or left by a writer that
//! died), queues each once (`queue`), and uploads the queue oldest first:
//!
//! - a segment up to `part_size` in one PUT, a larger one in parts (multipart), each
//!   request with its SHA-256 for the server to check (`x-amz-checksum-sha256`), and the
//!   whole file's SHA-256 in the object's metadata;
//! - before uploading, a HEAD: an object already holding this segment (an upload that
//!   finished just before a crash) is not sent again;
//! - after uploading, a HEAD comparing size and SHA-256; with `delete_after_upload`, the
//!   object is read back and hashed before the local copy goes;
//! - a failure backs the whole queue off (1 s doubling to a minute: the bucket is likely
//!   away for all of them); it is logged and audited once per distinct failure, and its
//!   recovery once.
//!
//! The directory is scanned on while an upload is in flight, so a bucket that hangs
//! still sees the queue grow and its bound kept. The audit log is shipped by a task of its
//! own (`audit_shipping`). Recording never waits on any of this: the uploader reads only
//! finished files.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use object_store::aws::AmazonS3;
use recorder_config::UploadConfig;
use recorder_control::UploadStatus;
use recorder_store::{audit::AuditLog, catalog, dir, retention};
use serde_json::json;
use tokio::{sync::watch, task::JoinHandle, time::Instant};

use crate::{
    audit_shipping::{self, AuditShipping},
    connect::{ConnectError, Settings},
    layout,
    queue::{Entry, Queue},
    transfer,
};

/// How often the directory is looked at for finished segments.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest wait between attempts while the bucket fails.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The running uploader, as the service holds it.
pub struct Uploader {
    status: Arc<Mutex<UploadStatus>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    ship_stop: watch::Sender<bool>,
    shipper: JoinHandle<()>,
}

impl Uploader {
    /// Starts uploading the finished segments of `recordings` as `config` says, on the
    /// current tokio runtime.
    pub fn start(
        recordings: &Path,
        config: &UploadConfig,
        audit: Arc<AuditLog>,
    ) -> Result<Uploader, StartError> {
        let bucket = config.bucket.clone().unwrap_or_default();
        let store = Settings::for_service(config)?.connect(&bucket)?;
        let queue = Queue::open(recordings).map_err(|source| StartError::Queue {
            path: recordings.join(crate::queue::FOLDER),
            source,
        })?;
        let host = layout::host_name();
        let shipping = AuditShipping::new(
            audit.path(),
            &queue.root().join("audit.json"),
            layout::audit_folder(&config.audit_prefix, &host),
        );
        let status = Arc::new(Mutex::new(UploadStatus {
            bucket: format!("s3://{bucket}"),
            audit_shipped_seq: shipping.shipped().entries,
            ..UploadStatus::default()
        }));
        let (stop, stopped) = watch::channel(false);
        let (ship_stop, ship_stopped) = watch::channel(false);
        let shipper = tokio::spawn(audit_shipping::run(
            shipping,
            store.clone(),
            audit.clone(),
            status.clone(),
            config.audit_interval,
            ship_stopped,
        ));
        let worker = Worker {
            recordings: recordings.to_owned(),
            config: config.clone(),
            store,
            queue,
            host,
            audit,
            status: status.clone(),
            failures: Failures::default(),
        };
        let task = tokio::spawn(worker.run(stopped));
        Ok(Uploader {
            status,
            stop,
            task,
            ship_stop,
            shipper,
        })
    }

    pub fn status(&self) -> UploadStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Uploads what is finished and ships the audit log one last time, for at most
    /// `limit`; what is left stays queued for the next start.
    pub async fn finish(self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout_at(deadline, self.task).await.is_err() {
            abort.abort();
            tracing::warn!(
                "uploads did not finish in time; the rest stays queued for the next start"
            );
        }
        // The audit log last, so that it holds the uploads just made.
        let _ = self.ship_stop.send(true);
        let abort = self.shipper.abort_handle();
        if tokio::time::timeout_at(deadline, self.shipper)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("[upload]: {0}")]
    Connect(#[from] ConnectError),
    #[error("[upload]: cannot prepare the upload queue {path}: {source}")]
    Queue {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The failures in a row, and when the next attempt may be made.
#[derive(Default)]
struct Failures {
    in_a_row: u32,
    last: Option<String>,
    next_attempt: Option<Instant>,
}

struct Worker {
    recordings: PathBuf,
    config: UploadConfig,
    store: Arc<AmazonS3>,
    queue: Queue,
    host: String,
    audit: Arc<AuditLog>,
    status: Arc<Mutex<UploadStatus>>,
    failures: Failures,
}

/// What became of one queued segment.
enum Outcome {
    Uploaded {
        parts: usize,
        already_there: bool,
    },
    /// Its file is gone (a sweep took it first).
    Gone,
}

impl Worker {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            self.scan().await;
            let stopping = *stop.borrow();
            // Uploads while failures are not being waited out; while stopping, one
            // attempt whatever the wait.
            let waiting = self
                .failures
                .next_attempt
                .is_some_and(|at| Instant::now() < at);
            if stopping || !waiting {
                self.work(&stop).await;
            }
            if stopping {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(SCAN_INTERVAL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Queues every finished segment not seen before; keeps the queue within its bound.
    async fn scan(&self) {
        let recordings = self.recordings.clone();
        let finished = tokio::task::spawn_blocking(move || finished_segments(&recordings))
            .await
            .unwrap_or_default();
        let present: HashSet<String> = finished.iter().map(|(name, _)| name.clone()).collect();
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
            // frame, a stray file): it is not uploaded, once said.
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

    /// Uploads the queue, oldest first, until it is empty or an upload fails; scans go on
    /// while an upload is in flight.
    async fn work(&mut self, stop: &watch::Receiver<bool>) {
        let stopping = *stop.borrow();
        loop {
            if *stop.borrow() && !stopping {
                return;
            }
            let Some(entry) = self.queue.entries().ok().and_then(|e| e.into_iter().next()) else {
                return;
            };
            self.status_mut().in_flight = Some(entry.segment.clone());
            let outcome = {
                let upload = self.upload(&entry);
                tokio::pin!(upload);
                loop {
                    tokio::select! {
                        outcome = &mut upload => break outcome,
                        _ = tokio::time::sleep(SCAN_INTERVAL) => self.scan().await,
                    }
                }
            };
            self.status_mut().in_flight = None;
            match outcome {
                Ok(Outcome::Uploaded {
                    parts,
                    already_there,
                }) => self.uploaded(&entry, parts, already_there).await,
                Ok(Outcome::Gone) => {
                    eprintln!(
                        "recorderd: segment {} was deleted here before it was uploaded",
                        entry.segment
                    );
                    self.status_mut().dropped += 1;
                    self.skip(
                        &entry.segment,
                        "deleted locally before its upload (retention)",
                        "upload.dropped",
                    );
                }
                // Dropped from the queue while in flight is not possible (`bound`), but a
                // failure is: the queue waits.
                Err(error) => {
                    self.failed(&entry, &error);
                    return;
                }
            }
            self.refresh_status();
        }
    }

    /// One segment to its key, confirmed.
    async fn upload(&self, entry: &Entry) -> Result<Outcome, String> {
        let path = self.recordings.join(&entry.segment);
        if !path.exists() {
            return Ok(Outcome::Gone);
        }
        if transfer::already_holds(&self.store, entry).await? {
            return Ok(Outcome::Uploaded {
                parts: 0,
                already_there: true,
            });
        }
        let progress = |parts: usize| {
            self.status_mut().in_flight = Some(format!("{} (part {parts})", entry.segment));
        };
        let parts =
            transfer::send(&self.store, &path, entry, self.config.part_size, &progress).await?;
        if !transfer::holds(&self.store, entry).await? {
            return Err(format!(
                "{} was uploaded but the object's size or SHA-256 does not match the segment",
                entry.key
            ));
        }
        Ok(Outcome::Uploaded {
            parts,
            already_there: false,
        })
    }

    async fn uploaded(&mut self, entry: &Entry, parts: usize, already_there: bool) {
        self.recovered();
        let mut local_copy = "kept";
        if self.config.delete_after_upload {
            local_copy = match transfer::read_back_matches(&self.store, entry).await {
                Ok(true) if retention::is_held(&self.recordings, &entry.recording_id) => {
                    "kept (legal hold)"
                }
                Ok(true) => match std::fs::remove_file(self.recordings.join(&entry.segment)) {
                    Ok(()) => "deleted",
                    Err(_) => "kept (could not be deleted)",
                },
                Ok(false) => "kept (the object read back did not match)",
                Err(_) => "kept (the object could not be read back)",
            };
        }
        let bucket = self.config.bucket.as_deref().unwrap_or_default();
        eprintln!(
            "recorderd: uploaded segment {} to s3://{bucket}/{} ({}; local copy {local_copy})",
            entry.segment,
            entry.key,
            retention::format_bytes(entry.bytes)
        );
        self.append_audit(
            "upload.done",
            json!({
                "segment": entry.segment,
                "recording": entry.recording_id,
                "key": entry.key,
                "bytes": entry.bytes,
                "sha256": entry.sha256,
                "parts": parts,
                "already_there": already_there,
                "local_copy": local_copy,
            }),
        );
        self.status_mut().uploaded += 1;
        if let Err(error) = self.queue.finish(&entry.segment) {
            tracing::error!(%error, segment = %entry.segment, "marking an upload done failed");
        }
    }

    /// A failed attempt: the queue waits, and a new kind of failure is said once.
    fn failed(&mut self, entry: &Entry, error: &str) {
        let failures = &mut self.failures;
        failures.in_a_row += 1;
        let wait = backoff(failures.in_a_row);
        failures.next_attempt = Some(Instant::now() + wait);
        let new_kind = failures.last.as_deref() != Some(error);
        failures.last = Some(error.to_owned());
        self.status_mut().last_error = Some(format!(
            "{} upload of {} failed: {error}",
            humantime::format_rfc3339_seconds(SystemTime::now()),
            entry.segment
        ));
        if new_kind {
            eprintln!(
                "recorderd: upload of segment {} failed, retrying in {}s: {error}",
                entry.segment,
                wait.as_secs()
            );
            self.append_audit(
                "upload.failed",
                json!({
                    "segment": entry.segment,
                    "key": entry.key,
                    "error": error,
                    "attempt": self.failures.in_a_row,
                }),
            );
        }
    }

    /// The bucket answers again after failures.
    fn recovered(&mut self) {
        if self.failures.in_a_row == 0 {
            return;
        }
        let attempts = self.failures.in_a_row;
        self.failures = Failures::default();
        self.status_mut().last_error = None;
        eprintln!("recorderd: uploads resumed after {attempts} failed attempts");
        self.append_audit("upload.resumed", json!({ "failed_attempts": attempts }));
    }

    fn skip(&self, segment: &str, reason: &str, event: &str) {
        if let Err(error) = self.queue.skip(segment, reason) {
            tracing::error!(%error, %segment, "marking a segment skipped failed");
        }
        self.append_audit(event, json!({ "segment": segment, "reason": reason }));
    }

    fn append_audit(&self, event: &str, fields: serde_json::Value) {
        if let Err(error) = self.audit.append(event, fields) {
            tracing::error!(%error, %event, "an upload event could not be audited");
        }
    }

    fn refresh_status(&self) {
        let entries = self.queue.entries().unwrap_or_default();
        let mut status = self.status_mut();
        status.queued = entries.len() as u64;
        status.queued_bytes = entries.iter().map(|e| e.bytes).sum();
    }

    fn status_mut(&self) -> std::sync::MutexGuard<'_, UploadStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The wait after `in_a_row` failures: 1, 2, 4, … 32 s, then a minute.
fn backoff(in_a_row: u32) -> Duration {
    Duration::from_secs(1 << in_a_row.saturating_sub(1).min(6)).min(MAX_BACKOFF)
}

/// The segment files in `dir` whose writer has let go of them, by name.
fn finished_segments(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(files) = dir::segment_files(dir) else {
        return Vec::new();
    };
    files
        .into_iter()
        .filter(|(path, _)| matches!(dir::is_locked(path), Ok(false)))
        .filter_map(|(path, _)| {
            let name = path.file_name()?.to_str()?.to_owned();
            Some((name, path))
        })
        .collect()
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
    fn failures_back_off_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn only_segments_no_writer_holds_are_finished() {
        let dir = tempfile::tempdir().unwrap();
        let output = recorder_store::OutputDir::open_or_create(dir.path()).unwrap();
        let held = output.create_file("b-0000.rcd").unwrap();
        std::fs::write(dir.path().join("a-0000.rcd"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let names: Vec<String> = finished_segments(dir.path())
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["a-0000.rcd"]);
        drop(held);
        assert_eq!(finished_segments(dir.path()).len(), 2);
    }
}
