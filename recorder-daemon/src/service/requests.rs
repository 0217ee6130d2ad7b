//! The control requests as the service answers them: `status`, `start` (checked against
//! `[limits]` and `[[targets]]`, then run on its own thread) and `stop`.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use recorder_capture::target;
use recorder_config::TargetConfig;
use recorder_control::{RecordingStatus, Request, Response, MAX_REQUEST_BYTES};
use recorder_store::accounts;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
    sync::oneshot,
    time::{timeout, Instant},
};

use super::{
    connections::{self, Incoming},
    recording_thread, socket,
    socket::Peer,
    targets, Service, Starting,
};
use crate::{options::Options, session};

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a start may take (checks, loading and attaching the probes).
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Service {
    /// Takes a new connection: checks who it is, then reads its request on a task of its
    /// own (`connections`); the loop answers it when it has been read.
    pub(super) fn accept(&mut self, stream: UnixStream) {
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
                connections::refuse(stream, message);
                return;
            }
        };
        let Some(slot) = self.connections.admit(peer.uid) else {
            // Not a warning: a client opening connections in a loop would flood the log.
            tracing::debug!(
                uid = peer.uid,
                "refused a control connection over the per-uid limit"
            );
            connections::refuse(
                stream,
                format!(
                    "uid {} already has {} connections open to recorderd: close some and try again",
                    peer.uid,
                    connections::MAX_PER_UID
                ),
            );
            return;
        };
        connections::read_in_background(stream, peer, slot, self.incoming_tx.clone());
    }

    /// Answers a request that has been read.
    pub(super) async fn answer(&mut self, incoming: Incoming) {
        let Incoming {
            mut client,
            request,
        } = incoming;
        match request {
            Request::Status => {
                let response = self.status();
                reply(&mut client.stream, &response).await;
            }
            Request::Start {
                pid,
                target,
                for_secs,
            } => match self.start(client.peer, pid, target, for_secs) {
                // Answered once the probes are attached, on a task of its own: the loop
                // goes on serving everyone else meanwhile.
                Ok(answer) => {
                    tokio::spawn(async move {
                        let response = match timeout(START_TIMEOUT, answer).await {
                            Ok(Ok(response)) => response,
                            Ok(Err(_)) => Response::Error {
                                message: "the service stopped before the recording started"
                                    .to_owned(),
                            },
                            Err(_) => Response::Error {
                                message: "starting the recording took over a minute; it may \
                                          still start: see `recorder status`"
                                    .to_owned(),
                            },
                        };
                        reply(&mut client.stream, &response).await;
                    });
                }
                Err(message) => reply(&mut client.stream, &Response::Error { message }).await,
            },
            Request::Stop { id } => match self.stop(&id, client.peer) {
                Ok(id) => self.stop_waiters.entry(id).or_default().push(client),
                Err(message) => reply(&mut client.stream, &Response::Error { message }).await,
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
            upload: self.uploader.as_ref().map(|uploader| uploader.status()),
        }
    }

    /// Checks a start request against the limits and targets, then starts the recording
    /// on its own thread; the answer (the new recording's status, or why it could not
    /// start) comes through the returned receiver once it is recording.
    fn start(
        &mut self,
        peer: Peer,
        pid: Option<u32>,
        target: Option<String>,
        for_secs: Option<u64>,
    ) -> Result<oneshot::Receiver<Response>, String> {
        let limits = &self.config.limits;
        let running = self.active.len() + self.starting.len();
        if running >= limits.max_concurrent {
            return Err(format!(
                "{running} recordings are running or starting, the most [limits] max_concurrent allows: stop one first (`recorder status`)",
            ));
        }
        let duration = for_secs.map_or(limits.default_duration, Duration::from_secs);
        if duration > limits.max_duration || duration.is_zero() {
            return Err(format!(
                "--for must be between 1s and {} ([limits] max_duration)",
                humantime::format_duration(limits.max_duration)
            ));
        }
        let mut options = self.options(peer, duration)?;
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
        let (answer_tx, answer) = oneshot::channel();
        let (stop_tx, stop) = oneshot::channel();
        let starting = Starting {
            answer: answer_tx,
            stop: Some(stop_tx),
            events: Arc::new(AtomicU64::new(0)),
            duration,
            requested_by: accounts::describe_user(peer.uid),
            notices: session::compat_notices(&options),
        };
        let events = starting.events.clone();
        self.starting.insert(options.recording_id.clone(), starting);
        recording_thread::launch(options, stop, events, self.news_tx.clone());
        Ok(answer)
    }

    /// A recording as the configuration says, for `duration`, asked for by `peer`.
    fn options(&self, peer: Peer, duration: Duration) -> Result<Options, String> {
        let requested_by = serde_json::json!({
            "uid": peer.uid,
            "user": accounts::user_name(peer.uid),
            "pid": peer.pid,
            "via": "control socket",
        });
        let mut options = Options::from_config(&self.config, self.redaction.clone(), requested_by)
            .map_err(|error| error.to_string())?;
        options.duration = Some(duration);
        Ok(options)
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

/// Reads one request line of at most `MAX_REQUEST_BYTES`, within `REQUEST_TIMEOUT`.
pub(super) async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST_BYTES));
    match timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(format!("cannot read the request: {error}")),
        Err(_) => return Err("no request within 5 s".to_owned()),
    }
    serde_json::from_str(&line)
        .map_err(|error| format!("not a request this recorderd knows: {error}"))
}

pub(super) async fn reply(stream: &mut UnixStream, response: &Response) {
    let mut line = serde_json::to_vec(response).expect("responses always serialize");
    line.push(b'\n');
    if let Err(error) = stream.write_all(&line).await {
        tracing::debug!(%error, "a control client left before its answer");
    }
}
