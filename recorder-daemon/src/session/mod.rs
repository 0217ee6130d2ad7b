//! One recording session, start to finish: check the targets, load the probes, write the
//! segment, and stop on a signal, at the deadline, or when every target has exited — always
//! finishing the segment with a trailer. The foreground mode (`run`) and the service (one
//! thread per recording) both go through [`record`].

/// The segment Header and the words for what is recorded.
pub mod header;
/// The ring's consumer thread: batches out of the ring, with a budget for the backlog.
pub mod drain;
/// The running recording's loop over the drain's batches, signals and ticks.
pub mod event_loop;

use std::{
    os::fd::OwnedFd,
    path::PathBuf,
    sync::{atomic::AtomicU64, Arc},
};

use recorder_capture::{
    preflight,
    target::{self, Spawned, TargetError},
    Capture, CaptureError, Scope,
};
use recorder_config::Priority;
use recorder_store::{
    audit::{self, AuditError, AuditLog},
    clock, DirError, OutputDir, RecordingWriter, WriteError,
};
use thiserror::Error;
use tokio::{
    signal::unix::{signal, SignalKind},
    sync::oneshot,
};

use crate::{
    options::Options,
    pipeline::{
        fdtable::FdTable, processes::Processes, redaction::Redactor, stacks::Stacks, Pipeline,
    },
    priority, privileges,
};

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
    /// Sockets recorded as TLS ciphertext only, and why, per process.
    pub not_decrypted: (usize, Vec<String>),
    pub end_reason: &'static str,
    /// Exit code of the spawned command (128 + signal if killed).
    pub exit_code: Option<i32>,
    /// Heap allocations from the first batch to the trailer (`count-allocations` builds).
    pub allocations: Option<u64>,
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
    preflight::check_privileges().map_err(CaptureError::from)?;
    let dir = OutputDir::open_or_create_with(&options.output, &options.access)?;
    Ok((scope, dir))
}

/// Records in the foreground (`sudo recorderd --pid N`) until the targets exit, a signal
/// (SIGINT, SIGTERM) or `--duration`.
pub fn run(options: Options) -> Result<Outcome, SessionError> {
    let (scope, dir) = prepare(&options)?;
    let compat = compat_notices(&options);
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
        let mut keep = privileges::needed(
            privileges::ONE_SHOT_AFTER_ATTACH,
            options.access.group.is_some(),
        );
        if options.priority == Priority::Background && priority::may_come_back() {
            keep.extend(privileges::BACKGROUND);
        }
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
                for notice in &compat {
                    eprintln!("recorderd: {notice}");
                }
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
                child.terminate();
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

/// One line for each target that runs a 32-bit program, whose syscalls the probes count
/// rather than record. A command is not named: its arguments may be sealed.
pub fn compat_notices(options: &Options) -> Vec<String> {
    const WHY: &str = "recorderd reads the 64-bit syscall ABI only, so its syscalls are \
                       counted (compat_syscalls), not recorded";
    let pids = options
        .pids
        .iter()
        .filter(|pid| target::is_32_bit_program(std::path::Path::new(&format!("/proc/{pid}/exe"))));
    let mut notices: Vec<String> = pids
        .map(|pid| format!("pid {pid} runs a 32-bit program: {WHY}"))
        .collect();
    let command = options
        .command
        .first()
        .and_then(|p| target::find_program(p));
    if command.is_some_and(|path| target::is_32_bit_program(&path)) {
        notices.push(format!("the command is a 32-bit program: {WHY}"));
    }
    notices
}

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
    // What the recording can have, which its Header says (priority.rs).
    let options = &Options {
        priority: priority::possible(options.priority),
        ..options.clone()
    };
    let Control {
        stop,
        started,
        events,
    } = control;
    let Attached {
        capture,
        fds,
        watched,
    } = attach(options, scope, spawned.as_deref())?;
    let attached_at_ns = clock::monotonic_ns();
    let redactor = Redactor::new(options.redaction.clone(), options.threads);
    let header = header::header(options, &redactor, spawned.as_deref(), &capture);
    let pids: Vec<u32> = watched.iter().map(|(pid, _)| *pid).collect();
    let description = header::describe(options, &pids);
    audit.append_by(
        "recording.start",
        options.requested_by.clone(),
        serde_json::json!({ "id": options.recording_id, "target": description }),
    )?;
    *audited_start = true;
    let writer = RecordingWriter::create(dir, header, options.segments, options.seal.clone())?;
    let path = writer.paths()[0].clone();
    let mut pipeline = Pipeline::new(
        options.limits.max_payload_bytes,
        fds,
        Processes::new(pids),
        redactor,
        writer,
    );
    if options.limits.stack_depth > 0 {
        pipeline = pipeline.with_stacks(Stacks::new(options.debug_dirs.clone()));
    }
    let mut capture = capture;
    let ring = capture.take_ring().ok_or_else(|| {
        SessionError::Runtime(std::io::Error::other("the ring buffer was already taken"))
    })?;
    // Real-time for the drain thread must be asked for while capabilities are still held,
    // and `started` drops them (see drain::realtime_for_drain); Drain::start puts this
    // thread back to normal.
    let realtime = drain::realtime_for_drain();
    started(&Started {
        recording_id: options.recording_id.clone(),
        path,
        description,
        syscalls: capture.attached().len(),
    });
    // Draining before the spawned command runs: its first burst must find a consumer.
    let drain = drain::Drain::start(ring, realtime).map_err(SessionError::Runtime)?;
    if let Some(child) = spawned {
        child.release()?;
    }
    let running = event_loop::Running {
        capture,
        drain,
        watched,
        pipeline,
        attached_at_ns,
        open_ended: scope.cgroup.is_some() || scope.comm.is_some(),
    };
    event_loop::run(options, running, stop, events).await
}

/// The probes, pointed at every process to record.
struct Attached {
    capture: Capture,
    /// Each targeted process's descriptors as /proc showed them at attach.
    fds: FdTable,
    /// A pidfd per targeted process, readable once it exits.
    watched: Vec<(u32, OwnedFd)>,
}

/// Loads the probes and points them at every process to record, each watched for its exit
/// first and its descriptors read from /proc.
fn attach(
    options: &Options,
    scope: &Scope,
    spawned: Option<&Spawned>,
) -> Result<Attached, SessionError> {
    let loading = std::time::Instant::now();
    let mut capture = Capture::load(options.limits, scope)?;
    tracing::info!(
        ms = loading.elapsed().as_millis() as u64,
        hook = ?capture.syscall_hook(),
        "Probes loaded and attached."
    );
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
        capture.probe_tls_of(pid)?;
        fds.seed(pid);
    }
    if let Some(child) = spawned {
        watched.push((child.pid, target::watch(child.pid)?));
        target::wait_until_parked(child.pid);
        capture.add_target(child.pid)?;
        // The command inherits our stdin/stdout/stderr; name them in its events.
        fds.seed(child.pid);
    }
    Ok(Attached {
        capture,
        fds,
        watched,
    })
}
