//! `recorderd --config FILE` with no target: the service. It records on request over the
//! control socket (`recorder start/stop/status`), only what `[[targets]]` allows and within
//! `[limits]`; sweeps old recordings; reloads retention and redaction on SIGHUP; and on
//! SIGTERM finishes every recording with its trailer before it exits.

pub mod protocol;
pub mod socket;
pub mod targets;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime},
};

use recorder_redact::Policy;
use thiserror::Error;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot},
    time::{timeout, Instant},
};

use self::{
    protocol::{RecordingStatus, Request, Response, StoppedRecording},
    socket::{Peer, SocketError},
};
use crate::{
    accounts,
    audit::{self, AuditError, AuditLog},
    capture::Limits,
    cli,
    config::{self, Config, ConfigError, TargetConfig},
    host_info, privileges,
    record::{dir::Access, DirError, OutputDir, SegmentPolicy},
    retention,
    session::{self, Control, Options, Outcome, Started},
    target,
};

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a start may take (checks, loading and attaching the probes).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long SIGTERM waits for the recordings to finish their segments.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

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
                | ServiceError::Socket(SocketError::InUse { .. } | SocketError::NotASocket { .. })
        )
    }
}

/// Runs the service until SIGTERM or SIGINT.
pub fn run(config_path: &Path) -> Result<(), ServiceError> {
    // Everything the service creates is its own unless it says otherwise (as UMask=0077).
    // SAFETY: umask has no preconditions.
    unsafe { libc::umask(0o077) };
    let config = config::load(Some(config_path))?;
    let redaction = config::compile_redaction(&config, Some(config_path))?;
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
        .unwrap_or_else(|| PathBuf::from(cli::DEFAULT_OUTPUT));
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
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        let mut service = Service {
            config_path: config_path.to_owned(),
            config,
            redaction,
            recordings,
            access,
            audit,
            control_gid,
            active: HashMap::new(),
            stop_waiters: HashMap::new(),
            finished_tx,
        };
        service.serve(listener, finished_rx).await
    })
}

/// A recording the service is running.
struct Active {
    status: RecordingStatus,
    deadline: Instant,
    /// Taken when the recording is asked to stop.
    stop: Option<oneshot::Sender<&'static str>>,
    events: Arc<AtomicU64>,
}

/// A recording thread's last word.
struct Finished {
    recording_id: String,
    result: Result<Outcome, String>,
}

struct Service {
    config_path: PathBuf,
    config: Config,
    redaction: Arc<Policy>,
    recordings: PathBuf,
    access: Access,
    audit: Arc<AuditLog>,
    control_gid: Option<u32>,
    active: HashMap<String, Active>,
    /// Clients of `recorder stop`, answered when their recording has finished.
    stop_waiters: HashMap<String, Vec<UnixStream>>,
    finished_tx: mpsc::UnboundedSender<Finished>,
}

impl Service {
    async fn serve(
        &mut self,
        listener: UnixListener,
        mut finished_rx: mpsc::UnboundedReceiver<Finished>,
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
                    Ok((stream, _)) => self.connection(stream).await,
                    Err(error) => tracing::warn!(%error, "accepting a control connection failed"),
                },
                Some(finished) = finished_rx.recv() => self.finished(finished).await,
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
        self.shutdown(&mut finished_rx).await;
        let _ = std::fs::remove_file(&self.config.control.socket);
        self.audit.append("daemon.stop", serde_json::json!({}))?;
        eprintln!("recorderd: service stopped");
        Ok(())
    }

    fn retention_interval(&self) -> Duration {
        self.config
            .retention
            .policy()
            .map_or(Duration::from_secs(600), |policy| policy.interval)
    }

    /// One retention sweep, off the service's thread; every deletion is audited by it.
    async fn sweep(&self) {
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
                        retention::format_bytes(deletion.bytes),
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

    /// Serves one client: checks who it is, reads its request, answers.
    async fn connection(&mut self, mut stream: UnixStream) {
        let peer = match socket::authorize(&stream, self.control_gid) {
            Ok(peer) => peer,
            Err(message) => {
                tracing::warn!(reason = %message, "refused a control connection");
                let peer = stream.peer_cred().ok();
                let refused = self.audit.append(
                    "control.refused",
                    serde_json::json!({
                        "uid": peer.map(|p| p.uid()),
                        "pid": peer.and_then(|p| p.pid()),
                        "reason": message,
                    }),
                );
                if let Err(error) = refused {
                    tracing::error!(%error, "a refused connection could not be audited");
                }
                reply(&mut stream, &Response::Error { message }).await;
                return;
            }
        };
        let request = match read_request(&mut stream).await {
            Ok(request) => request,
            Err(message) => {
                reply(&mut stream, &Response::Error { message }).await;
                return;
            }
        };
        match request {
            Request::Status => {
                let response = self.status();
                reply(&mut stream, &response).await;
            }
            Request::Start {
                pid,
                target,
                for_secs,
            } => {
                let response = match self.start(peer, pid, target, for_secs).await {
                    Ok(recording) => Response::Started { recording },
                    Err(message) => Response::Error { message },
                };
                reply(&mut stream, &response).await;
            }
            Request::Stop { id } => match self.stop(&id, peer) {
                Ok(id) => self.stop_waiters.entry(id).or_default().push(stream),
                Err(message) => reply(&mut stream, &Response::Error { message }).await,
            },
        }
    }

    fn status(&self) -> Response {
        let now = Instant::now();
        let mut recordings: Vec<RecordingStatus> = self
            .active
            .values()
            .map(|active| RecordingStatus {
                remaining_secs: active.deadline.saturating_duration_since(now).as_secs(),
                events: active.events.load(Ordering::Relaxed),
                ..active.status.clone()
            })
            .collect();
        recordings.sort_by(|a, b| a.started.cmp(&b.started));
        Response::Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            recordings_dir: self.recordings.display().to_string(),
            max_concurrent: self.config.limits.max_concurrent,
            recordings,
        }
    }

    /// Checks a start request against the limits and targets, then starts the recording
    /// on its own thread and waits until it is recording (or has failed).
    async fn start(
        &mut self,
        peer: Peer,
        pid: Option<u32>,
        target: Option<String>,
        for_secs: Option<u64>,
    ) -> Result<RecordingStatus, String> {
        let limits = &self.config.limits;
        if self.active.len() >= limits.max_concurrent {
            return Err(format!(
                "{} recordings are running, the most [limits] max_concurrent allows: stop one first (`recorder status`)",
                self.active.len()
            ));
        }
        let duration = for_secs.map_or(limits.default_duration, Duration::from_secs);
        if duration > limits.max_duration || duration.is_zero() {
            return Err(format!(
                "--for must be between 1s and {} ([limits] max_duration)",
                humantime::format_duration(limits.max_duration)
            ));
        }
        let mut options = self.options(peer, duration);
        match (pid, target) {
            (Some(pid), None) => {
                target::check_pid(pid).map_err(|error| error.to_string())?;
                if peer.uid != 0 && targets::matching(&self.config.targets, pid).is_none() {
                    return Err(format!(
                        "process {pid} is none of the targets in {}: ask an administrator to add it to [[targets]]",
                        self.config_path.display()
                    ));
                }
                options.pids = vec![pid];
            }
            (None, Some(name)) => {
                let target = self
                    .config
                    .targets
                    .iter()
                    .find(|target| target.name == name)
                    .ok_or_else(|| {
                        format!("no target named `{name}` in {}", self.config_path.display())
                    })?;
                scope_target(&mut options, target)?;
            }
            _ => return Err("give exactly one of --pid or --target".to_owned()),
        }
        let recording_id = options.recording_id.clone();
        let events = Arc::new(AtomicU64::new(0));
        let (stop_tx, stop) = oneshot::channel();
        let started = launch(options, stop, events.clone(), self.finished_tx.clone());
        let started = match timeout(START_TIMEOUT, started).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err("the recording thread ended without a word".to_owned()),
            Err(_) => return Err("starting the recording took over a minute".to_owned()),
        };
        let status = RecordingStatus {
            id: recording_id.clone(),
            target: started.description,
            path: started.path.display().to_string(),
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            remaining_secs: duration.as_secs(),
            events: 0,
            requested_by: accounts::describe_user(peer.uid),
        };
        tracing::info!(id = %recording_id, by = %status.requested_by, "recording started");
        self.active.insert(
            recording_id,
            Active {
                status: status.clone(),
                deadline: Instant::now() + duration,
                stop: Some(stop_tx),
                events,
            },
        );
        Ok(status)
    }

    /// The session options every service recording shares.
    fn options(&self, peer: Peer, duration: Duration) -> Options {
        Options {
            recording_id: host_info::new_recording_id(),
            requested_by: serde_json::json!({
                "uid": peer.uid,
                "user": accounts::user_name(peer.uid),
                "pid": peer.pid,
                "via": "control socket",
            }),
            pids: Vec::new(),
            command: Vec::new(),
            cgroup: None,
            comm: None,
            follow: true,
            redaction: self.redaction.clone(),
            output: self.recordings.clone(),
            access: self.access,
            duration: Some(duration),
            limits: Limits {
                max_payload_bytes: cli::DEFAULT_MAX_PAYLOAD,
                ring_bytes: cli::DEFAULT_RING_BYTES,
            },
            segments: SegmentPolicy {
                max_bytes: cli::DEFAULT_SEGMENT_BYTES,
                max_age: cli::DEFAULT_SEGMENT_DURATION,
                fsync_interval: Some(cli::DEFAULT_FSYNC_INTERVAL),
            },
            seal: None,
        }
    }

    /// Asks the recording whose id starts with `prefix` to stop; returns its full id.
    fn stop(&mut self, prefix: &str, peer: Peer) -> Result<String, String> {
        let mut matches = self
            .active
            .iter_mut()
            .filter(|(id, _)| id.starts_with(prefix));
        let (id, active) = match (matches.next(), matches.next()) {
            (Some(found), None) if !prefix.is_empty() => found,
            (None, _) => {
                return Err(format!(
                    "no running recording `{prefix}` (see `recorder status`)"
                ))
            }
            _ => {
                return Err(format!(
                    "`{prefix}` matches several recordings: give more of the id"
                ))
            }
        };
        if let Some(stop) = active.stop.take() {
            let _ = stop.send("stopped on request");
        }
        tracing::info!(id = %id, by = %accounts::describe_user(peer.uid), "recording asked to stop");
        Ok(id.clone())
    }

    /// A recording thread is done: forget it and answer whoever asked it to stop.
    async fn finished(&mut self, finished: Finished) {
        self.active.remove(&finished.recording_id);
        let response = match &finished.result {
            Ok(outcome) => Response::Stopped {
                recording: StoppedRecording {
                    id: finished.recording_id.clone(),
                    end_reason: outcome.end_reason.to_owned(),
                    events: outcome.events,
                    lost: outcome.lost,
                    paths: outcome
                        .paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect(),
                },
            },
            Err(message) => Response::Error {
                message: format!("recording {} failed: {message}", finished.recording_id),
            },
        };
        match &finished.result {
            Ok(outcome) => tracing::info!(
                id = %finished.recording_id,
                reason = outcome.end_reason,
                events = outcome.events,
                "recording finished"
            ),
            Err(message) => {
                tracing::error!(id = %finished.recording_id, %message, "recording failed")
            }
        }
        for mut waiter in self
            .stop_waiters
            .remove(&finished.recording_id)
            .unwrap_or_default()
        {
            reply(&mut waiter, &response).await;
        }
    }

    /// SIGHUP: takes the retention and redaction settings (and targets and limits) from the
    /// config file again. Running recordings keep the policy they started with.
    fn reload(&mut self) {
        let loaded = config::load(Some(&self.config_path)).and_then(|config| {
            let redaction = config::compile_redaction(&config, Some(&self.config_path))?;
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
                let control = self.config.control.clone();
                self.config = Config { control, ..config };
                self.redaction = redaction;
                eprintln!("recorderd: reloaded {}", self.config_path.display());
            }
            Err(error) => {
                eprintln!("recorderd: reload refused, keeping the running config: {error}")
            }
        }
    }

    /// Stops every recording and waits until each has written its trailer.
    async fn shutdown(&mut self, finished_rx: &mut mpsc::UnboundedReceiver<Finished>) {
        for active in self.active.values_mut() {
            if let Some(stop) = active.stop.take() {
                let _ = stop.send("terminated");
            }
        }
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        while !self.active.is_empty() {
            match tokio::time::timeout_at(deadline, finished_rx.recv()).await {
                Ok(Some(finished)) => self.finished(finished).await,
                _ => {
                    tracing::error!(
                        left = self.active.len(),
                        "recordings did not finish in time"
                    );
                    break;
                }
            }
        }
    }
}

/// The SHA-256 of a file, so the audit log says which configuration was in force.
fn file_sha256(path: &Path) -> Option<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).ok()?;
    Some(hex::encode(sha2::Sha256::digest(bytes)))
}

/// Fills `options` with the scope of a configured target.
fn scope_target(options: &mut Options, target: &TargetConfig) -> Result<(), String> {
    if let Some(comm) = &target.comm {
        options.comm = Some(comm.clone());
    } else if let Some(cgroup) = &target.cgroup {
        options.cgroup = Some(cgroup.clone());
    } else {
        options.pids = targets::pids_of(target);
        if options.pids.is_empty() {
            return Err(format!("no process of target `{}` is running", target.name));
        }
    }
    Ok(())
}

/// Runs one recording on its own thread; the returned receiver says when it is recording
/// or why it could not start. `finished` hears when it is done.
fn launch(
    options: Options,
    stop: oneshot::Receiver<&'static str>,
    events: Arc<AtomicU64>,
    finished: mpsc::UnboundedSender<Finished>,
) -> oneshot::Receiver<Result<Started, String>> {
    let (started_tx, started_rx) = oneshot::channel();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let say = move |result: Result<Started, String>| {
        if let Some(tx) = started_tx.lock().ok().and_then(|mut tx| tx.take()) {
            let _ = tx.send(result);
        }
    };
    let say_started = say.clone();
    let control = Control {
        stop,
        started: Box::new(move |started: &Started| say_started(Ok(started.clone()))),
        events,
    };
    let spawned = std::thread::Builder::new()
        .name("recording".to_owned())
        .spawn(move || {
            let recording_id = options.recording_id.clone();
            let result =
                record_on_this_thread(&options, control).map_err(|error| error.to_string());
            if let Err(message) = &result {
                say(Err(message.clone()));
            }
            let _ = finished.send(Finished {
                recording_id,
                result,
            });
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start a recording thread");
    }
    started_rx
}

fn record_on_this_thread(
    options: &Options,
    control: Control,
) -> Result<Outcome, session::SessionError> {
    let (scope, dir) = session::prepare(options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(session::SessionError::Runtime)?;
    runtime.block_on(session::record(options, &scope, dir, None, control))
}

/// Reads one request line of at most `MAX_REQUEST_BYTES`, within `REQUEST_TIMEOUT`.
async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take(protocol::MAX_REQUEST_BYTES));
    match timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(format!("cannot read the request: {error}")),
        Err(_) => return Err("no request within 5 s".to_owned()),
    }
    serde_json::from_str(&line)
        .map_err(|error| format!("not a request this recorderd knows: {error}"))
}

async fn reply(stream: &mut UnixStream, response: &Response) {
    let mut line = serde_json::to_vec(response).expect("responses always serialize");
    line.push(b'\n');
    if let Err(error) = stream.write_all(&line).await {
        tracing::debug!(%error, "a control client left before its answer");
    }
}
