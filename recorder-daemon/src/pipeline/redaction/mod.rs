//! Redaction before anything is serialized. Every payload goes through the stream redactor of
//! its (process, fd, direction) stream, so a secret split across syscalls is still found; the
//! stream redactors run on worker threads (`stage`, `shard`), and the frames wait here, in
//! recording order, until every byte before them is decided. Exec arguments are redacted as
//! whole buffers, here. Nothing leaves this stage unredacted.

use std::{collections::VecDeque, mem, sync::Arc};

use rustc_hash::FxHashSet;

use recorder_proto::v1::{
    frame::Body, process::Kind as ProcessKind, Payload, Redaction, RedactionPolicy,
};
use recorder_redact::Policy;
use recorder_syscalls::Effect;

use super::{
    effect_of,
    fdtable::{entered_ns, made_fds},
    spare::Spare,
};

/// Exec arguments and the command line, redacted as whole buffers.
mod argv;
/// One shard of the streams: their stream redactors and the payloads they hold.
mod shard;
/// Where the shards run: worker threads, or the pipeline's own thread.
mod stage;
/// Which stream each endpoint's payloads go to, and what the capture policy keeps of them.
mod streams;

pub use argv::{redact_argv, redact_command};

use self::{
    shard::{Piece, Request, StreamId},
    stage::Stage,
    streams::{Admitted, Live, Streams},
};

/// Rule name for payloads withheld because the boundary is captured as metadata only.
const METADATA_ONLY: &str = "capture-metadata";
/// Rule name for bytes withheld because no decision could be made for them.
const FAIL_CLOSED: &str = "fail-closed";
/// One direction of one layer of one descriptor of one process: (pid, fd, outgoing, TLS
/// plaintext). A TLS connection's plaintext and its ciphertext (when kept) are two streams.
type Endpoint = (u32, i64, bool, bool);
/// What a waiting frame costs besides its payload bytes, roughly: the event, its resource
/// and its strings. Counted against the memory bound (`hold_back.memory`).
const FRAME_COST: u64 = 256;

/// A frame in the recording's order, waiting for its payload to be decided (or for an
/// earlier frame's).
struct Held {
    body: Body,
    payload: Decision,
    /// Bytes counted for it against the memory bound, until it is written.
    cost: u64,
}

enum Decision {
    /// No payload went to a stream: the frame goes out as it is.
    None,
    /// This many payload bytes are with the shard of `stream`.
    Waiting { len: u32, stream: StreamId },
    /// The payload is back in the frame, masked, with these redactions.
    Masked(Vec<recorder_redact::Redaction>),
}

/// The frames in recording order. Each has a number (`seq`): the front's is `front_seq`,
/// and the rest follow it, so a piece handed back finds its frame by subtraction.
#[derive(Default)]
struct Frames {
    queue: VecDeque<Held>,
    front_seq: u64,
}

impl Frames {
    fn next_seq(&self) -> u64 {
        self.front_seq + self.queue.len() as u64
    }

    /// Puts a decided payload back into its frame.
    fn place(&mut self, piece: Piece) {
        let held = &mut self.queue[(piece.seq - self.front_seq) as usize];
        if let Body::Event(event) = &mut held.body {
            if let Some(payload) = &mut event.payload {
                payload.data = piece.data;
            }
        }
        held.payload = Decision::Masked(piece.redactions);
    }
}

pub struct Redactor {
    policy: Arc<Policy>,
    streams: Streams,
    frames: Frames,
    stage: Stage,
    /// The frames' costs, all together: what the memory bound is compared with.
    queued_bytes: u64,
    /// Stream holds the memory bound decided early, since the recording began.
    holds_forced: u64,
    /// The streams [`Redactor::relieve_memory`] forces, kept between calls.
    forcing: FxHashSet<StreamId>,
}

impl Redactor {
    /// Redacts streams on `threads` worker threads (0: on the caller's thread).
    pub fn new(policy: Arc<Policy>, threads: usize) -> Self {
        Redactor {
            stage: Stage::new(policy.clone(), threads),
            policy,
            streams: Streams::default(),
            frames: Frames::default(),
            queued_bytes: 0,
            holds_forced: 0,
            forcing: FxHashSet::default(),
        }
    }

    /// Takes a frame; it comes out of [`Redactor::release`] once it is decided.
    pub fn push(&mut self, body: Body, now_ns: u64) {
        let effect = match &body {
            Body::Event(event) => effect_of(event),
            _ => Effect::Unchanged,
        };
        if let Body::Event(event) = &body {
            // A new descriptor: what its number referred to before is finished, even when
            // that close's event has not come yet.
            for fd in made_fds(event, effect) {
                self.end_fd(event.pid, fd, u64::MAX);
            }
        }
        let seq = self.frames.next_seq();
        let payload_len = match &body {
            Body::Event(event) => event.payload.as_ref().map_or(0, |p| p.data.len() as u64),
            _ => 0,
        };
        self.frames.queue.push_back(Held {
            body,
            payload: Decision::None,
            cost: 0,
        });
        // Queued first: with `--threads 0` the payload comes back masked at once.
        let held = self.frames.queue.back_mut().expect("the frame just queued");
        match &mut held.body {
            Body::Event(event) => {
                if self.policy.enabled() && !event.argv.is_empty() {
                    redact_argv(&self.policy, event);
                }
                let admitted = self.streams.admit(&self.policy, event);
                let closed = effect == Effect::Closes && event.ret == 0;
                let (pid, fd, entered_ns) = (event.pid, event.fd, entered_ns(event));
                if let Some(admitted) = admitted {
                    if let Some(data) = &admitted.data {
                        held.payload = Decision::Waiting {
                            len: data.len() as u32,
                            stream: admitted.stream,
                        };
                    }
                    self.redact(seq, admitted, now_ns);
                }
                if closed {
                    self.end_fd(pid, fd, entered_ns);
                }
            }
            Body::Process(process) if process.kind() == ProcessKind::Exit => {
                let pid = process.pid;
                self.end_process(pid);
            }
            _ => {}
        }
        // A payload with its shard is there twice: in the stream's window and in the
        // buffer that comes back masked.
        let copies = match self.frames.queue[(seq - self.frames.front_seq) as usize].payload {
            Decision::Waiting { .. } => 2,
            _ => 1,
        };
        let cost = FRAME_COST + copies * payload_len;
        self.frames
            .queue
            .back_mut()
            .expect("the frame just queued")
            .cost = cost;
        self.queued_bytes += cost;
    }

    /// Hands every decided frame, in order, to `write`; stops at the first undecided one.
    /// The redactions' rule names are built in strings kept in `spare`, which `write` gets
    /// back to keep what it has written.
    pub fn release<E>(
        &mut self,
        spare: &mut Spare,
        mut write: impl FnMut(Body, &mut Spare) -> Result<(), E>,
    ) -> Result<(), E> {
        let frames = &mut self.frames;
        self.stage.poll(|piece| frames.place(piece));
        while let Some(held) = frames.queue.front() {
            if let Decision::Waiting { .. } = held.payload {
                return Ok(());
            }
            let held = frames.queue.pop_front().expect("the front frame");
            frames.front_seq += 1;
            self.queued_bytes -= held.cost;
            let mut body = held.body;
            if let (Decision::Masked(taken), Body::Event(event)) = (held.payload, &mut body) {
                let payload = event
                    .payload
                    .as_mut()
                    .expect("a masked frame has a payload");
                // Into the payload's own list, which keeps its capacity (spare.rs).
                payload.redactions.clear();
                payload.redactions.extend(taken.iter().map(|r| Redaction {
                    rule: spare.rule_name(&r.rule),
                    offset: r.offset,
                    length: r.length,
                    field: String::new(),
                }));
                self.stage.recycle(taken);
            }
            write(body, spare)?;
        }
        Ok(())
    }

    /// The time bound: decides, fail-closed, bytes held for the hold-back time before
    /// `seen_to_ns`, the moment up to which every record has been pushed.
    pub fn expire(&mut self, seen_to_ns: u64) {
        let frames = &mut self.frames;
        self.stage.send_to_all(
            || Request::Expire { seen_to_ns },
            |piece| frames.place(piece),
        );
        self.flush();
    }

    /// Whether the frames waiting here, with the payloads their streams hold, pass the
    /// recording's memory bound (`hold_back.memory`).
    pub fn over_memory(&self) -> bool {
        self.queued_bytes > self.policy.hold_back().memory
    }

    /// Past the memory bound: decides, fail-closed, what the streams of the oldest waiting
    /// frames hold (as the time bound would, only sooner), and frees those streams'
    /// buffers. Enough of the oldest frames are covered that, once [`Redactor::release`]
    /// has written them, what still waits is under three quarters of the bound; so a
    /// target that keeps many streams half-written costs a pass now and then, not one per
    /// frame. Each stream forced counts in [`Redactor::holds_forced`].
    pub fn relieve_memory(&mut self) {
        // Every answer in first: a frame still waiting afterwards is held by its stream.
        self.settle();
        let target = self
            .queued_bytes
            .saturating_sub(self.policy.hold_back().memory / 4 * 3);
        let mut covered = 0;
        let mut forcing = mem::take(&mut self.forcing);
        for held in &self.frames.queue {
            if covered >= target {
                break;
            }
            covered += held.cost;
            if let Decision::Waiting { stream, .. } = held.payload {
                forcing.insert(stream);
            }
        }
        self.holds_forced += forcing.len() as u64;
        for stream in forcing.drain() {
            self.send(stream, Request::Force { stream });
        }
        self.forcing = forcing;
        self.settle();
    }

    /// Stream holds the memory bound has decided early so far.
    pub fn holds_forced(&self) -> u64 {
        self.holds_forced
    }

    /// Sends the payloads pushed so far to their workers (with `--threads 0` they are
    /// redacted as they are pushed). The pipeline calls it at the end of each ring batch.
    pub fn flush(&mut self) {
        let frames = &mut self.frames;
        self.stage.flush(|piece| frames.place(piece));
    }

    /// Waits until every payload sent to the shards so far is back or held by its stream.
    pub fn settle(&mut self) {
        let frames = &mut self.frames;
        self.stage.settle(|piece| frames.place(piece));
    }

    /// The worker threads running now.
    pub fn workers(&self) -> &[std::thread::JoinHandle<()>] {
        self.stage.workers()
    }

    /// The recording ends: decides everything still held, fail-closed, and ends the
    /// workers.
    pub fn finish(&mut self) {
        let frames = &mut self.frames;
        self.stage
            .send_to_all(|| Request::Finish, |piece| frames.place(piece));
        self.settle();
        self.stage.stop();
        // Cannot happen (finishing decides every stream), but if a payload never came
        // back, its bytes are withheld, never written undecided.
        for held in &mut self.frames.queue {
            if let (Decision::Waiting { len, .. }, Body::Event(event)) =
                (&held.payload, &mut held.body)
            {
                if let Some(payload) = event.payload.as_mut() {
                    withhold(payload, FAIL_CLOSED, *len);
                }
                held.payload = Decision::None;
            }
        }
    }

    /// What the recording Header says about the policy.
    pub fn header_policy(&self) -> RedactionPolicy {
        policy_summary(&self.policy)
    }
}

impl Redactor {
    /// Sends an admitted payload, and the hole after it, to its stream's shard.
    fn redact(&mut self, seq: u64, admitted: Admitted, now_ns: u64) {
        let Admitted { stream, data, gap } = admitted;
        if let Some(data) = data {
            let push = Request::Push {
                stream,
                seq,
                data,
                now_ns,
            };
            self.send(stream, push);
        }
        if let Some(len) = gap {
            let gap = Request::Gap {
                stream,
                len,
                now_ns,
            };
            self.send(stream, gap);
        }
    }

    fn send(&mut self, stream: StreamId, request: Request) {
        let frames = &mut self.frames;
        self.stage
            .send_to_stream(stream, request, |piece| frames.place(piece));
    }

    /// The fd was closed by a syscall that began at `closed_ns`: its streams begun before
    /// then are complete.
    fn end_fd(&mut self, pid: u32, fd: i64, closed_ns: u64) {
        for out in [true, false] {
            for tls in [false, true] {
                let endpoint = (pid, fd, out, tls);
                let Some(&live) = self.streams.current.get(&endpoint) else {
                    continue;
                };
                if live.began_ns <= closed_ns {
                    self.streams.current.remove(&endpoint);
                    let stream = live.stream;
                    self.send(stream, Request::Close { stream });
                }
            }
        }
    }

    /// The process exited: every stream of it is complete.
    fn end_process(&mut self, pid: u32) {
        let (current, stage, frames) =
            (&mut self.streams.current, &mut self.stage, &mut self.frames);
        current.retain(|&(owner, ..), &mut Live { stream, .. }| {
            if owner == pid {
                stage.send_to_stream(stream, Request::Close { stream }, |piece| {
                    frames.place(piece)
                });
            }
            owner != pid
        });
    }
}

/// Drops a payload's bytes (`withheld` of them), keeping its length, with the rule that
/// withheld them.
fn withhold(payload: &mut Payload, rule: &str, withheld: u32) {
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
