//! `recorderd --config FILE` with no target: the service. It records on request over the
//! control socket (`recorder start/stop/status`), only what `[[targets]]` allows and within
//! `[limits]`; sweeps old recordings; reloads retention and redaction on SIGHUP; and on
//! SIGTERM finishes every recording with its trailer before it exits.

/// The control socket: its mode and group, and the peer check.
pub mod socket;
/// Control connections read on tasks of their own, and the per-uid allowance.
pub mod connections;
/// `recorder status`, `start` and `stop` as the service answers them.
pub mod requests;
/// One thread per recording, and what the service does when one ends.
pub mod recording_thread;
/// Retention sweeps, SIGHUP reload and SIGTERM shutdown.
pub mod upkeep;
/// Which processes `[[targets]]` allows.
pub mod targets;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{atomic::AtomicU64, Arc},
};

use recorder_config::{defaults, Config, ConfigError};
use recorder_control::RecordingStatus;
use recorder_objects::upload::Uploader;
use recorder_redact::Policy;
use recorder_store::{
    accounts,
    audit::{self, AuditError, AuditLog},
    DirError, OutputDir,
};
use thiserror::Error;
use tokio::{
    net::UnixListener,
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot},
    time::Instant,
};

use self::{recording_thread::News, socket::SocketError, upkeep::file_sha256};
use crate::privileges;

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("config {path}: [control] group `{group}` does not exist: create it (`groupadd {group}`) or fix the name")]
    UnknownGroup { path: PathBuf, group: String },
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    #[error(transparent)]
    Upload(#[from] recorder_objects::upload::StartError),
    #[error("internal I/O setup failed: {0}")]
    Runtime(#[source] std::io::Error),
}

impl ServiceError {
    /// Errors in what the operator wrote, as opposed to the host failing us.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ServiceError::Config(_)
                | ServiceError::UnknownGroup { .. }
                | ServiceError::Dir(_)
                | ServiceError::Upload(recorder_objects::upload::StartError::Connect(_))
                | ServiceError::Socket(SocketError::InUse { .. } | SocketError::NotASocket { .. })
        )
    }
}

/// Runs the service until SIGTERM or SIGINT.
pub fn run(config_path: &Path) -> Result<(), ServiceError> {
    // Everything the service creates is its own unless it says otherwise (as UMask=0077).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let config = recorder_config::load(Some(config_path))?;
    let redaction = recorder_config::compile_redaction(&config, Some(config_path))?;
    let control_gid = match &config.control.group {
        None => None,
        Some(group) => {
            Some(
                accounts::group_id(group).ok_or_else(|| ServiceError::UnknownGroup {
                    path: config_path.to_owned(),
                    group: group.clone(),
                })?,
            )
        }
    };
    let recordings = config
        .storage
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(defaults::OUTPUT_DIR));
    let access = config.storage.access()?;
    OutputDir::open_or_create_with(&recordings, &access)?;
    let audit = Arc::new(AuditLog::open(&audit::path_in(&recordings))?);
    audit.append(
        "daemon.start",
        serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "config": config_path,
            "config_sha256": file_sha256(config_path),
            "pid": std::process::id(),
        }),
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    runtime.block_on(async {
        let listener = socket::bind(&config.control.socket, control_gid)?;
        // Groups are set; from here on the service loads probes, reads /proc and gives new
        // files the reader group.
        privileges::keep_only(&privileges::needed(
            privileges::SERVICE,
            access.group.is_some(),
        ))?;
        let uploader = match config.upload.enabled() {
            true => Some(Uploader::start(&recordings, &config.upload, audit.clone())?),
            false => None,
        };
        let (news_tx, news_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
        let mut service = Service {
            config_path: config_path.to_owned(),
            config,
            redaction,
            recordings,
            audit,
            control_gid,
            active: HashMap::new(),
            starting: HashMap::new(),
            stop_waiters: HashMap::new(),
            news_tx,
            connections: connections::Gate::default(),
            incoming_tx,
            uploader,
        };
        service.serve(listener, news_rx, incoming_rx).await
    })
}

/// How long a stopping service goes on uploading what its recordings finished.
const UPLOAD_FINISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Requests read and not yet answered; a task with a request waits while it is full.
const INCOMING_QUEUE: usize = 64;

/// A recording whose thread is loading its probes.
struct Starting {
    /// Whoever asked for it hears the answer through this.
    answer: oneshot::Sender<recorder_control::Response>,
    stop: Option<oneshot::Sender<&'static str>>,
    events: Arc<AtomicU64>,
    duration: std::time::Duration,
    requested_by: String,
    notices: Vec<String>,
}

/// A recording the service is running.
struct Active {
    status: RecordingStatus,
    deadline: Instant,
    /// Taken when the recording is asked to stop.
    stop: Option<oneshot::Sender<&'static str>>,
    events: Arc<AtomicU64>,
}

struct Service {
    config_path: PathBuf,
    config: Config,
    redaction: Arc<Policy>,
    recordings: PathBuf,
    audit: Arc<AuditLog>,
    control_gid: Option<u32>,
    active: HashMap<String, Active>,
    /// Recordings asked for and not running yet: they count against `max_concurrent`.
    starting: HashMap<String, Starting>,
    /// Clients of `recorder stop`, answered when their recording has finished.
    stop_waiters: HashMap<String, Vec<connections::Client>>,
    news_tx: mpsc::UnboundedSender<News>,
    /// Open control connections per uid.
    connections: connections::Gate,
    /// Requests read by the connections' tasks, for the loop to answer.
    incoming_tx: mpsc::Sender<connections::Incoming>,
    /// Finished segments and the audit log to the bucket (`[upload]`).
    uploader: Option<Uploader>,
}

impl Service {
    async fn serve(
        &mut self,
        listener: UnixListener,
        mut news_rx: mpsc::UnboundedReceiver<News>,
        mut incoming_rx: mpsc::Receiver<connections::Incoming>,
    ) -> Result<(), ServiceError> {
        let mut sigterm = signal(SignalKind::terminate()).map_err(ServiceError::Runtime)?;
        let mut sigint = signal(SignalKind::interrupt()).map_err(ServiceError::Runtime)?;
        let mut sighup = signal(SignalKind::hangup()).map_err(ServiceError::Runtime)?;
        eprintln!(
            "recorderd: service listening on {} (recordings in {})",
            self.config.control.socket.display(),
            self.recordings.display()
        );
        let mut sweep_every = self.retention_interval();
        let mut next_sweep = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_sweep) => {
                    self.sweep().await;
                    next_sweep = Instant::now() + sweep_every;
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => self.accept(stream),
                    Err(error) => tracing::warn!(%error, "accepting a control connection failed"),
                },
                Some(incoming) = incoming_rx.recv() => self.answer(incoming).await,
                Some(news) = news_rx.recv() => self.news(news).await,
                _ = sighup.recv() => {
                    self.reload();
                    // New retention settings apply at once, then at their interval.
                    sweep_every = self.retention_interval();
                    next_sweep = Instant::now();
                }
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
        }
        self.shutdown(&mut news_rx).await;
        let _ = std::fs::remove_file(&self.config.control.socket);
        self.audit.append("daemon.stop", serde_json::json!({}))?;
        // After the last entry, so the shipped audit log ends with the stop.
        if let Some(uploader) = self.uploader.take() {
            uploader.finish(UPLOAD_FINISH_TIMEOUT).await;
        }
        eprintln!("recorderd: service stopped");
        Ok(())
    }
}
