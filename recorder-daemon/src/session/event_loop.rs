//! A running recording's event loop: drains the ring into the pipeline, polls the kernel's
//! loss counters, and ends on a stop request, the deadline, or when every target has exited;
//! then drains what is left and finishes the recording with its trailer.

use std::{
    os::fd::OwnedFd,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use recorder_capture::{target, Capture};
use recorder_proto::v1::Loss;
use recorder_store::{clock, loss, WriteError};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::{mpsc, oneshot},
    time::{interval, sleep},
};

use super::{Outcome, SessionError, END_TARGET_EXITED};
use crate::{options::Options, pipeline::Pipeline};

/// How often losses are polled and the writer's periodic work runs (closing a zstd frame
/// that has been open a second, rotation by age, fsync). Short, so a crash loses at most
/// about a second and a quarter of events.
const TICK: Duration = Duration::from_millis(250);

/// The probes wake the daemon only once a quarter of the ring is full (a wake-up per record
/// costs the traced program more than the copy), so the daemon drains on a timer: every
/// millisecond while records arrive, backing off to every 32 ms while none do.
const DRAIN_MIN: Duration = Duration::from_millis(1);
const DRAIN_MAX: Duration = Duration::from_millis(32);

/// What the loop runs on: the attached probes, the processes whose exits it watches, the
/// pipeline, and when the probes started targeting (the first loss window's start).
pub struct Running {
    pub capture: Capture,
    pub watched: Vec<(u32, OwnedFd)>,
    pub pipeline: Pipeline,
    pub attached_at_ns: u64,
    /// With --cgroup or --comm, processes come and go; only a stop or the deadline ends it.
    pub open_ended: bool,
}

/// Records until `stop`, the deadline or the targets' exit; returns the finished recording.
pub async fn run(
    options: &Options,
    running: Running,
    mut stop: oneshot::Receiver<&'static str>,
    events: Arc<AtomicU64>,
) -> Result<Outcome, SessionError> {
    let Running {
        mut capture,
        watched,
        mut pipeline,
        attached_at_ns,
        open_ended,
    } = running;
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
    let mut reported = Loss::default();
    let mut reported_at = attached_at_ns;

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
                let now = clock::monotonic_ns();
                let losses = capture.losses()?;
                pipeline.record_loss(loss::since(&losses, &reported), reported_at, now)?;
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
    let end_mono_ns = clock::monotonic_ns();
    let totals = capture.losses()?;
    pipeline.record_loss(loss::since(&totals, &reported), reported_at, end_mono_ns)?;
    let events = pipeline.stats().events;
    let (paths, unwritten) = pipeline.finish(end_reason, end_mono_ns)?;
    Ok(Outcome {
        recording_id: options.recording_id.clone(),
        paths,
        events,
        lost: loss::total(&totals),
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
