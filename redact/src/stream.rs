//! Stream-aware redaction for one direction of one stream.
//!
//! Pushed bytes are appended to a window. A byte is *decided* once every detector that
//! could cover it has seen enough of what follows: at a line end, at the end of a
//! protocol message (PostgreSQL, Redis, an HTTP request body), or when a hold-back bound
//! forces it. Undecided bytes are held; a piece can be taken once all its bytes are
//! decided. Masks replace bytes one for one, so every piece keeps its length and every
//! offset stays true.
//!
//! Each byte is scanned once as new data (plus at most [`CONTEXT_BYTES`] of already
//! decided context after a forced cut), so the cost is linear in the stream length
//! however the writes split it.

use std::sync::Arc;
use std::{
    collections::VecDeque,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
};

use crate::detector::{Rule, FAIL_CLOSED};
use crate::framing::{Framing, Mask};
use crate::policy::Policy;
use crate::scan::{self, End, Span, TextState};
use crate::{Redacted, Redaction, MASK_BYTE};

/// Already-decided bytes of the current line kept as context after a forced cut, so a key
/// split by the cut (`"passw` | `ord": "x"`) is still recognised.
pub(crate) const CONTEXT_BYTES: usize = 512;

/// Emptied mask lists a stream keeps for its next pieces: enough for the pieces one
/// decision releases at once in ordinary traffic, few enough not to matter per stream.
const SPARE_MASK_LISTS: usize = 16;

/// Identifies one pushed piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(u64);

#[derive(Debug)]
struct Piece {
    start: u64,
    len: u64,
    pushed_ns: u64,
    taken: bool,
    /// Masked ranges in stream offsets, unmerged.
    masks: Vec<(u64, u64, Rule)>,
}

/// The engine behind [`StreamRedactor`], borrowing the policy per call so that
/// [`Policy::redact_buffer`] can use it without an `Arc`.
#[derive(Debug, Default)]
struct Core {
    /// Bytes from stream offset `data_base` to `end`: untaken pieces and undecided bytes.
    data: Vec<u8>,
    data_base: u64,
    end: u64,
    /// Bytes before this offset are final.
    decided: u64,
    pieces: VecDeque<Piece>,
    first_ticket: u64,
    /// No piece before this ticket holds an undecided byte. `decided` only grows and pieces
    /// leave only from the front, so `oldest_held_ns` resumes here instead of searching
    /// every held piece on every push. (Atomic only so a `&self` query can move it while the
    /// redactor stays `Sync`; one thread uses it at a time.)
    held_from: AtomicU64,
    text: TextState,
    /// Original bytes of the current line before `decided` (only after a forced cut).
    context: Vec<u8>,
    /// The context and the region after it, joined for one scan; and the next context
    /// while it is cut. Kept, like `spare_masks`, so forced cuts do not allocate.
    joined: Vec<u8>,
    next_context: Vec<u8>,
    /// Mask lists of taken pieces, emptied, for the next pieces.
    spare_masks: Vec<Vec<(u64, u64, Rule)>>,
    context_line_start: bool,
    /// Byte `decided` starts a line (when there is no context).
    line_start: bool,
    framing: Framing,
    masks: Vec<Mask>,
    cuts: Vec<u64>,
    spans: Vec<Span>,
}

impl Core {
    fn new() -> Core {
        Core {
            line_start: true,
            ..Core::default()
        }
    }

    fn push(&mut self, policy: &Policy, bytes: &[u8], now_ns: u64) -> Ticket {
        let ticket = Ticket(self.first_ticket + self.pieces.len() as u64);
        let base = self.end;
        self.pieces.push_back(Piece {
            start: base,
            len: bytes.len() as u64,
            pushed_ns: now_ns,
            taken: false,
            masks: self.spare_masks.pop().unwrap_or_default(),
        });
        self.data.extend_from_slice(bytes);
        self.end += bytes.len() as u64;
        if !policy.enabled() {
            self.decided = self.end;
            return ticket;
        }
        self.masks.clear();
        self.cuts.clear();
        self.framing
            .feed(policy, bytes, base, &mut self.masks, &mut self.cuts);
        for i in 0..self.masks.len() {
            let m = self.masks[i];
            self.mask(m.start, m.end, m.rule, false);
        }
        for i in 0..self.cuts.len() {
            let cut = self.cuts[i];
            if cut > self.decided {
                self.scan_to(policy, cut, End::Complete);
            }
        }
        if let Some(p) = memchr::memrchr(b'\n', bytes) {
            let cut = base + p as u64 + 1;
            if cut > self.decided {
                self.scan_to(policy, cut, End::Line);
            }
        }
        let hold = policy.hold_back();
        let too_old = self
            .oldest_held_ns()
            .is_some_and(|t| now_ns.saturating_sub(t) >= hold.nanos);
        if self.end - self.decided > hold.bytes || too_old {
            self.force(policy);
        }
        ticket
    }

    fn gap(&mut self, policy: &Policy, len: u64) {
        if !policy.enabled() || len == 0 {
            return;
        }
        self.framing.gap(len);
        self.force(policy);
        // What follows the hole may be the rest of a secret that started inside it.
        self.text.cont.token = self.text.cont.token.or(Some(FAIL_CLOSED));
        self.context.clear();
        self.line_start = false;
    }

    fn force(&mut self, policy: &Policy) {
        if self.decided < self.end {
            self.scan_to(policy, self.end, End::Forced);
        }
    }

    fn close(&mut self, policy: &Policy) {
        if self.decided < self.end {
            self.scan_to(policy, self.end, End::Complete);
        }
    }

    /// Scans `decided..cut` and makes it final.
    fn scan_to(&mut self, policy: &Policy, cut: u64, end: End) {
        let from = (self.decided - self.data_base) as usize;
        let to = (cut - self.data_base) as usize;
        let region = &self.data[from..to];
        let joined = !self.context.is_empty();
        if joined {
            self.joined.clear();
            self.joined.extend_from_slice(&self.context);
            self.joined.extend_from_slice(region);
        }
        let (buf, start, line_start) = if joined {
            (
                &self.joined[..],
                self.context.len(),
                self.context_line_start,
            )
        } else {
            (region, 0, self.line_start)
        };
        let mut spans = std::mem::take(&mut self.spans);
        spans.clear();
        scan::scan(
            policy,
            buf,
            start,
            line_start,
            end,
            &mut self.text,
            &mut spans,
        );
        let mut next_context = std::mem::take(&mut self.next_context);
        next_context.clear();
        let mut next_context_line_start = false;
        if end == End::Forced {
            let line_begin = memchr::memrchr(b'\n', buf).map(|p| p + 1);
            let tail_start = line_begin
                .unwrap_or(0)
                .max(buf.len().saturating_sub(CONTEXT_BYTES));
            next_context.extend_from_slice(&buf[tail_start..]);
            next_context_line_start = match line_begin {
                Some(b) => tail_start == b,
                None => tail_start == 0 && line_start,
            };
        }
        let buf_len = buf.len();
        let decided = self.decided;
        for span in &spans {
            let s = span.start.max(start);
            let e = span.end.min(buf_len);
            if s < e {
                let abs = |x: usize| decided + (x - start) as u64;
                self.mask(abs(s), abs(e), span.rule, true);
            }
        }
        self.spans = spans;
        self.next_context = std::mem::replace(&mut self.context, next_context);
        self.context_line_start = next_context_line_start;
        self.line_start = end != End::Forced;
        self.decided = cut;
    }

    /// Masks stream bytes `start..end` (line breaks kept when `keep_breaks`) and notes it
    /// on every piece they belong to.
    fn mask(&mut self, start: u64, end: u64, rule: Rule, keep_breaks: bool) {
        let from = (start - self.data_base) as usize;
        let to = (end - self.data_base) as usize;
        let bytes = &mut self.data[from..to];
        if keep_breaks {
            // A store on every byte, of the byte or the mask: the loop vectorizes.
            for b in bytes {
                *b = if *b == b'\n' || *b == b'\r' {
                    *b
                } else {
                    MASK_BYTE
                };
            }
        } else {
            bytes.fill(MASK_BYTE);
        }
        let first = self.pieces.partition_point(|p| p.start + p.len <= start);
        for piece in self.pieces.range_mut(first..) {
            if piece.start >= end {
                break;
            }
            let s = start.max(piece.start);
            let e = end.min(piece.start + piece.len);
            if s < e {
                piece.masks.push((s, e, rule));
            }
        }
    }

    /// The piece's masked bytes into `bytes` and its redactions into `redactions` (both
    /// replaced), if it is decided and not yet taken.
    fn take(
        &mut self,
        policy: &Policy,
        ticket: Ticket,
        bytes: &mut Vec<u8>,
        redactions: &mut Vec<Redaction>,
    ) -> bool {
        let Some(index) = ticket.0.checked_sub(self.first_ticket) else {
            return false;
        };
        let Some(piece) = self.pieces.get_mut(index as usize) else {
            return false;
        };
        if piece.taken || piece.start + piece.len > self.decided {
            return false;
        }
        piece.taken = true;
        let from = (piece.start - self.data_base) as usize;
        bytes.clear();
        bytes.extend_from_slice(&self.data[from..from + piece.len as usize]);
        merge(&mut piece.masks);
        redactions.clear();
        redactions.extend(piece.masks.iter().map(|&(s, e, r)| Redaction {
            rule: policy.rule_name(r),
            offset: (s - piece.start) as u32,
            length: (e - s) as u32,
        }));
        while self.pieces.front().is_some_and(|p| p.taken) {
            let mut taken = self.pieces.pop_front().expect("the front piece");
            self.first_ticket += 1;
            if self.spare_masks.len() < SPARE_MASK_LISTS {
                taken.masks.clear();
                self.spare_masks.push(taken.masks);
            }
        }
        self.compact();
        true
    }

    /// Drops bytes no piece and no decision needs any more.
    fn compact(&mut self) {
        let keep_from = self
            .pieces
            .front()
            .map_or(self.decided, |p| p.start.min(self.decided));
        let drop = (keep_from - self.data_base) as usize;
        if drop > 4096 && drop * 2 > self.data.len() || drop == self.data.len() {
            self.data.drain(..drop);
            self.data_base = keep_from;
        }
    }

    fn oldest_held_ns(&self) -> Option<u64> {
        if self.decided >= self.end {
            return None;
        }
        let mut ticket = self.held_from.load(Relaxed).max(self.first_ticket);
        let oldest = loop {
            match self.pieces.get((ticket - self.first_ticket) as usize) {
                Some(piece) if piece.start + piece.len <= self.decided => ticket += 1,
                held => break held.map(|piece| piece.pushed_ns),
            }
        };
        self.held_from.store(ticket, Relaxed);
        oldest
    }
}

/// Sorts and merges overlapping masks of one piece, in place. Where masks overlap, the one
/// that starts first names the region (ties: the lower rule, so a header deny-list match
/// wins over the key-value match of the same value).
fn merge(masks: &mut Vec<(u64, u64, Rule)>) {
    masks.sort_unstable_by_key(|&(s, e, r)| (s, r, std::cmp::Reverse(e)));
    let mut kept = 0usize;
    for i in 0..masks.len() {
        let (s, e, r) = masks[i];
        match kept.checked_sub(1).map(|last| &mut masks[last]) {
            Some(last) if s < last.1 => last.1 = last.1.max(e),
            _ => {
                masks[kept] = (s, e, r);
                kept += 1;
            }
        }
    }
    masks.truncate(kept);
}

/// Redacts one direction of one stream (the daemon keys it by pid, fd and direction and
/// drops it on close).
///
/// ```
/// use std::sync::Arc;
/// use recorder_redact::{Config, Policy, StreamRedactor};
///
/// let policy = Arc::new(Policy::new(&Config::default()).unwrap());
/// let mut stream = StreamRedactor::new(policy);
/// let a = stream.push(b"GET /x HTTP/1.1\r\nAuthorization: Bearer abc", 0);
/// let b = stream.push(b"123def\r\n\r\n", 1_000);
/// let first = stream.take(a).unwrap();
/// let second = stream.take(b).unwrap();
/// assert_eq!(first.bytes, b"GET /x HTTP/1.1\r\nAuthorization: **********".to_vec());
/// assert_eq!(second.bytes, b"******\r\n\r\n".to_vec());
/// assert_eq!(&*second.redactions[0].rule, "http-header");
/// ```
#[derive(Debug)]
pub struct StreamRedactor {
    policy: Arc<Policy>,
    core: Core,
}

impl StreamRedactor {
    pub fn new(policy: Arc<Policy>) -> Self {
        StreamRedactor {
            policy,
            core: Core::new(),
        }
    }

    /// Appends one syscall's payload; returns its ticket. May decide earlier pieces (and
    /// this one), and forces a decision when the size or time bound is exceeded.
    pub fn push(&mut self, bytes: &[u8], now_ns: u64) -> Ticket {
        self.core.push(&self.policy, bytes, now_ns)
    }

    /// `len` bytes of the stream were not captured. Everything held is decided fail-closed,
    /// and the first token after the hole is masked.
    pub fn gap(&mut self, len: u64, now_ns: u64) {
        let _ = now_ns;
        self.core.gap(&self.policy, len);
    }

    /// The piece's bytes, masked, with its redactions (offsets relative to the piece), once
    /// all of them are decided; `None` while held back or if already taken.
    pub fn take(&mut self, ticket: Ticket) -> Option<Redacted> {
        let mut taken = Redacted {
            bytes: Vec::new(),
            redactions: Vec::new(),
        };
        self.take_into(ticket, &mut taken.bytes, &mut taken.redactions)
            .then_some(taken)
    }

    /// [`take`](Self::take) into buffers of the caller's, reusing their allocations (the
    /// daemon passes the payload's own): `bytes` is replaced by the piece's masked bytes
    /// and `redactions` by its redactions. `false` (both untouched): not decided yet, or
    /// already taken.
    pub fn take_into(
        &mut self,
        ticket: Ticket,
        bytes: &mut Vec<u8>,
        redactions: &mut Vec<Redaction>,
    ) -> bool {
        self.core.take(&self.policy, ticket, bytes, redactions)
    }

    /// Decides, fail-closed, everything once its oldest byte has been held for the
    /// hold-back time. Call it on a timer; [`oldest_held_ns`](Self::oldest_held_ns) says when.
    pub fn expire(&mut self, now_ns: u64) {
        let nanos = self.policy.hold_back().nanos;
        if self
            .core
            .oldest_held_ns()
            .is_some_and(|t| now_ns.saturating_sub(t) >= nanos)
        {
            self.core.force(&self.policy);
        }
    }

    /// The recording ends while the stream may go on: decides everything held,
    /// fail-closed (a partial candidate at the end is masked).
    pub fn finish(&mut self) {
        self.core.force(&self.policy);
    }

    /// The stream itself ended (the peer or the process closed it): what is held is
    /// complete, so it is decided without fail-closed masking of the tail. Use
    /// [`finish`](Self::finish) when unsure.
    pub fn close(&mut self) {
        self.core.close(&self.policy);
    }

    /// Monotonic ns at which the oldest still-undecided byte was pushed.
    pub fn oldest_held_ns(&self) -> Option<u64> {
        self.core.oldest_held_ns()
    }

    /// Bytes pushed but not yet decided.
    pub fn held_bytes(&self) -> u64 {
        self.core.end - self.core.decided
    }

    /// Frees what the stream's buffers keep beyond `keep` bytes each, once it holds nothing
    /// (every piece decided and taken); otherwise does nothing. A buffer keeps the capacity
    /// of the largest stretch the stream ever held, so the daemon calls this for quiet
    /// streams: ten thousand of them must not each keep their largest burst.
    pub fn release_spare(&mut self, keep: usize) {
        let core = &mut self.core;
        if core.pieces.is_empty() && core.data.is_empty() {
            core.data.shrink_to(keep);
            scan::shrink(&mut core.joined, keep);
            core.pieces.shrink_to(keep / 64);
            scan::shrink(&mut core.spans, keep / 64);
            core.text.release_spare(keep);
        }
    }

    pub(crate) fn redact_complete(policy: &Policy, bytes: &[u8]) -> Redacted {
        let mut core = Core::new();
        let ticket = core.push(policy, bytes, 0);
        core.close(policy);
        let mut taken = Redacted {
            bytes: Vec::with_capacity(bytes.len()),
            redactions: Vec::new(),
        };
        let decided = core.take(policy, ticket, &mut taken.bytes, &mut taken.redactions);
        assert!(decided, "a closed stream has decided every piece");
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_joins_overlaps_in_place_and_the_first_names_the_region() {
        let (a, b, c) = (Rule(1), Rule(2), Rule(3));
        let mut masks = vec![
            (10, 12, c),
            (0, 4, b),
            (2, 6, a),
            (0, 3, a),
            (6, 8, b),
            (11, 20, a),
        ];
        merge(&mut masks);
        // (0, 3, a) and (0, 4, b) start together: the lower rule names the region, which
        // runs to the furthest end of everything overlapping it; touching is not overlapping.
        assert_eq!(masks, [(0, 6, a), (6, 8, b), (10, 20, c)]);
        let mut none: Vec<(u64, u64, Rule)> = Vec::new();
        merge(&mut none);
        assert!(none.is_empty());
    }
}
