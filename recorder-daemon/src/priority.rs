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
//! drain's budget their payloads are shed and counted. Once the recording ends, the rest is
//! handled at the normal policy, the workers brought back too; so it is from the first exit
//! of a process the recording watches, after which the loop reads everything queued before
//! it looks at anything else (most often that exit ends the recording).
//!
//! Coming back raises a priority, which the kernel allows with CAP_SYS_NICE: the service
//! keeps it, and a foreground recording in the background keeps it too
//! (`privileges::BACKGROUND`). (An RLIMIT_NICE of 20 would allow it without a capability,
//! but raising that limit needs CAP_SYS_RESOURCE, which root does not always hold: in a
//! container, say.)

use std::{io, os::unix::thread::JoinHandleExt, thread::JoinHandle};

use recorder_config::Priority;

/// Whether the calling thread handles batches in the background.
pub struct Background {
    active: bool,
}

impl Background {
    pub fn new(priority: Priority) -> Self {
        Background {
            active: priority == Priority::Background,
        }
    }

    /// Whether batches still run in the background.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Runs `work` (one batch) at SCHED_IDLE; the thread is at the normal policy again
    /// after it. Threads `work` starts inherit SCHED_IDLE and keep it until
    /// [`end`](Self::end). Where the policy cannot be changed, the recording goes on at
    /// the normal one, and says so.
    pub fn run<T>(&mut self, work: impl FnOnce() -> T) -> T {
        if !self.active {
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

    /// The recording is ending: what is left runs at the normal policy, and `workers`
    /// come back to it too.
    pub fn end<'a, T: 'a>(&mut self, workers: impl IntoIterator<Item = &'a JoinHandle<T>>) {
        if !std::mem::take(&mut self.active) {
            return;
        }
        for worker in workers {
            if let Err(error) = set_policy(worker.as_pthread_t(), libc::SCHED_OTHER) {
                tracing::error!(%error, "a redaction worker could not come back from the background: on a busy host the recording finishes slowly");
            }
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
    /// batch starts stays in the background until the end brings it back. Coming back
    /// needs CAP_SYS_NICE: run as root, as CI does.
    #[test]
    fn batches_in_the_background_and_back() {
        let pipeline = std::thread::spawn(|| {
            let mut background = Background::new(Priority::Background);
            let (go, wait) = mpsc::channel::<()>();
            let (during, worker) = background.run(|| {
                let worker = std::thread::spawn(move || {
                    let inherited = policy();
                    wait.recv().unwrap();
                    (inherited, policy())
                });
                (policy(), worker)
            });
            let between = policy();
            background.end([&worker]);
            go.send(()).unwrap();
            let (inherited, after_end) = worker.join().unwrap();
            let normal = background.run(policy);
            (during, between, inherited, after_end, normal)
        });
        let (during, between, inherited, after_end, normal) = pipeline.join().unwrap();
        assert_eq!(during, libc::SCHED_IDLE, "a batch");
        assert_eq!(
            between,
            libc::SCHED_OTHER,
            "between batches (needs CAP_SYS_NICE)"
        );
        assert_eq!(inherited, libc::SCHED_IDLE, "a worker started by a batch");
        assert_eq!(after_end, libc::SCHED_OTHER, "the worker, after the end");
        assert_eq!(normal, libc::SCHED_OTHER, "a batch after the end");
    }

    #[test]
    fn normal_priority_changes_nothing() {
        let mut background = Background::new(Priority::Normal);
        assert_eq!(background.run(policy), libc::SCHED_OTHER);
    }
}
