//! A running recording's event loop: hands the drain's batches to the pipeline, polls the
//! kernel's loss counters, and ends on a stop request, the deadline, or when every target
//! has exited; then takes what is left in the ring and finishes the recording with its
//! trailer.

use std::{
    os::fd::OwnedFd,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use recorder_capture::{target, Capture};
use recorder_proto::v1::Loss;
use recorder_store::{clock, loss, WriteError};
use tokio::{
    io::{unix::AsyncFd, Interest},
    sync::{mpsc, oneshot},
    time::{interval, sleep, MissedTickBehavior},
};

use super::{
    drain::{Batch, Drain, Message},
    Outcome, SessionError, END_TARGET_EXITED,
};
use crate::{options::Options, pipeline::Pipeline, priority::Background};

/// How often losses are polled, redaction's time bound is checked, and the writer's
/// periodic work runs (closing a zstd frame that has been open a second, rotation by age,
/// fsync). Short, so a crash loses at most about a second and a quarter of events.
const TICK: Duration = Duration::from_millis(250);

/// What the loop runs on: the attached probes, the ring's drain, the processes whose exits
/// it watches, the pipeline, and when the probes started targeting (the first loss window's
/// start).
pub struct Running {
    pub capture: Capture,
    pub drain: Drain,
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
        capture,
        mut drain,
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
    let allocations_at_start = allocations_so_far();
    let deadline = sleep(options.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    let mut tick = interval(TICK);
    // A tick missed during a long batch is not made up in a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reported = Loss::default();
    let mut reported_at = attached_at_ns;
    let mut background = Background::new(options.priority);

    let end_reason = loop {
        // What ends or steers the recording first, then the next batch: with a backlog
        // of batches always ready, a fair choice would leave a stop waiting behind some.
        tokio::select! {
            biased;
            reason = &mut stop => break reason.unwrap_or("stopped"),
            _ = &mut deadline, if options.duration.is_some() => break "duration reached",
            Some(pid) = exit_rx.recv() => {
                // Everything queued is handled next, before anything else is looked at,
                // so at the normal policy: a busy host could hold the loop for minutes.
                background.pause(pipeline.redaction_workers());
                // Its fork records (children to wait for) are in the ring before its exit.
                flush(&mut drain, &mut pipeline).await?;
                pipeline.processes().gone(pid);
                background.resume(pipeline.redaction_workers());
            }
            _ = tick.tick() => {
                // Expiries and Loss frames may wait on the workers (a full queue).
                background.pause(pipeline.redaction_workers());
                let now = clock::monotonic_ns();
                let losses = capture.losses()?;
                pipeline.record_loss(loss::since(&losses, &reported), reported_at, now)?;
                (reported, reported_at) = (losses, now);
                pipeline.expire()?;
                pipeline.tick(now)?;
                // Batches say up to when the targets have been seen; while none come (the
                // targets idle), a flush's answer says it, and expires what waits.
                if drain.caught_up() && !drain.flushing() {
                    drain.flush();
                }
                events.store(pipeline.stats().events, Ordering::Relaxed);
                // A process whose exit record was lost still ends the recording.
                let processes = pipeline.processes();
                let vanished: Vec<u32> =
                    processes.live().filter(|&pid| !target::is_running(pid)).collect();
                for pid in vanished {
                    processes.gone(pid);
                }
                background.resume(pipeline.redaction_workers());
            }
            Some(message) = drain.next() => match message {
                Message::Records(batch) => {
                    background.run(|| handle(batch, &mut pipeline, &drain))?;
                    if background.is_active() {
                        // The signal, exit and timer wake-ups are delivered by the runtime
                        // between tasks: let it run them after each background batch.
                        tokio::task::yield_now().await;
                    }
                }
                Message::Flushed { seen_to_ns } => {
                    background.pause(pipeline.redaction_workers());
                    pipeline.seen_to(seen_to_ns);
                    pipeline.expire()?;
                    background.resume(pipeline.redaction_workers());
                }
            },
        }
        if !open_ended && pipeline.processes().live_count() == 0 {
            break END_TARGET_EXITED;
        }
    };

    // What waits is written at the normal policy, however busy the host (priority.rs).
    background.end(pipeline.redaction_workers());
    // Everything the targets did before we stopped is already in the ring: take it all.
    flush(&mut drain, &mut pipeline).await?;
    drop(drain);
    let end_mono_ns = clock::monotonic_ns();
    let totals = capture.losses()?;
    pipeline.record_loss(loss::since(&totals, &reported), reported_at, end_mono_ns)?;
    let events = pipeline.stats().events;
    let not_decrypted = pipeline.not_decrypted();
    let (paths, unwritten) = pipeline.finish(end_reason, end_mono_ns)?;
    Ok(Outcome {
        recording_id: options.recording_id.clone(),
        paths,
        events,
        lost: loss::total(&totals),
        unwritten,
        not_decrypted,
        end_reason,
        exit_code: None,
        allocations: allocations_so_far()
            .zip(allocations_at_start)
            .map(|(end, start)| end - start),
    })
}

/// Heap allocations so far, in a build that counts them.
fn allocations_so_far() -> Option<u64> {
    #[cfg(feature = "count-allocations")]
    return Some(crate::allocations::so_far());
    #[cfg(not(feature = "count-allocations"))]
    None
}

/// Hands a batch's records to the pipeline, then tells the drain they are off its queue.
fn handle(batch: Batch, pipeline: &mut Pipeline, drain: &Drain) -> Result<(), WriteError> {
    for record in batch.records() {
        pipeline.handle(record)?;
    }
    pipeline.seen_to(batch.seen_to_ns());
    drain.handled(batch);
    pipeline.end_batch()
}

/// Asks the drain for everything in the ring now and handles all of it (and what an
/// earlier flush, still unanswered, brings first).
async fn flush(drain: &mut Drain, pipeline: &mut Pipeline) -> Result<(), SessionError> {
    drain.flush();
    while let Some(message) = drain.next().await {
        match message {
            Message::Records(batch) => handle(batch, pipeline, drain)?,
            Message::Flushed { seen_to_ns } => {
                pipeline.seen_to(seen_to_ns);
                if !drain.flushing() {
                    return Ok(());
                }
            }
        }
    }
    Err(SessionError::Runtime(std::io::Error::other(
        "the ring buffer's drain thread ended",
    )))
}
