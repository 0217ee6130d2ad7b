//! One recording session, start to finish: check the targets, load the probes, write the
//! segment, and stop on a signal, at the deadline, or when every target has exited — always
//! finishing the segment with a trailer.

use std::{
    os::fd::OwnedFd,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use recorder_proto::v1::{CaptureLimits, Header, Target};
use recorder_redact::Policy;
use thiserror::Error;
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
    sync::{mpsc, oneshot},
    time::{interval, sleep},
};

use crate::{
    audit::{self, AuditError, AuditLog},
    capture::{host, Capture, CaptureError, Limits, LossCounts, Scope},
    fdtable::FdTable,
    host_info,
    pipeline::Pipeline,
    privileges,
    processes::Processes,
    record::{dir::Access, DirError, OutputDir, RecordingWriter, Seal, SegmentPolicy, WriteError},
    redaction::{redact_command, Redactor},
    target::{self, Spawned, TargetError},
};

/// How often losses are polled and the writer's periodic work runs (closing a zstd frame
/// that has been open a second, rotation by age, fsync). Short, so a crash loses at most
/// about a second and a quarter of events.
const TICK: Duration = Duration::from_millis(250);

/// The probes wake the daemon only once a quarter of the ring is full (a wake-up per record
/// costs the traced program more than the copy), so the daemon drains on a timer: every
/// millisecond while records arrive, backing off to every 32 ms while none do.
const DRAIN_MIN: Duration = Duration::from_millis(1);
const DRAIN_MAX: Duration = Duration::from_millis(32);

#[derive(Clone, Debug)]
pub struct Options {
    /// The new recording's id (`host_info::new_recording_id`).
    pub recording_id: String,
    /// Who asked for the recording, for the audit log.
    pub requested_by: serde_json::Value,
    pub pids: Vec<u32>,
    /// `recorderd -- CMD ARGS`: spawn and record this command.
    pub command: Vec<String>,
    /// `--cgroup`: record every process in this cgroup v2.
    pub cgroup: Option<String>,
    /// `--comm`: record processes running a program of this name.
    pub comm: Option<String>,
    /// Record the children targeted processes start (`--no-follow` turns it off).
    pub follow: bool,
    /// What is redacted before anything is written.
    pub redaction: Arc<Policy>,
    pub output: PathBuf,
    /// Who besides the owner may read the recordings (`[storage] reader_group`).
    pub access: Access,
    pub duration: Option<Duration>,
    pub limits: Limits,
    pub segments: SegmentPolicy,
    /// Seal every segment to these recipients (`--seal-to`).
    pub seal: Option<Seal>,
}

/// How whoever started a recording steers it while it runs.
pub struct Control {
    /// Ends the recording with this reason (a signal, `recorder stop`, the service stopping).
    pub stop: oneshot::Receiver<&'static str>,
    /// Called once, when the probes are attached and the first segment exists.
    pub started: Box<dyn FnOnce(&Started) + Send>,
    /// Events written so far, for `recorder status`.
    pub events: Arc<AtomicU64>,
}

/// A recording that has begun.
#[derive(Clone, Debug)]
pub struct Started {
    pub recording_id: String,
    /// The first segment file.
    pub path: PathBuf,
    /// What is recorded, in words (the command line redacted).
    pub description: String,
    /// How many syscalls the probes trace.
    pub syscalls: usize,
}

#[derive(Debug)]
pub struct Outcome {
    pub recording_id: String,
    /// The recording's segment files, in order.
    pub paths: Vec<PathBuf>,
    pub events: u64,
    pub lost: u64,
    /// Frames that could not be written (disk full, write errors).
    pub unwritten: u64,
    pub end_reason: &'static str,
    /// Exit code of the spawned command (128 + signal if killed).
    pub exit_code: Option<i32>,
}

#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Dir(#[from] DirError),
    /// No recording starts unless its audit entry can be written.
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("internal I/O setup failed: {0}")]
    Runtime(#[source] std::io::Error),
}

impl SessionError {
    /// Errors caused by what the user asked for, as opposed to the host failing us.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            SessionError::Target(
                TargetError::NoSuchProcess { .. }
                    | TargetError::SelfTarget { .. }
                    | TargetError::NulInCommand
                    | TargetError::BadCgroup { .. }
                    | TargetError::BadComm { .. }
            ) | SessionError::Dir(_)
        )
    }
}

/// Checks what `options` name before anything is loaded: the pids, the cgroup and command
/// name, the privileges, and the output directory.
pub fn prepare(options: &Options) -> Result<(Scope, OutputDir), SessionError> {
    for &pid in &options.pids {
        target::check_pid(pid)?;
    }
    let scope = Scope {
        follow: options.follow,
        cgroup: options
            .cgroup
            .as_deref()
            .map(target::resolve_cgroup)
            .transpose()?,
        comm: options.comm.clone(),
    };
    if let Some(name) = &scope.comm {
        target::check_comm(name)?;
    }
    host::check_privileges().map_err(CaptureError::from)?;
    let dir = OutputDir::open_or_create_with(&options.output, &options.access)?;
    Ok((scope, dir))
}

/// Records in the foreground (`sudo recorderd --pid N`) until the targets exit, a signal
/// (SIGINT, SIGTERM) or `--duration`.
pub fn run(options: Options) -> Result<Outcome, SessionError> {
    let (scope, dir) = prepare(&options)?;
    let mut spawned = match options.command.is_empty() {
        true => None,
        false => Some(target::spawn(&options.command)?),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SessionError::Runtime)?;
    let recorded = runtime.block_on(async {
        // Before saying "recording": a Ctrl-C or SIGTERM from then on must finish it.
        let mut sigint = signal(SignalKind::interrupt()).map_err(SessionError::Runtime)?;
        let mut sigterm = signal(SignalKind::terminate()).map_err(SessionError::Runtime)?;
        let (stop_tx, stop) = oneshot::channel();
        tokio::spawn(async move {
            let reason = tokio::select! {
                _ = sigint.recv() => "interrupted",
                _ = sigterm.recv() => "terminated",
            };
            let _ = stop_tx.send(reason);
        });
        let keep = privileges::needed(
            privileges::ONE_SHOT_AFTER_ATTACH,
            options.access.group.is_some(),
        );
        let control = Control {
            stop,
            started: Box::new(move |started: &Started| {
                // The probes are attached: what follows reads /proc and creates segments.
                if let Err(error) = privileges::keep_only(&keep) {
                    tracing::warn!(%error, "could not drop capabilities");
                }
                eprintln!(
                    "recorderd: recording {} into {} ({} syscalls traced; Ctrl-C to stop)",
                    started.description,
                    started.path.display(),
                    started.syscalls
                );
            }),
            events: Arc::default(),
        };
        record(&options, &scope, dir, spawned.as_mut(), control).await
    });
    // A spawned command still running when recording stops (signal, deadline, failure) is
    // ours to end; one never released is ended by dropping it (it exits without running).
    let exit_code = match spawned {
        Some(child) if child.released() => {
            if recorded
                .as_ref()
                .map_or(true, |r| r.end_reason != END_TARGET_EXITED)
            {
                // SAFETY: signalling our own child by pid.
                unsafe { libc::kill(child.pid as libc::pid_t, libc::SIGTERM) };
            }
            child.wait()
        }
        _ => None,
    };
    let mut outcome = recorded?;
    outcome.exit_code = exit_code;
    Ok(outcome)
}

const END_TARGET_EXITED: &str = "target exited";

/// Loads the probes, records until `control.stop`, the deadline or the targets' exit, and
/// finishes the recording with a trailer. The recording's start and stop are in the audit
/// log of `dir`, with who asked; one that cannot be audited does not start.
pub async fn record(
    options: &Options,
    scope: &Scope,
    dir: OutputDir,
    spawned: Option<&mut Spawned>,
    control: Control,
) -> Result<Outcome, SessionError> {
    let audit = AuditLog::open(&audit::path_in(dir.path()))?;
    let mut audited_start = false;
    let result = record_audited(
        options,
        scope,
        dir,
        spawned,
        control,
        &audit,
        &mut audited_start,
    )
    .await;
    if audited_start {
        let fields = match &result {
            Ok(outcome) => serde_json::json!({
                "id": options.recording_id,
                "reason": outcome.end_reason,
                "events": outcome.events,
                "lost": outcome.lost,
                "unwritten": outcome.unwritten,
                "segments": outcome.paths.len(),
            }),
            Err(error) => serde_json::json!({
                "id": options.recording_id,
                "reason": "failed",
                "error": error.to_string(),
            }),
        };
        if let Err(error) = audit.append_by("recording.stop", options.requested_by.clone(), fields)
        {
            tracing::error!(%error, "the recording's stop could not be audited");
        }
    }
    result
}

async fn record_audited(
    options: &Options,
    scope: &Scope,
    dir: OutputDir,
    spawned: Option<&mut Spawned>,
    control: Control,
    audit: &AuditLog,
    audited_start: &mut bool,
) -> Result<Outcome, SessionError> {
    let Control {
        mut stop,
        started,
        events,
    } = control;
    let mut capture = Capture::load(options.limits, scope)?;
    let mut fds = FdTable::default();
    let mut watched: Vec<(u32, OwnedFd)> = Vec::new();
    let mut pids = options.pids.clone();
    // Processes already running the --comm program; later ones are picked up at exec.
    pids.extend(
        scope
            .comm
            .as_deref()
            .map(target::pids_with_comm)
            .unwrap_or_default(),
    );
    for pid in pids {
        // Watch before targeting, so an exit in between is still seen.
        watched.push((pid, target::watch(pid)?));
        capture.add_target(pid)?;
        fds.seed(pid);
    }
    if let Some(child) = spawned.as_deref() {
        watched.push((child.pid, target::watch(child.pid)?));
        target::wait_until_parked(child.pid);
        capture.add_target(child.pid)?;
        // The command inherits our stdin/stdout/stderr; name them in its events.
        fds.seed(child.pid);
    }

    let start_mono_ns = host_info::monotonic_ns();
    let redactor = Redactor::new(options.redaction.clone());
    let recording_id = options.recording_id.clone();
    let header = header(options, &redactor, &recording_id, spawned.as_deref());
    let description = describe(options, &watched);
    audit.append_by(
        "recording.start",
        options.requested_by.clone(),
        serde_json::json!({ "id": recording_id, "target": description }),
    )?;
    *audited_start = true;
    let writer = RecordingWriter::create(dir, header, options.segments, options.seal.clone())?;
    let path = writer.paths()[0].clone();
    let processes = Processes::new(watched.iter().map(|(pid, _)| *pid));
    let mut pipeline = Pipeline::new(
        options.limits.max_payload_bytes,
        fds,
        processes,
        redactor,
        writer,
    );
    // With --cgroup or --comm, processes come and go; only a signal or --duration ends it.
    let open_ended = scope.cgroup.is_some() || scope.comm.is_some();
    if let Some(child) = spawned {
        child.release()?;
    }
    started(&Started {
        recording_id: recording_id.clone(),
        path,
        description,
        syscalls: capture.attached().len(),
    });

    let (exit_tx, mut exit_rx) = mpsc::channel(watched.len().max(1));
    for (pid, pidfd) in watched {
        // SAFETY: the AsyncFd owns the pidfd and nothing else closes or replaces it.
        let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
            .map_err(|error| SessionError::Runtime(error.into()))?;
        let exit_tx = exit_tx.clone();
        tokio::spawn(async move {
            let _ = pidfd.readable().await;
            let _ = exit_tx.send(pid).await;
        });
    }
    let deadline = sleep(options.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    let mut tick = interval(TICK);
    let mut drain_every = DRAIN_MIN;
    let next_drain = sleep(drain_every);
    tokio::pin!(next_drain);
    let mut reported = LossCounts::default();
    let mut reported_at = start_mono_ns;

    let end_reason = loop {
        tokio::select! {
            ready = capture.ring().readable_mut() => {
                let mut guard = ready.map_err(SessionError::Runtime)?;
                drain(guard.get_inner_mut(), &mut pipeline)?;
                guard.clear_ready();
            }
            _ = &mut next_drain => {
                let drained = drain(capture.ring().get_mut(), &mut pipeline)?;
                drain_every = match drained {
                    0 => (drain_every * 2).min(DRAIN_MAX),
                    _ => DRAIN_MIN,
                };
                next_drain.as_mut().reset(tokio::time::Instant::now() + drain_every);
            }
            reason = &mut stop => break reason.unwrap_or("stopped"),
            _ = &mut deadline, if options.duration.is_some() => break "duration reached",
            Some(pid) = exit_rx.recv() => {
                // Its fork records (children to wait for) are in the ring before its exit.
                drain(capture.ring().get_mut(), &mut pipeline)?;
                pipeline.processes().gone(pid);
            }
            _ = tick.tick() => {
                let now = host_info::monotonic_ns();
                let losses = capture.losses()?;
                pipeline.record_loss(losses.since(&reported), reported_at, now)?;
                (reported, reported_at) = (losses, now);
                pipeline.tick(now)?;
                events.store(pipeline.stats().events, Ordering::Relaxed);
                // A process whose exit record was lost still ends the recording.
                let processes = pipeline.processes();
                let vanished: Vec<u32> =
                    processes.live().filter(|&pid| !target::is_running(pid)).collect();
                for pid in vanished {
                    processes.gone(pid);
                }
            }
        }
        if !open_ended && pipeline.processes().live_count() == 0 {
            break END_TARGET_EXITED;
        }
    };

    // Everything the targets did before we stopped is already in the ring: take it all.
    drain(capture.ring().get_mut(), &mut pipeline)?;
    let end_mono_ns = host_info::monotonic_ns();
    let totals = capture.losses()?;
    pipeline.record_loss(totals.since(&reported), reported_at, end_mono_ns)?;
    let events = pipeline.stats().events;
    let (paths, unwritten) = pipeline.finish(end_reason, end_mono_ns)?;
    Ok(Outcome {
        recording_id,
        paths,
        events,
        lost: totals.total(),
        unwritten,
        end_reason,
        exit_code: None,
    })
}

/// Hands every record waiting in the ring to the pipeline; returns how many there were.
fn drain(ring: &mut RingBuf<MapData>, pipeline: &mut Pipeline) -> Result<usize, WriteError> {
    let mut drained = 0;
    while let Some(item) = ring.next() {
        pipeline.handle(&item)?;
        drained += 1;
    }
    Ok(drained)
}

fn header(
    options: &Options,
    redactor: &Redactor,
    recording_id: &str,
    spawned: Option<&Spawned>,
) -> Header {
    let mut pids = options.pids.clone();
    pids.extend(spawned.map(|child| child.pid));
    Header {
        recording_id: recording_id.to_owned(),
        segment_seq: 0,
        host: host_info::hostname(),
        kernel: host_info::kernel(),
        boot_id: host_info::boot_id(),
        recorder_version: env!("CARGO_PKG_VERSION").to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        target: Some(Target {
            pids,
            command: redact_command(&options.redaction, &options.command),
            follow: options.follow,
            cgroup: options.cgroup.clone().unwrap_or_default(),
            comm: options.comm.clone().unwrap_or_default(),
            requested_by: describe_requester(&options.requested_by),
        }),
        limits: Some(CaptureLimits {
            max_payload_bytes: options.limits.max_payload_bytes,
            ring_bytes: options.limits.ring_bytes,
        }),
        redaction: Some(redactor.header_policy()),
        clock: Some(host_info::clock_base()),
    }
}

/// `alice (uid 1000) via sudo`, `bob (uid 1001) via the control socket`: who asked, from
/// the audit log's `by` object (`uid`, `user`, `sudo_user`, `via`).
pub fn describe_requester(by: &serde_json::Value) -> String {
    let uid = by["uid"].as_u64();
    let mut text = match (by["sudo_user"].as_str(), by["user"].as_str(), uid) {
        (Some(sudo_user), _, _) => format!("{sudo_user} via sudo"),
        (None, Some(user), Some(uid)) => format!("{user} (uid {uid})"),
        (None, None, Some(uid)) => format!("uid {uid}"),
        _ => return String::new(),
    };
    if let Some(via) = by["via"].as_str() {
        text.push_str(" via the ");
        text.push_str(via);
    }
    text
}

fn describe(options: &Options, watched: &[(u32, OwnedFd)]) -> String {
    let pids: Vec<String> = watched.iter().map(|(pid, _)| pid.to_string()).collect();
    let mut what = Vec::new();
    if options.command.is_empty() {
        if !pids.is_empty() {
            what.push(format!("pid {}", pids.join(", ")));
        }
    } else {
        let command = redact_command(&options.redaction, &options.command);
        what.push(format!("`{}` (pid {})", command.join(" "), pids.join(", ")));
    }
    if let Some(cgroup) = &options.cgroup {
        what.push(format!("cgroup {cgroup}"));
    }
    if let Some(comm) = &options.comm {
        what.push(format!("programs named {comm}"));
    }
    let children = if options.follow {
        ""
    } else {
        " (not their children)"
    };
    format!("{}{children}", what.join(" and "))
}
