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

use super::effect_of;

/// Rule name for payloads withheld because the boundary is captured as metadata only.
const METADATA_ONLY: &str = "capture-metadata";
/// Rule name for bytes withheld because no decision could be made for them.
const FAIL_CLOSED: &str = "fail-closed";
/// Rule name for the argument after a flag that names a secret (`--password VALUE`).
const SECRET_FLAG_VALUE: &str = "secret-flag-value";
/// Words that make a command-line flag's next argument a secret.
const SECRET_FLAG_WORDS: [&str; 7] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "credential",
    "privatekey",
];

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
}

impl Redactor {
    pub fn new(policy: Arc<Policy>) -> Self {
        Redactor {
            policy,
            streams: FxHashMap::default(),
            current: FxHashMap::default(),
            next_id: 0,
            queue: VecDeque::new(),
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
    pub fn release<E>(&mut self, mut write: impl FnMut(Body) -> Result<(), E>) -> Result<(), E> {
        while let Some(held) = self.queue.front_mut() {
            if let (Some((id, ticket)), Body::Event(event)) = (held.ticket, &mut held.body) {
                let payload = event
                    .payload
                    .as_mut()
                    .expect("a ticket comes with a payload");
                // The masked bytes replace the payload's own, in its buffer.
                let stream = self.streams.get_mut(&id);
                match stream.map(|stream| stream.take_into(ticket, &mut payload.data)) {
                    Some(None) => return Ok(()),
                    Some(Some(redactions)) => {
                        // Into the payload's own list, which keeps its capacity (spare.rs).
                        payload.redactions.clear();
                        payload.redactions.extend(
                            redactions
                                .into_iter()
                                .map(|r| redaction(&r.rule, r.offset, r.length, String::new())),
                        );
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
            write(held.body)?;
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

/// Redacts an exec's arguments in place: each as a buffer, and the one after a flag that
/// names a secret (`--password VALUE`, `-token VALUE`) whole.
pub fn redact_argv(policy: &Policy, event: &mut Event) {
    let mut redactions = Vec::new();
    let masked = redact_args(policy, &event.argv, &mut redactions);
    event.argv = masked;
    event.redactions.extend(redactions);
}

/// The command line, redacted, for the Header and the start message.
pub fn redact_command(policy: &Policy, argv: &[String]) -> Vec<String> {
    if !policy.enabled() {
        return argv.to_vec();
    }
    redact_args(policy, argv, &mut Vec::new())
}

fn redact_args(policy: &Policy, argv: &[String], redactions: &mut Vec<Redaction>) -> Vec<String> {
    let mut secret_next = false;
    argv.iter()
        .enumerate()
        .map(|(i, arg)| {
            let field = format!("argv[{i}]");
            let masked = if secret_next {
                redactions.push(redaction(SECRET_FLAG_VALUE, 0, arg.len() as u32, field));
                "*".repeat(arg.len())
            } else {
                let redacted = policy.redact_buffer(arg.as_bytes());
                for r in &redacted.redactions {
                    redactions.push(redaction(&r.rule, r.offset, r.length, field.clone()));
                }
                String::from_utf8_lossy(&redacted.bytes).into_owned()
            };
            secret_next = names_a_secret(arg);
            masked
        })
        .collect()
}

/// `--password`, `-p`-less spellings like `--db-password`, `--api_token`: a flag (no `=`)
/// whose name holds a secret word, whatever its case or separators.
fn names_a_secret(arg: &str) -> bool {
    let Some(name) = arg.strip_prefix('-') else {
        return false;
    };
    if name.contains('=') {
        return false;
    }
    let normalized: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_FLAG_WORDS
        .iter()
        .any(|word| normalized.contains(word))
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
mod tests {
    use recorder_proto::v1::Resource;

    use super::*;

    fn policy() -> Arc<Policy> {
        Arc::new(Policy::new(&recorder_redact::Config::default()).unwrap())
    }

    fn write(pid: u32, fd: i64, data: &[u8]) -> Body {
        Body::Event(Event {
            pid,
            fd,
            syscall: "write".to_owned(),
            syscall_nr: recorder_syscalls::by_name("write").unwrap().nr as u32,
            ret: data.len() as i64,
            resource: Some(Resource {
                kind: Kind::Socket.into(),
                ..Resource::default()
            }),
            payload: Some(Payload {
                direction: Direction::Out.into(),
                data: data.to_vec(),
                length: data.len() as u64,
                ..Payload::default()
            }),
            ..Event::default()
        })
    }

    fn released(redactor: &mut Redactor) -> Vec<Body> {
        let mut out = Vec::new();
        redactor
            .release(|body| {
                out.push(body);
                Ok::<_, ()>(())
            })
            .unwrap();
        out
    }

    fn payloads(bodies: &[Body]) -> Vec<u8> {
        bodies
            .iter()
            .filter_map(|b| match b {
                Body::Event(e) => e.payload.as_ref().map(|p| p.data.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn a_header_split_one_byte_per_write_is_masked_and_order_is_kept() {
        let mut redactor = Redactor::new(policy());
        let request = b"GET / HTTP/1.1\r\nAuthorization: Bearer abcdefghijklmnop\r\n\r\n";
        let mut out = Vec::new();
        for (i, byte) in request.iter().enumerate() {
            redactor.push(write(7, 3, &[*byte]), i as u64);
            out.extend(released(&mut redactor));
        }
        redactor.finish();
        out.extend(released(&mut redactor));
        assert_eq!(out.len(), request.len(), "every write comes out, in order");
        let data = payloads(&out);
        assert_eq!(data.len(), request.len());
        let text = String::from_utf8(data).unwrap();
        assert!(!text.contains("abcdefghijklmnop"), "{text}");
        assert!(
            text.starts_with("GET / HTTP/1.1\r\nAuthorization: "),
            "{text}"
        );
    }

    #[test]
    fn frames_behind_a_held_payload_wait_for_it() {
        let mut redactor = Redactor::new(policy());
        redactor.push(write(7, 3, b"password=hun"), 0);
        redactor.push(write(8, 4, b"unrelated\n"), 1);
        let early = released(&mut redactor);
        redactor.push(write(7, 3, b"ter2&x=1\n"), 2);
        redactor.finish();
        let mut all = early;
        all.extend(released(&mut redactor));
        let text = String::from_utf8(payloads(&all)).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("hun"), "{text}");
        assert!(text.contains("unrelated"), "{text}");
        let pids: Vec<u32> = all
            .iter()
            .filter_map(|b| match b {
                Body::Event(e) => Some(e.pid),
                _ => None,
            })
            .collect();
        assert_eq!(pids, [7, 8, 7], "recording order is kept");
    }

    /// A write whose payload was shed whole: its length is known, its bytes are not.
    fn shed_write(pid: u32, fd: i64, length: u64) -> Body {
        let mut body = write(pid, fd, b"");
        if let Body::Event(event) = &mut body {
            event.ret = length as i64;
            let payload = event.payload.as_mut().unwrap();
            (payload.length, payload.lost_bytes) = (length, length);
            (payload.incomplete, payload.shed) = (true, true);
        }
        body
    }

    #[test]
    fn a_payload_shed_whole_decides_what_its_stream_held() {
        let mut redactor = Redactor::new(policy());
        redactor.push(write(7, 3, b"password=hun"), 0);
        redactor.push(write(8, 4, b"unrelated\n"), 1);
        assert!(
            released(&mut redactor).is_empty(),
            "held behind the open value"
        );
        // The rest of the value was shed: nothing more of this stream can be joined to
        // what is held, so it is decided (fail-closed) and everything behind it goes out.
        redactor.push(shed_write(7, 3, 64), 2);
        let out = released(&mut redactor);
        assert_eq!(
            out.len(),
            3,
            "the held write, the other stream's and the shed one"
        );
        let text = String::from_utf8(payloads(&out)).unwrap();
        assert!(!text.contains("hun"), "{text}");
        assert!(text.contains("unrelated"), "{text}");
        // What follows the hole may be the rest of a secret: its first token is masked.
        redactor.push(write(7, 3, b"ter2 and more\n"), 3);
        let text = String::from_utf8(payloads(&released(&mut redactor))).unwrap();
        assert!(text.starts_with("****"), "{text}");
        assert!(text.ends_with("and more\n"), "{text}");
    }

    #[test]
    fn a_reused_pid_and_fd_start_a_new_stream() {
        use recorder_proto::v1::Process;
        let mut redactor = Redactor::new(policy());
        redactor.push(write(7, 3, b"password=hun"), 0);
        let exit = Process {
            pid: 7,
            kind: ProcessKind::Exit.into(),
            ..Process::default()
        };
        redactor.push(Body::Process(exit), 1);
        // A new process got pid 7 while the old one's frames were still held.
        redactor.push(write(7, 3, b"ter2 is not a secret here\n"), 2);
        redactor.finish();
        let out = released(&mut redactor);
        assert_eq!(out.len(), 3);
        let text = String::from_utf8(payloads(&out)).unwrap();
        assert!(!text.contains("hun"), "{text}");
        assert!(text.contains("ter2 is not a secret here"), "{text}");
    }

    #[test]
    fn argv_secrets_and_flag_values_are_masked() {
        let mut event = Event {
            argv: [
                "psql",
                "--password",
                "s3cret-value",
                "postgres://u:hunter2@db/app",
            ]
            .map(str::to_owned)
            .to_vec(),
            ..Event::default()
        };
        redact_argv(&policy(), &mut event);
        assert_eq!(event.argv[0], "psql");
        assert_eq!(event.argv[1], "--password");
        assert_eq!(event.argv[2], "************");
        assert!(!event.argv[3].contains("hunter2"), "{}", event.argv[3]);
        assert!(event.redactions.iter().any(|r| r.field == "argv[2]"));
        assert!(event.redactions.iter().any(|r| r.field == "argv[3]"));
    }

    #[test]
    fn never_captured_files_keep_only_their_length() {
        let mut redactor = Redactor::new(policy());
        let Body::Event(mut event) = write(7, 5, b"root:$6$salt$hash:19000::::::\n") else {
            unreachable!()
        };
        event.resource = Some(Resource {
            kind: Kind::File.into(),
            name: "/etc/shadow".to_owned(),
            ..Resource::default()
        });
        redactor.push(Body::Event(event), 0);
        let out = released(&mut redactor);
        let Body::Event(event) = &out[0] else {
            panic!("an event")
        };
        let payload = event.payload.as_ref().unwrap();
        assert!(payload.data.is_empty());
        assert_eq!((payload.length, payload.redactions[0].length), (30, 30));
    }
}
