//! The service's upkeep: retention sweeps, reloading the configuration on SIGHUP, and
//! finishing every recording on SIGTERM.

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use recorder_config::Config;
use recorder_store::retention::{self, format_bytes};

use tokio::{sync::mpsc, time::Instant};

use super::{recording_thread::News, Service};

/// How long SIGTERM waits for the recordings to finish their segments.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

impl Service {
    pub(super) fn retention_interval(&self) -> Duration {
        self.config
            .retention
            .policy()
            .map_or(Duration::from_secs(600), |policy| policy.interval)
    }

    /// One retention sweep, off the service's thread; every deletion is audited by it.
    pub(super) async fn sweep(&self) {
        let Ok(policy) = self.config.retention.policy() else {
            return;
        };
        let dir = self.recordings.clone();
        let audit = self.audit.clone();
        let swept = tokio::task::spawn_blocking(move || {
            retention::sweep(&dir, &policy, SystemTime::now(), false, Some(&audit))
        })
        .await;
        match swept {
            Ok(Ok(report)) => {
                for deletion in &report.plan.deletions {
                    eprintln!(
                        "recorderd: swept recording {} ({}): {}",
                        deletion.recording_id,
                        format_bytes(deletion.bytes),
                        deletion.reason
                    );
                }
                for unmet in &report.plan.unmet {
                    tracing::warn!(%unmet, "retention limit not met");
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "retention sweep failed"),
            Err(error) => tracing::error!(%error, "retention sweep panicked"),
        }
    }

    /// SIGHUP: takes the retention and redaction settings (and targets and limits) from the
    /// config file again. Running recordings keep the policy they started with.
    pub(super) fn reload(&mut self) {
        let loaded = recorder_config::load(Some(&self.config_path)).and_then(|config| {
            let redaction = recorder_config::compile_redaction(&config, Some(&self.config_path))?;
            Ok((config, redaction))
        });
        match loaded {
            Ok((config, redaction)) => {
                let reloaded = self.audit.append(
                    "daemon.reload",
                    serde_json::json!({ "config_sha256": file_sha256(&self.config_path) }),
                );
                if let Err(error) = reloaded {
                    tracing::error!(%error, "the reload could not be audited");
                }
                if config.control.socket != self.config.control.socket
                    || config.control.group != self.config.control.group
                {
                    tracing::warn!("[control] changed: it takes effect when recorderd restarts");
                }
                if config.storage != self.config.storage {
                    tracing::warn!("[storage] changed: it takes effect when recorderd restarts");
                }
                if config.upload != self.config.upload {
                    tracing::warn!("[upload] changed: it takes effect when recorderd restarts");
                }
                let control = self.config.control.clone();
                let storage = self.config.storage.clone();
                let upload = self.config.upload.clone();
                self.config = Config {
                    control,
                    storage,
                    upload,
                    ..config
                };
                self.redaction = redaction;
                eprintln!("recorderd: reloaded {}", self.config_path.display());
            }
            Err(error) => {
                eprintln!("recorderd: reload refused, keeping the running config: {error}")
            }
        }
    }

    /// Stops every recording and waits until each has written its trailer.
    pub(super) async fn shutdown(&mut self, news_rx: &mut mpsc::UnboundedReceiver<News>) {
        let stops = self.active.values_mut().map(|active| &mut active.stop);
        for stop in stops.chain(
            self.starting
                .values_mut()
                .map(|starting| &mut starting.stop),
        ) {
            if let Some(stop) = stop.take() {
                let _ = stop.send("terminated");
            }
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        while !self.active.is_empty() || !self.starting.is_empty() {
            match tokio::time::timeout_at(deadline, news_rx.recv()).await {
                Ok(Some(news)) => self.news(news).await,
                _ => {
                    tracing::error!(
                        left = self.active.len() + self.starting.len(),
                        "recordings did not finish in time"
                    );
                    break;
                }
            }
        }
    }
}

/// The SHA-256 of a file, so the audit log says which configuration was in force.
pub fn file_sha256(path: &Path) -> Option<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(sha2::Sha256::digest(bytes)))
}
