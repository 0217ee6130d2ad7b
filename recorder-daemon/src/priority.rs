//! `--priority background`: a recording's pipeline does its work (decoding, redacting and
//! writing each batch of records, and its redaction workers theirs) under SCHED_IDLE, on
//! CPU time nothing else on the host wants, so a busy traced program keeps its speed.
//!
//! Between batches the pipeline's thread is back at the normal policy, so that it answers
//! promptly what ends or steers the recording (a stop, a signal, a target's exit, the
//! deadline, the writer's ticks) however busy the host: a loop at SCHED_IDLE on a
//! saturated host would get about 0.3 % of a CPU, and would not see a stop for seconds.
//! The ring's drain keeps its own policy (real-time where permitted), so records still
//! leave the ring as they come; while the pipeline waits for a CPU they queue, and past the
//! drain's budget their payloads are shed and counted. Where the loop must wait on the
//! redaction workers outside a batch (a tick's expiries and Loss frames, a flush's expiry,
//! the flush at a watched process's exit), they come back for the wait and go back after
//! it. Once the recording ends, the rest is handled at the normal policy, the workers' part
//! too.
//!
//! Coming back raises a priority, which the kernel allows with CAP_SYS_NICE: the service
//! keeps it, and a foreground recording in the background keeps it too
//! (`privileges::BACKGROUND`); without it a recording stays at normal priority and says so
//! ([`possible`]). (An RLIMIT_NICE of 20 would allow it without a capability, but raising
//! that limit needs CAP_SYS_RESOURCE, which root does not always hold: in a container, say.)

use std::{io, os::unix::thread::JoinHandleExt, thread::JoinHandle};

use caps::{CapSet, Capability};
use recorder_config::Priority;

/// The priority a recording can have here: `background` only where the pipeline may come
/// back from SCHED_IDLE (CAP_SYS_NICE in the permitted set, kept after the drop), else
/// `normal`, said once. A pipeline that could not come back would answer stops and write
/// at SCHED_IDLE's pace on a busy host, which is worse than not being in the background.
pub fn possible(asked: Priority) -> Priority {
    if asked == Priority::Background && !may_come_back() {
        tracing::warn!(
            "--priority background needs CAP_SYS_NICE (to come back from SCHED_IDLE between \
             batches), which recorderd does not hold: recording at normal priority"
        );
        return Priority::Normal;
    }
    asked
}

/// Whether CAP_SYS_NICE is in the permitted set (the one-shot drop keeps it for a
/// background recording; the service keeps it always).
pub fn may_come_back() -> bool {
    caps::has_cap(None, CapSet::Permitted, Capability::CAP_SYS_NICE).unwrap_or(false)
}

/// Whether the calling thread handles batches in the background, and whether the workers
/// are there now.
pub struct Background {
    active: bool,
    paused: bool,
}

impl Background {
    /// `priority` as [`possible`] gave it.
    pub fn new(priority: Priority) -> Self {
        Background {
            active: priority == Priority::Background,
            paused: false,
        }
    }

    /// Whether batches run in the background now.
    pub fn is_active(&self) -> bool {
        self.active && !self.paused
    }

    /// Runs `work` (one batch) at SCHED_IDLE; the thread is at the normal policy again
    /// after it. Threads `work` starts inherit SCHED_IDLE. Where the policy cannot be
    /// changed, the recording goes on at the normal one, and says so.
    pub fn run<T>(&mut self, work: impl FnOnce() -> T) -> T {
        if !self.is_active() {
            return work();
        }
        if let Err(error) = set_own_policy(libc::SCHED_IDLE) {
            tracing::warn!(%error, "could not move the pipeline to the background; it runs at normal priority");
            self.active = false;
            return work();
        }
        let result = work();
        if let Err(error) = set_own_policy(libc::SCHED_OTHER) {
            tracing::error!(%error, "the pipeline could not come back from the background: on a busy host it answers stops and writes slowly");
            self.active = false;
        }
        result
    }

    /// Before the loop waits on `workers` outside a batch (a tick, a flush): they come back
    /// to the normal policy, so that the wait is not as long as a busy host makes SCHED_IDLE.
    pub fn pause(&mut self, workers: &[JoinHandle<()>]) {
        if self.is_active() {
            self.paused = true;
            set_workers(workers, libc::SCHED_OTHER);
        }
    }

    /// After [`pause`](Self::pause): the workers (those started meanwhile too) go back to
    /// the background.
    pub fn resume(&mut self, workers: &[JoinHandle<()>]) {
        if self.active && std::mem::take(&mut self.paused) {
            set_workers(workers, libc::SCHED_IDLE);
        }
    }

    /// The recording is ending: what is left runs at the normal policy, the workers too.
    pub fn end(&mut self, workers: &[JoinHandle<()>]) {
        self.pause(workers);
        self.active = false;
    }
}

fn set_workers(workers: &[JoinHandle<()>], policy: libc::c_int) {
    for worker in workers {
        if let Err(error) = set_policy(worker.as_pthread_t(), policy) {
            tracing::error!(%error, "could not change a redaction worker's scheduling policy");
        }
    }
}

fn set_own_policy(policy: libc::c_int) -> io::Result<()> {
    // SAFETY: pthread_self has no preconditions.
    set_policy(unsafe { libc::pthread_self() }, policy)
}

fn set_policy(thread: libc::pthread_t, policy: libc::c_int) -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `thread` is this process's and has not been joined (the callers are it or
    // hold its handle); pthread_setschedparam returns an error number, not errno.
    match unsafe { libc::pthread_setschedparam(thread, policy, &param) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// The calling thread's policy (a `libc::SCHED_*`).
    fn policy() -> libc::c_int {
        // SAFETY: 0 is the calling thread.
        unsafe { libc::sched_getscheduler(0) }
    }

    /// A batch runs in the background and the thread comes back after it; a worker the
    /// batch starts stays in the background, comes back for a pause, goes back after it,
    /// and comes back at the end. Coming back needs CAP_SYS_NICE: run as root, as CI does.
    #[test]
    fn batches_in_the_background_and_back() {
        assert!(may_come_back(), "needs CAP_SYS_NICE: run as root");
        let pipeline = std::thread::spawn(|| {
            let mut background = Background::new(Priority::Background);
            let (report, reports) = mpsc::channel();
            let (ask, asked) = mpsc::channel::<bool>();
            let (during, worker) = background.run(|| {
                let worker = std::thread::spawn(move || {
                    report.send(policy()).unwrap();
                    while asked.recv().unwrap() {
                        report.send(policy()).unwrap();
                    }
                });
                (policy(), worker)
            });
            let between = policy();
            let worker_policy =
                |background: &mut Background, step: fn(&mut Background, &[JoinHandle<()>])| {
                    step(background, std::slice::from_ref(&worker));
                    ask.send(true).unwrap();
                    reports.recv().unwrap()
                };
            let inherited = reports.recv().unwrap();
            let paused = worker_policy(&mut background, Background::pause);
            let resumed = worker_policy(&mut background, Background::resume);
            let ended = worker_policy(&mut background, Background::end);
            ask.send(false).unwrap();
            worker.join().unwrap();
            let after_end = background.run(policy);
            [
                during, between, inherited, paused, resumed, ended, after_end,
            ]
        });
        let [during, between, inherited, paused, resumed, ended, after_end] =
            pipeline.join().unwrap();
        assert_eq!(during, libc::SCHED_IDLE, "a batch");
        assert_eq!(between, libc::SCHED_OTHER, "between batches");
        assert_eq!(inherited, libc::SCHED_IDLE, "a worker started by a batch");
        assert_eq!(paused, libc::SCHED_OTHER, "the worker, paused");
        assert_eq!(resumed, libc::SCHED_IDLE, "the worker, resumed");
        assert_eq!(ended, libc::SCHED_OTHER, "the worker, after the end");
        assert_eq!(after_end, libc::SCHED_OTHER, "a batch after the end");
    }

    #[test]
    fn normal_priority_changes_nothing() {
        let mut background = Background::new(Priority::Normal);
        assert_eq!(background.run(policy), libc::SCHED_OTHER);
        assert!(!background.is_active());
    }
}
