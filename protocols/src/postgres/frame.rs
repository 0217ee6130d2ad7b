//! One direction cut into PostgreSQL messages.
//!
//! Every message after the first carries its length, so a message can be followed across a gap
//! whose size is known (a capped or withheld payload): when the missing bytes end inside or
//! exactly at the end of the message, the next message starts right after the gap. Any other
//! gap (unknown size, or one that swallows the start of a message) ends the direction: the
//! protocol has no marker to find the next message by.

use std::ops::Range;

use crate::stream::Stream;

/// PostgreSQL refuses messages over 1 GiB; a larger length is garbage, not a message.
const MAX_MESSAGE: u32 = 1 << 30;

/// One message as the recording holds it.
#[derive(Clone, Debug)]
pub(super) struct Message {
    /// Type byte; 0 for the untyped first messages (startup, SSLRequest, CancelRequest).
    pub tag: u8,
    /// Stream offsets of the message's first held byte and one past its last.
    pub start: usize,
    pub end: usize,
    /// The body's held bytes up to the first hole (all of it when `partial` is false).
    pub body: Range<usize>,
    /// Bytes of the message fall in a gap.
    pub partial: bool,
}

impl Message {
    /// Bytes of the message the recording holds.
    pub fn held(&self) -> u64 {
        (self.end - self.start) as u64
    }
}

/// Why a direction has no more messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The recorded bytes ended at a message boundary.
    End,
    /// A gap, a message cut by the recording's end, or bytes that are not a message.
    Cut,
}

pub(super) struct Framer<'a> {
    stream: &'a Stream,
    pos: usize,
    /// The first gap not yet passed.
    gap: usize,
    /// The next message is untyped (a startup-phase message).
    untyped: bool,
    pub stopped: Option<Stop>,
}

impl<'a> Framer<'a> {
    pub fn new(stream: &'a Stream, untyped: bool) -> Self {
        Framer {
            stream,
            pos: 0,
            gap: 0,
            untyped,
            stopped: None,
        }
    }

    pub fn stream(&self) -> &'a Stream {
        self.stream
    }

    /// Expects the next client message to be untyped (after an answered SSLRequest).
    pub fn expect_untyped(&mut self) {
        self.untyped = true;
    }

    /// Takes the server's one-byte answer to an SSLRequest or GSSENCRequest, if it is next.
    pub fn answer_byte(&mut self) -> Option<u8> {
        if self.stopped.is_some() || self.gap_at(self.pos) {
            return None;
        }
        let byte = *self.stream.bytes().get(self.pos)?;
        if matches!(byte, b'S' | b'N' | b'G') {
            self.pos += 1;
            Some(byte)
        } else {
            None
        }
    }

    fn gap_at(&self, offset: usize) -> bool {
        self.stream
            .gaps()
            .get(self.gap)
            .is_some_and(|gap| gap.offset <= offset)
    }

    fn stop(&mut self, why: Stop) -> Option<Message> {
        self.stopped = Some(why);
        None
    }

    pub fn next_message(&mut self) -> Option<Message> {
        if self.stopped.is_some() {
            return None;
        }
        let bytes = self.stream.bytes();
        let start = self.pos;
        if self.gap_at(start) {
            return self.stop(Stop::Cut);
        }
        if start >= bytes.len() {
            return self.stop(Stop::End);
        }
        let header = if self.untyped { 4 } else { 5 };
        let Some(head) = bytes.get(start..start + header) else {
            return self.stop(Stop::Cut);
        };
        // The header itself must be whole: a gap inside it hides the length.
        if self.gap_at(start + header - 1) {
            return self.stop(Stop::Cut);
        }
        let (tag, len_bytes) = if self.untyped {
            (0, &head[..4])
        } else {
            (head[0], &head[1..5])
        };
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        if !(4..=MAX_MESSAGE).contains(&len) || (tag != 0 && !tag.is_ascii_graphic()) {
            return self.stop(Stop::Cut);
        }
        let body_from = start + header;
        let Some((end, hole)) = self.span(body_from, len as usize - 4) else {
            return self.stop(Stop::Cut);
        };
        self.pos = end;
        if self.untyped {
            // Only SSLRequest and GSSENCRequest are followed by another untyped message, and
            // the caller says so once the server has answered.
            self.untyped = false;
        }
        Some(Message {
            tag,
            start,
            end,
            body: body_from..hole.unwrap_or(end),
            partial: hole.is_some(),
        })
    }

    /// Where a body of `remaining` bytes starting at `from` ends in the stream, passing holes
    /// of known size; the first hole's offset. `None` when the body cannot be followed.
    fn span(&mut self, from: usize, mut remaining: usize) -> Option<(usize, Option<usize>)> {
        let gaps = self.stream.gaps();
        let mut cur = from;
        let mut hole = None;
        while let Some(gap) = gaps.get(self.gap) {
            let before = gap.offset.checked_sub(cur)?;
            if before >= remaining {
                break;
            }
            let missing = usize::try_from(gap.missing).ok()?;
            remaining -= before;
            cur = gap.offset;
            hole.get_or_insert(cur);
            // Unknown size, or the gap runs past this message into the next one.
            if missing == 0 || missing > remaining {
                return None;
            }
            remaining -= missing;
            self.gap += 1;
            if remaining == 0 {
                return Some((cur, hole));
            }
        }
        let end = cur.checked_add(remaining)?;
        (end <= self.stream.bytes().len()).then_some((end, hole))
    }
}
