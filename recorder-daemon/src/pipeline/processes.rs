//! The recorded processes: which are still alive (so a session knows when the last one is
//! gone), how each one ended, and the Process frames made from the probes' fork, exit,
//! fatal-signal and `--comm` records.

use std::collections::{HashMap, HashSet};

use recorder_common::{record::process_op, ProcessRecord};
use recorder_proto::v1::{process::Kind, Event, Process};
use recorder_syscalls::Effect;

use super::effect_of;

/// How a process ended, as far as the recording saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Exited(i32),
    Killed(i32),
}

#[derive(Default)]
struct Fate {
    ending: Option<Ending>,
    /// exit_group was called: the SIGKILLs that end the other threads are not the cause.
    group_exit: bool,
}

#[derive(Default)]
pub struct Processes {
    live: HashSet<u32>,
    fates: HashMap<u32, Fate>,
}

impl Processes {
    pub fn new(initial: impl IntoIterator<Item = u32>) -> Self {
        Processes {
            live: initial.into_iter().collect(),
            fates: HashMap::new(),
        }
    }

    /// Recorded processes not yet seen to exit.
    pub fn live(&self) -> impl Iterator<Item = u32> + '_ {
        self.live.iter().copied()
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// The process is known to be gone (its pidfd fired, or /proc says so), whether or not
    /// its exit record arrived.
    pub fn gone(&mut self, pid: u32) {
        self.live.remove(&pid);
    }

    /// Notes what a syscall says about how its process will end.
    pub fn observe(&mut self, event: &Event) {
        let status = || event.args.first().map_or(0, |&code| code as i32);
        let effect = effect_of(event);
        match effect {
            Effect::ExitsGroup => {
                let fate = self.fates.entry(event.pid).or_default();
                fate.ending = Some(Ending::Exited(status()));
                fate.group_exit = true;
            }
            Effect::ExitsThread => {
                let fate = self.fates.entry(event.pid).or_default();
                if !fate.group_exit {
                    fate.ending = Some(Ending::Exited(status()));
                }
            }
            // The exec outlived the SIGKILLs that ended the process's other threads.
            Effect::Execs if event.ret == 0 => {
                self.fates.remove(&event.pid);
            }
            _ => {}
        }
    }

    /// Applies a process record; returns the frame to write for it, if any.
    pub fn apply(&mut self, record: &ProcessRecord) -> Option<Process> {
        let header = &record.header;
        let frame = Process {
            mono_ns: header.ktime_ns,
            pid: header.tgid,
            tid: header.tid,
            ..Process::default()
        };
        match record.op {
            process_op::FORK if record.value != 0 => Some(Process {
                kind: Kind::Thread.into(),
                child_pid: record.child,
                followed: true,
                ..frame
            }),
            process_op::FORK => {
                let followed = record.flags != 0;
                if followed {
                    self.live.insert(record.child);
                }
                Some(Process {
                    kind: Kind::Fork.into(),
                    child_pid: record.child,
                    followed,
                    ..frame
                })
            }
            process_op::EXIT if record.value == 0 => Some(Process {
                kind: Kind::ThreadExit.into(),
                ..frame
            }),
            process_op::EXIT => {
                self.live.remove(&header.tgid);
                let ending = self.fates.remove(&header.tgid).and_then(|fate| fate.ending);
                Some(Process {
                    kind: Kind::Exit.into(),
                    exit_code: match ending {
                        Some(Ending::Exited(code)) => Some(code),
                        _ => None,
                    },
                    signal: match ending {
                        Some(Ending::Killed(signal)) => Some(signal),
                        _ => None,
                    },
                    ..frame
                })
            }
            process_op::FATAL_SIGNAL => {
                let fate = self.fates.entry(header.tgid).or_default();
                if !fate.group_exit {
                    fate.ending = Some(Ending::Killed(record.child as i32));
                }
                None
            }
            process_op::COMM_MATCH => {
                self.live.insert(header.tgid);
                Some(Process {
                    kind: Kind::Attach.into(),
                    reason: "comm".to_owned(),
                    ..frame
                })
            }
            process_op::COMPAT => Some(Process {
                kind: Kind::Compat.into(),
                ..frame
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use recorder_common::EventHeader;

    use super::*;

    fn record(tgid: u32, op: u32, child: u32, value: u32, flags: u32) -> ProcessRecord {
        ProcessRecord {
            header: EventHeader {
                tgid,
                tid: tgid,
                ..Default::default()
            },
            op,
            child,
            value,
            flags,
        }
    }

    fn exit_group(pid: u32, code: u64) -> Event {
        Event {
            pid,
            syscall: "exit_group".to_owned(),
            syscall_nr: recorder_syscalls::by_name("exit_group").unwrap().nr as u32,
            args: vec![code],
            ..Event::default()
        }
    }

    #[test]
    fn a_followed_child_is_live_until_its_exit() {
        let mut processes = Processes::new([10]);
        let fork = processes
            .apply(&record(10, process_op::FORK, 11, 0, 1))
            .unwrap();
        assert_eq!(
            (fork.kind(), fork.child_pid, fork.followed),
            (Kind::Fork, 11, true)
        );
        processes.observe(&exit_group(10, 3));
        let exit = processes
            .apply(&record(10, process_op::EXIT, 10, 1, 0))
            .unwrap();
        assert_eq!(
            (exit.kind(), exit.exit_code, exit.signal),
            (Kind::Exit, Some(3), None)
        );
        assert_eq!(processes.live().collect::<Vec<_>>(), [11]);
        processes.apply(&record(11, process_op::EXIT, 11, 1, 0));
        assert_eq!(processes.live_count(), 0);
    }

    #[test]
    fn threads_and_unfollowed_children_do_not_keep_the_recording_open() {
        let mut processes = Processes::new([10]);
        let thread = processes
            .apply(&record(10, process_op::FORK, 12, 1, 0))
            .unwrap();
        assert_eq!(thread.kind(), Kind::Thread);
        let fork = processes
            .apply(&record(10, process_op::FORK, 13, 0, 0))
            .unwrap();
        assert!(!fork.followed);
        assert_eq!(processes.live().collect::<Vec<_>>(), [10]);
    }

    #[test]
    fn a_fatal_signal_is_the_cause_unless_exit_group_came_first() {
        let mut processes = Processes::new([10, 20]);
        processes.apply(&record(10, process_op::FATAL_SIGNAL, 9, 0, 0));
        let killed = processes
            .apply(&record(10, process_op::EXIT, 10, 1, 0))
            .unwrap();
        assert_eq!((killed.exit_code, killed.signal), (None, Some(9)));

        processes.observe(&exit_group(20, 0));
        // exit_group ends the other threads with SIGKILL; that is not how the process ended.
        processes.apply(&record(20, process_op::FATAL_SIGNAL, 9, 0, 0));
        let exited = processes
            .apply(&record(20, process_op::EXIT, 20, 1, 0))
            .unwrap();
        assert_eq!((exited.exit_code, exited.signal), (Some(0), None));
    }

    #[test]
    fn a_comm_match_attaches_a_live_process() {
        let mut processes = Processes::default();
        let attach = processes
            .apply(&record(30, process_op::COMM_MATCH, 0, 0, 0))
            .unwrap();
        assert_eq!(
            (attach.kind(), attach.reason.as_str()),
            (Kind::Attach, "comm")
        );
        assert_eq!(processes.live_count(), 1);
    }
}
