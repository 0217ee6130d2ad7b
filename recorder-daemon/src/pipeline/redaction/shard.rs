//! One shard of the recording's streams: their stream redactors, and the payloads each
//! holds until it has decided them. A shard is run by a worker thread, or by the pipeline
//! itself with `--threads 0`; either way its requests come in the pipeline's order, and
//! the pieces it hands back come in each stream's order.

use std::{collections::VecDeque, mem, sync::Arc};

use recorder_redact::{Policy, Redaction, StreamRedactor, Ticket};
use rustc_hash::FxHashMap;

/// A stream: one endpoint in one of its lives (see `Redactor`). Ids are never reused.
pub type StreamId = u64;

/// What the pipeline asks of a shard.
#[derive(Debug)]
pub enum Request {
    /// A payload of `stream`; it comes back as the [`Piece`] numbered `seq`.
    Push {
        stream: StreamId,
        seq: u64,
        data: Vec<u8>,
        now_ns: u64,
    },
    /// `len` bytes of `stream` were not captured.
    Gap {
        stream: StreamId,
        len: u64,
        now_ns: u64,
    },
    /// The stream ended: what it holds is complete.
    Close { stream: StreamId },
    /// The hold-back time bound: decide, fail-closed, what waited long enough before
    /// `seen_to_ns`, up to which every record has been pushed. Streams that hold nothing
    /// give back buffer capacity past [`IDLE_KEEP`].
    Expire { seen_to_ns: u64 },
    /// The recording's memory bound: decide, fail-closed, everything `stream` holds, and
    /// free its buffers.
    Force { stream: StreamId },
    /// The recording ends: decide everything held, fail-closed.
    Finish,
    /// A piece's redaction list, emptied, for the next pieces that have redactions.
    Recycle(Vec<Redaction>),
}

/// A payload, decided: its bytes masked, with the redactions (offsets within it).
#[derive(Debug)]
pub struct Piece {
    pub seq: u64,
    pub data: Vec<u8>,
    pub redactions: Vec<Redaction>,
}

/// A payload pushed into its stream and not yet handed back.
struct Pending {
    seq: u64,
    ticket: Ticket,
    /// The payload's own buffer: the masked bytes are written into it.
    data: Vec<u8>,
}

struct Stream {
    redactor: StreamRedactor,
    pending: VecDeque<Pending>,
}

pub struct Shard {
    policy: Arc<Policy>,
    streams: FxHashMap<StreamId, Stream>,
    /// Emptied redaction lists (`Request::Recycle`), so a piece with redactions does not
    /// allocate one.
    lists: Vec<Vec<Redaction>>,
}

/// Emptied redaction lists a shard keeps, at most.
const KEPT_LISTS: usize = 64;
/// Buffer capacity a stream holding nothing keeps past an expiry, in bytes: a busy stream's
/// next payloads reuse it, and ten thousand quiet streams keep 40 MiB at most, not each
/// its largest burst.
const IDLE_KEEP: usize = 4 * 1024;

impl Shard {
    pub fn new(policy: Arc<Policy>) -> Self {
        Shard {
            policy,
            streams: FxHashMap::default(),
            lists: Vec::new(),
        }
    }

    /// Does what `request` asks; every piece it decides goes to `reply`, in order.
    pub fn handle(&mut self, request: Request, reply: &mut impl FnMut(Piece)) {
        match request {
            Request::Push {
                stream,
                seq,
                data,
                now_ns,
            } => {
                let entry = self.stream(stream);
                let ticket = entry.redactor.push(&data, now_ns);
                entry.pending.push_back(Pending { seq, ticket, data });
                self.hand_back(stream, reply);
            }
            Request::Gap {
                stream,
                len,
                now_ns,
            } => {
                // Even before the stream's first payload: what follows the hole is
                // masked up to its first token.
                self.stream(stream).redactor.gap(len, now_ns);
                self.hand_back(stream, reply);
            }
            Request::Close { stream } => {
                if let Some(entry) = self.streams.get_mut(&stream) {
                    entry.redactor.close();
                    self.hand_back(stream, reply);
                    // Nothing more comes for a closed stream; once it has handed back all
                    // it held, it is gone.
                    if self.streams[&stream].pending.is_empty() {
                        self.streams.remove(&stream);
                    }
                }
            }
            Request::Expire { seen_to_ns } => {
                for entry in self.streams.values_mut() {
                    entry.redactor.expire(seen_to_ns);
                    hand_back(entry, &mut self.lists, reply);
                    // What an idle stream's buffers grew to goes back.
                    if entry.pending.is_empty() {
                        entry.redactor.release_spare(IDLE_KEEP);
                        entry.pending.shrink_to(4);
                    }
                }
            }
            Request::Force { stream } => {
                if let Some(entry) = self.streams.get_mut(&stream) {
                    entry.redactor.finish();
                    hand_back(entry, &mut self.lists, reply);
                    entry.redactor.release_spare(0);
                    entry.pending.shrink_to(0);
                }
            }
            Request::Finish => self.each_stream(reply, StreamRedactor::finish),
            Request::Recycle(mut list) => {
                if self.lists.len() < KEPT_LISTS && list.capacity() > 0 {
                    list.clear();
                    self.lists.push(list);
                }
            }
        }
    }

    fn stream(&mut self, stream: StreamId) -> &mut Stream {
        let policy = &self.policy;
        self.streams.entry(stream).or_insert_with(|| Stream {
            redactor: StreamRedactor::new(policy.clone()),
            pending: VecDeque::new(),
        })
    }

    fn each_stream(&mut self, reply: &mut impl FnMut(Piece), act: impl Fn(&mut StreamRedactor)) {
        for entry in self.streams.values_mut() {
            act(&mut entry.redactor);
            hand_back(entry, &mut self.lists, reply);
        }
    }

    fn hand_back(&mut self, stream: StreamId, reply: &mut impl FnMut(Piece)) {
        if let Some(entry) = self.streams.get_mut(&stream) {
            hand_back(entry, &mut self.lists, reply);
        }
    }
}

/// Hands back the stream's decided payloads, oldest first; stops at the first undecided.
/// A piece's redactions go out in a kept list (`lists`); most pieces have none, and an
/// empty list costs nothing.
fn hand_back(entry: &mut Stream, lists: &mut Vec<Vec<Redaction>>, reply: &mut impl FnMut(Piece)) {
    let mut redactions = lists.pop().unwrap_or_default();
    while let Some(front) = entry.pending.front_mut() {
        if !entry
            .redactor
            .take_into(front.ticket, &mut front.data, &mut redactions)
        {
            break;
        }
        let front = entry.pending.pop_front().expect("the front payload");
        let redactions = match redactions.is_empty() {
            true => Vec::new(),
            false => mem::replace(&mut redactions, lists.pop().unwrap_or_default()),
        };
        reply(Piece {
            seq: front.seq,
            data: front.data,
            redactions,
        });
    }
    if redactions.capacity() > 0 {
        lists.push(redactions);
    }
}
