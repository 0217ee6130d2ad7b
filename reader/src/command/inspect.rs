//! `recorder inspect TARGET`: the timeline, filtered, with text or hex payload previews.

use std::{collections::HashMap, io::Write, process::ExitCode};

use recorder_proto::v1::{frame::Body, Event, Process};
use recorder_store::{catalog::RecordingSummary, Keyring};
use recorder_symbols::Symbols;
use recorder_syscalls::{boundary_of, Boundary};

use crate::timeline;

use super::CommandError;

/// Which boundary an event belongs to, for `--kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventKind {
    File,
    Net,
    Process,
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub pid: Option<u32>,
    pub fd: Option<i64>,
    pub kind: Option<EventKind>,
    /// Bytes that must appear in the payload.
    pub grep: Option<String>,
}

impl Filter {
    pub fn matches(&self, event: &Event) -> bool {
        self.pid.is_none_or(|pid| event.pid == pid)
            && self.fd.is_none_or(|fd| event.fd == fd)
            && self.kind.is_none_or(|kind| kind_of(event) == kind)
            && self.grep.as_ref().is_none_or(|needle| {
                event
                    .payload
                    .as_ref()
                    .is_some_and(|p| contains(&p.data, needle.as_bytes()))
            })
    }

    /// Process frames have no fd or payload: they match only filters on pid and kind.
    pub fn matches_process(&self, process: &Process) -> bool {
        self.pid
            .is_none_or(|pid| process.pid == pid || process.child_pid == pid)
            && self.fd.is_none()
            && self.kind.is_none_or(|kind| kind == EventKind::Process)
            && self.grep.is_none()
    }
}

fn kind_of(event: &Event) -> EventKind {
    match boundary_of(event) {
        Boundary::File => EventKind::File,
        Boundary::Net => EventKind::Net,
        Boundary::Process => EventKind::Process,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// How much of each event is shown besides its line.
#[derive(Default)]
pub struct Show {
    /// Whole payloads as hex dumps.
    pub hex: bool,
    /// Each event's stack (recorded with `--stacks`).
    pub stacks: bool,
    /// Names frames the recording left unnamed, from the debug files and binaries in this
    /// directory (`--symbols DIR`).
    pub symbols: Option<std::path::PathBuf>,
}

pub fn run(
    recording: &RecordingSummary,
    keyring: &Keyring,
    filter: &Filter,
    show: &Show,
    follow: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    let mut clock = timeline::Clock::default();
    let mut stacks = HashMap::new();
    let mut symbols = show.symbols.as_deref().map(|dir| {
        let mut symbols = Symbols::new(vec![dir.to_path_buf()], dir.to_path_buf());
        symbols.modules().offer_tree(dir);
        symbols
    });
    let hex = show.hex;
    super::walk(recording, keyring, follow, |_, body| {
        match body {
            Body::Header(header) => {
                clock = timeline::Clock::new(header.clock.as_ref());
                writeln!(out, "{}", timeline::header(header))?;
            }
            Body::Event(event) if filter.matches(event) => {
                writeln!(out, "{}", timeline::event(&clock, event))?;
                if let (true, Some(payload)) = (hex, &event.payload) {
                    write!(out, "{}", timeline::hex_dump(&payload.data))?;
                }
                if show.stacks {
                    match stacks.get(&event.stack_id) {
                        Some(stack) => write!(out, "{}", timeline::stack::frames(stack))?,
                        None if event.stack_lost => writeln!(out, "      (stack lost)")?,
                        None => {}
                    }
                }
            }
            Body::Stack(stack) => {
                let mut stack = stack.clone();
                if let Some(symbols) = &mut symbols {
                    for (index, frame) in stack.frames.iter_mut().enumerate() {
                        symbols.name(frame, 0, index > 0);
                    }
                }
                stacks.insert(stack.id, *stack);
            }
            Body::Event(_) => {}
            Body::Loss(loss) => writeln!(out, "{}", timeline::loss(&clock, loss))?,
            Body::Process(process) if filter.matches_process(process) => {
                writeln!(out, "{}", timeline::process(&clock, process))?
            }
            Body::Process(_) => {}
            Body::Trailer(trailer) => writeln!(out, "{}", timeline::trailer(trailer))?,
        }
        if follow {
            out.flush()?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use recorder_proto::v1::{resource::Kind, Payload, Resource};

    use super::*;

    #[test]
    fn filters_by_pid_fd_kind_and_payload() {
        let event = Event {
            pid: 7,
            fd: 4,
            syscall: "write".into(),
            resource: Some(Box::new(Resource {
                kind: Kind::Socket.into(),
                ..Resource::default()
            })),
            payload: Some(Payload {
                data: b"GET /health HTTP/1.1".to_vec(),
                ..Payload::default()
            }),
            ..Event::default()
        };
        assert!(Filter::default().matches(&event));
        assert!(Filter {
            pid: Some(7),
            fd: Some(4),
            kind: Some(EventKind::Net),
            grep: Some("/health".into())
        }
        .matches(&event));
        assert!(!Filter {
            pid: Some(8),
            ..Filter::default()
        }
        .matches(&event));
        assert!(!Filter {
            fd: Some(3),
            ..Filter::default()
        }
        .matches(&event));
        assert!(!Filter {
            kind: Some(EventKind::File),
            ..Filter::default()
        }
        .matches(&event));
        assert!(!Filter {
            grep: Some("POST".into()),
            ..Filter::default()
        }
        .matches(&event));
    }
}
