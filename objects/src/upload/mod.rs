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
//! own (`audit_shipping`). Both run on a thread of their own, so the queue's fsyncs and the
//! parts' checksums never hold the service's control loop. Recording never waits on any of
//! this: the uploader reads only finished files.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use object_store::aws::AmazonS3;
use recorder_config::UploadConfig;
use recorder_control::UploadStatus;
use recorder_store::{audit::AuditLog, retention};
use serde_json::json;
use tokio::{sync::watch, time::Instant};

/// Finding finished segments and queueing them within the bound.
mod scan;

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
    /// Hears when the uploader's thread has finished its last pass.
    done: tokio::sync::oneshot::Receiver<()>,
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
        let shipper = audit_shipping::run(
            shipping,
            store.clone(),
            audit.clone(),
            status.clone(),
            config.audit_interval,
            ship_stopped,
        );
        let worker = Worker {
            recordings: recordings.to_owned(),
            config: config.clone(),
            store,
            queue,
            host,
            audit,
            status: status.clone(),
            failures: Failures::default(),
            failed_last: None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let (finished, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("uploader".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let shipper = tokio::spawn(shipper);
                    worker.run(stopped).await;
                    // The audit log last, so that it holds the uploads just made.
                    let _ = ship_stop.send(true);
                    let _ = shipper.await;
                });
                let _ = finished.send(());
            })
            .map_err(StartError::Runtime)?;
        Ok(Uploader { status, stop, done })
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
        let _ = self.stop.send(true);
        if tokio::time::timeout(limit, self.done).await.is_err() {
            tracing::warn!(
                "uploads did not finish in time; the rest stays queued for the next start"
            );
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
    #[error("[upload]: cannot start the uploader's thread: {0}")]
    Runtime(std::io::Error),
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
    /// The segment whose upload failed last: the next pass tries the others first, so one
    /// segment that keeps failing (its own read error, say) does not hold the rest.
    failed_last: Option<String>,
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

    /// Uploads the queue, oldest first, until it is empty or an upload fails; scans go on
    /// while an upload is in flight.
    async fn work(&mut self, stop: &watch::Receiver<bool>) {
        let stopping = *stop.borrow();
        loop {
            if *stop.borrow() && !stopping {
                return;
            }
            let entries = self.queue.entries().unwrap_or_default();
            let failed_last = self.failed_last.as_deref();
            let next = entries
                .iter()
                .find(|e| Some(e.segment.as_str()) != failed_last)
                .or(entries.first());
            let Some(entry) = next.cloned() else {
                return;
            };
            self.status_mut().in_flight = Some(entry.segment.clone());
            let outcome = {
                // Scans run beside the upload, both polled; a scan cut short when the
                // upload ends loses nothing (what it had not queued, the next one does).
                let upload = self.upload(&entry);
                tokio::pin!(upload);
                let mut ticks = tokio::time::interval(SCAN_INTERVAL);
                ticks.tick().await;
                loop {
                    let scan = async {
                        ticks.tick().await;
                        self.scan().await
                    };
                    tokio::select! {
                        outcome = &mut upload => break outcome,
                        () = scan => {}
                    }
                }
            };
            self.status_mut().in_flight = None;
            match outcome {
                Ok(Outcome::Uploaded {
                    parts,
                    already_there,
                }) => {
                    if self.failed_last.as_deref() == Some(entry.segment.as_str()) {
                        self.failed_last = None;
                    }
                    self.uploaded(&entry, parts, already_there).await
                }
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
                    self.failed_last = Some(entry.segment.clone());
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
        // Marked done before the local copy goes: a crash between the two leaves a copy
        // that is known to be uploaded, never a deleted one the queue would call lost.
        if let Err(error) = self.queue.finish(&entry.segment) {
            tracing::error!(%error, segment = %entry.segment, "marking an upload done failed");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
