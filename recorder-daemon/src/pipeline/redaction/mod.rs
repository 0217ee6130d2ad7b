//! Redaction before anything is serialized. Every payload goes through the stream redactor of
//! its (process, fd, direction) stream, so a secret split across syscalls is still found; the
//! frames wait here, in order, until the redactor has decided every byte before them. Exec
//! arguments are redacted as whole buffers. Nothing leaves this stage unredacted.

use std::{collections::VecDeque, sync::Arc};

use recorder_proto::v1::{
    frame::Body, payload::Direction, process::Kind as ProcessKind, resource::Kind, Event, Payload,
    Redaction, RedactionPolicy,
};
use recorder_redact::{Boundary, CaptureMode, Policy, StreamRedactor, Ticket};
use recorder_syscalls::Effect;
use rustc_hash::FxHashMap;

use super::{effect_of, spare::Spare};

/// Exec arguments and the command line, redacted as whole buffers.
mod argv;

pub use argv::{redact_argv, redact_command};

/// Rule name for payloads withheld because the boundary is captured as metadata only.
const METADATA_ONLY: &str = "capture-metadata";
/// Rule name for bytes withheld because no decision could be made for them.
const FAIL_CLOSED: &str = "fail-closed";
/// One direction of one descriptor of one process: (pid, fd, outgoing).
type Endpoint = (u32, i64, bool);

/// A stream: one endpoint in one of its lives. A closed fd, or an exited process, ends the
/// stream; a reused fd number or pid gets a new id, never the old stream.
type StreamId = u64;

/// A frame waiting for the redactor's decision on its payload (or on an earlier frame's).
struct Held {
    body: Body,
    ticket: Option<(StreamId, Ticket)>,
    /// Streams that ended with this frame (a close, a process exit): dropped once it leaves.
    retire: Vec<StreamId>,
}

pub struct Redactor {
    policy: Arc<Policy>,
    streams: FxHashMap<StreamId, StreamRedactor>,
    /// The live stream of each endpoint.
    current: FxHashMap<Endpoint, StreamId>,
    next_id: StreamId,
    queue: VecDeque<Held>,
    /// The redactions of the piece being taken (scratch).
    taken: Vec<recorder_redact::Redaction>,
}

impl Redactor {
    pub fn new(policy: Arc<Policy>) -> Self {
        Redactor {
            policy,
            streams: FxHashMap::default(),
            current: FxHashMap::default(),
            next_id: 0,
            queue: VecDeque::new(),
            taken: Vec::new(),
        }
    }

    /// Takes a frame; it comes out of [`Redactor::release`] once it is decided.
    pub fn push(&mut self, mut body: Body, now_ns: u64) {
        let (ticket, retire) = match &mut body {
            Body::Event(event) => {
                if self.policy.enabled() && !event.argv.is_empty() {
                    redact_argv(&self.policy, event);
                }
                let ticket = self.admit(event, now_ns);
                let closed = effect_of(event) == Effect::Closes && event.ret == 0;
                let retire = match closed {
                    true => self.end_fd(event.pid, event.fd),
                    false => Vec::new(),
                };
                (ticket, retire)
            }
            Body::Process(process) if process.kind() == ProcessKind::Exit => {
                (None, self.end_process(process.pid))
            }
            _ => (None, Vec::new()),
        };
        self.queue.push_back(Held {
            body,
            ticket,
            retire,
        });
    }

    /// Hands every decided frame, in order, to `write`; stops at the first undecided one.
    /// The redactions' rule names are built in strings kept in `spare`, which `write` gets
    /// back to keep what it has written.
    pub fn release<E>(
        &mut self,
        spare: &mut Spare,
        mut write: impl FnMut(Body, &mut Spare) -> Result<(), E>,
    ) -> Result<(), E> {
        while let Some(held) = self.queue.front_mut() {
            if let (Some((id, ticket)), Body::Event(event)) = (held.ticket, &mut held.body) {
                let payload = event
                    .payload
                    .as_mut()
                    .expect("a ticket comes with a payload");
                // The masked bytes replace the payload's own, in its buffer.
                let taken = &mut self.taken;
                let stream = self.streams.get_mut(&id);
                match stream.map(|stream| stream.take_into(ticket, &mut payload.data, taken)) {
                    Some(false) => return Ok(()),
                    Some(true) => {
                        // Into the payload's own list, which keeps its capacity (spare.rs).
                        payload.redactions.clear();
                        payload.redactions.extend(taken.iter().map(|r| Redaction {
                            rule: spare.rule_name(&r.rule),
                            offset: r.offset,
                            length: r.length,
                            field: String::new(),
                        }));
                    }
                    // Cannot happen (a stream leaves only after its last frame), but if it
                    // did: the bytes are withheld, never written undecided.
                    None => withhold(payload, FAIL_CLOSED),
                }
            }
            let held = self.queue.pop_front().expect("the front frame");
            for id in held.retire {
                self.streams.remove(&id);
            }
            write(held.body, spare)?;
        }
        Ok(())
    }

    /// The time bound: decides, fail-closed, bytes held longer than the hold-back time.
    pub fn expire(&mut self, now_ns: u64) {
        for stream in self.streams.values_mut() {
            stream.expire(now_ns);
        }
    }

    /// The recording ends: decides everything still held, fail-closed.
    pub fn finish(&mut self) {
        for stream in self.streams.values_mut() {
            stream.finish();
        }
    }

    /// What the recording Header says about the policy.
    pub fn header_policy(&self) -> RedactionPolicy {
        policy_summary(&self.policy)
    }
}

impl Redactor {
    /// Redacts what the capture policy says to, and feeds the payload to its stream.
    fn admit(&mut self, event: &mut Event, now_ns: u64) -> Option<(StreamId, Ticket)> {
        let payload = event.payload.as_mut()?;
        let missing = payload.length.saturating_sub(payload.data.len() as u64);
        if !self.policy.enabled() || payload.data.is_empty() && missing == 0 {
            return None;
        }
        let resource = event.resource.as_ref();
        let socket = resource.is_some_and(|r| r.kind() == Kind::Socket);
        let boundary = if socket {
            Boundary::Network
        } else {
            Boundary::File
        };
        if self.policy.capture_mode(boundary) == CaptureMode::Metadata {
            withhold(payload, METADATA_ONLY);
            return None;
        }
        let file = resource.filter(|r| r.kind() == Kind::File);
        if let Some(rule) = file.and_then(|r| self.policy.never_capture(&r.name)) {
            withhold(payload, rule);
            return None;
        }
        let endpoint = (event.pid, event.fd, payload.direction() == Direction::Out);
        let next_id = &mut self.next_id;
        let id = *self.current.entry(endpoint).or_insert_with(|| {
            *next_id += 1;
            *next_id
        });
        let policy = &self.policy;
        let stream = self
            .streams
            .entry(id)
            .or_insert_with(|| StreamRedactor::new(policy.clone()));
        // A payload lost whole (shed under load, or unreadable) still leaves a hole in its
        // stream: what was held before it is decided now, rather than waiting behind it
        // with every frame after it, and what follows is not joined across the hole.
        let ticket = (!payload.data.is_empty()).then(|| stream.push(&payload.data, now_ns));
        if payload.truncated || payload.incomplete {
            // Bytes of the stream are missing after this piece: what follows cannot be
            // joined to it, so the stream decides fail-closed.
            stream.gap(missing.max(1), now_ns);
        }
        ticket.map(|ticket| (id, ticket))
    }

    /// The fd was closed: its streams are complete. Returns them, to drop once the close
    /// is written.
    fn end_fd(&mut self, pid: u32, fd: i64) -> Vec<StreamId> {
        let ended = [true, false].map(|out| self.current.remove(&(pid, fd, out)));
        ended
            .into_iter()
            .flatten()
            .map(|id| self.close(id))
            .collect()
    }

    /// The process exited: every stream of it is complete.
    fn end_process(&mut self, pid: u32) -> Vec<StreamId> {
        let mut ended = Vec::new();
        self.current.retain(|&(owner, _, _), &mut id| {
            if owner == pid {
                ended.push(id);
            }
            owner != pid
        });
        ended.into_iter().map(|id| self.close(id)).collect()
    }

    fn close(&mut self, id: StreamId) -> StreamId {
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.close();
        }
        id
    }
}

/// Drops a payload's bytes, keeping its length, with the rule that withheld them.
fn withhold(payload: &mut Payload, rule: &str) {
    let withheld = payload.data.len() as u32;
    payload.data.clear();
    payload.redactions = vec![redaction(rule, 0, withheld, String::new())];
}

fn redaction(rule: &str, offset: u32, length: u32, field: String) -> Redaction {
    Redaction {
        rule: rule.to_owned(),
        offset,
        length,
        field,
    }
}

fn policy_summary(policy: &Policy) -> RedactionPolicy {
    let summary = policy.summary();
    let hold_back = policy.hold_back();
    let on: Vec<String> = summary.detectors;
    let off = recorder_redact::detector_names()
        .into_iter()
        .filter(|name| !on.iter().any(|d| d == name))
        .map(str::to_owned)
        .collect();
    RedactionPolicy {
        enabled: summary.enabled,
        rules: summary.rules,
        pii: summary.pii,
        detectors: on,
        detectors_off: off,
        hold_back_bytes: hold_back.bytes,
        hold_back_ms: hold_back.nanos / 1_000_000,
    }
}

#[cfg(test)]
mod tests;
