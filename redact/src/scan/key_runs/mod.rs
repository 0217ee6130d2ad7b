//! The key-value detector's prefilter: the key-byte runs a key-value match could start
//! from, found from the buffer's byte classes, and whether a run holds the stem of a
//! sensitive key. Exact as a filter, like `prefilter`: the differential test holds the
//! scan that uses it to the reference scan, which looks at every stem hit in the buffer.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use crate::scan::blocks::Masks;
use crate::scan::kv::is_key_byte;

/// The key-value detector's stems (`KeyMatcher::prefilter_words`, ASCII
/// case-insensitively): a key can only be sensitive if it holds one.
pub(crate) struct KeyStems {
    /// Leftmost-first, as the reference scan meets them.
    leftmost: AhoCorasick,
    any: AnyStem,
    shortest: usize,
}

/// The stems as a DFA walked byte by byte, which stays in its state `found` once it has
/// read a stem: a key is a few bytes, too short for a search's set-up to pay for itself.
/// One table step per byte and nothing else: no check of where a stem could begin, and
/// none for a match before the run's end (most runs hold no stem, and a key that does is
/// short).
struct AnyStem {
    /// The column of each byte: one per byte some stem holds (both cases of a letter
    /// share one), and 0 for every other byte.
    column: [u8; 256],
    /// The state after state `s` reads a byte of column `c`: `next[s + c]`, states
    /// numbered by their row's start.
    next: Box<[u32]>,
    /// The state a walk stays in once it has read a stem.
    found: usize,
}

impl AnyStem {
    /// Aho-Corasick's automaton over the stems' columns: a trie, then each missing step
    /// taken from the longest proper suffix of the state's bytes that is a trie state.
    fn new(words: &[Vec<u8>]) -> AnyStem {
        let mut column = [0u8; 256];
        let mut columns = 1;
        for &b in words.iter().flatten() {
            let lower = usize::from(b.to_ascii_lowercase());
            if column[lower] == 0 {
                // At most 230 case-folded bytes, so the columns fit a byte.
                column[lower] = columns;
                column[usize::from(b.to_ascii_uppercase())] = columns;
                columns += 1;
            }
        }
        let width = usize::from(columns);
        // The trie: `child[s * width + c]` (0 where there is none: the root is no
        // child), and whether a stem ends at each state.
        let (mut child, mut ends) = (vec![0usize; width], vec![false]);
        for word in words {
            let mut state = 0;
            for &b in word {
                let at = state * width + usize::from(column[usize::from(b)]);
                if child[at] == 0 {
                    child[at] = ends.len();
                    child.resize(child.len() + width, 0);
                    ends.push(false);
                }
                state = child[at];
            }
            ends[state] = true;
        }
        // Breadth first, so a state's suffix state is complete before the state is.
        let mut step = vec![0usize; child.len()];
        let mut suffix = vec![0usize; ends.len()];
        let mut queue = std::collections::VecDeque::from([0]);
        while let Some(state) = queue.pop_front() {
            for c in 0..width {
                let (at, to) = (state * width + c, child[state * width + c]);
                let fallback = if state == 0 {
                    0
                } else {
                    step[suffix[state] * width + c]
                };
                if to == 0 {
                    step[at] = fallback;
                } else {
                    step[at] = to;
                    suffix[to] = fallback;
                    ends[to] |= ends[fallback];
                    queue.push_back(to);
                }
            }
        }
        // Every state where a stem ends is merged into one more, which never leaves.
        let found = ends.len();
        step.resize(step.len() + width, found);
        let next = step
            .iter()
            .map(|&to| {
                let to = if ends.get(to) == Some(&true) {
                    found
                } else {
                    to
                };
                u32::try_from(to * width).expect("a table under 4 GiB")
            })
            .collect();
        AnyStem {
            column,
            next,
            found: found * width,
        }
    }

    fn in_run(&self, run: &[u8]) -> bool {
        let end = run.iter().fold(0, |state, &b| {
            self.next[state + usize::from(self.column[usize::from(b)])] as usize
        });
        end == self.found
    }
}

impl KeyStems {
    pub(crate) fn new(words: &[Vec<u8>]) -> KeyStems {
        let leftmost = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .build(words)
            .expect("key stems build");
        KeyStems {
            shortest: leftmost.min_pattern_len(),
            leftmost,
            any: AnyStem::new(words),
        }
    }

    /// Whether the reference scan would act on a stem in `run` (a whole key run) that
    /// starts at or after `skip`. Stems are alphanumeric, so none crosses a run's edges.
    pub(crate) fn in_run(&self, run: &[u8], skip: usize) -> bool {
        if run.len() < self.shortest {
            return false;
        }
        if skip > 0 {
            return self.in_run_after(run, skip);
        }
        // A leftmost search finds something exactly when some stem occurs at all.
        self.any.in_run(run)
    }

    /// [`in_run`](Self::in_run) of the key run `buf[start..end]`, answered from `seen`
    /// when it holds that run's bytes. A stream's keys repeat (the same JSON keys and
    /// header names in every message), and one word read and compared costs less than the
    /// walk, which waits on one table load per byte. (Runs of up to 16 bytes, in two
    /// words, cost more than they saved: `throughput`, under callgrind.)
    pub(crate) fn in_key_run(
        &self,
        buf: &[u8],
        start: usize,
        end: usize,
        skip: usize,
        seen: &mut SeenRuns,
    ) -> bool {
        let len = end - start;
        if skip > 0 || len > 8 || end < 8 {
            return self.in_run(&buf[start..end], skip);
        }
        // The run's bytes as the high bytes of the 8 that end it, shifted down: key bytes
        // are never zero, so every run of up to 8 bytes has a word of its own.
        let tail: [u8; 8] = buf[end - 8..end].try_into().expect("8 bytes");
        let word = u64::from_le_bytes(tail) >> (8 * (8 - len));
        let slot = slot_of(word);
        if seen.words[slot] == word {
            return seen.held >> slot & 1 == 1;
        }
        let held = self.in_run(&buf[start..end], 0);
        seen.words[slot] = word;
        seen.held = seen.held & !(1 << slot) | u64::from(held) << slot;
        held
    }

    /// [`in_run`](Self::in_run) when hits before `skip` are passed over: the reference
    /// skips the hits of a leftmost, non-overlapping search that start before `skip`, so
    /// a later stem that overlaps a skipped hit is not seen. Rare (a key run that a
    /// masked value ran into), so kept out of the common path.
    #[cold]
    #[inline(never)]
    fn in_run_after(&self, run: &[u8], skip: usize) -> bool {
        self.leftmost.find_iter(run).any(|m| m.start() >= skip)
    }

    /// Every stem hit in `haystack`, leftmost-first (the reference scan).
    #[cfg(test)]
    pub(crate) fn find_iter<'a>(&'a self, haystack: &'a [u8]) -> aho_corasick::FindIter<'a, 'a> {
        self.leftmost.find_iter(haystack)
    }
}

/// Which of a memory's 64 slots holds `word`: the top 6 bits of the word times 2^64/φ
/// (Fibonacci hashing), which spreads words that differ in any byte.
fn slot_of(word: u64) -> usize {
    (word.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize
}

/// Key runs of up to 8 bytes met last, by their bytes, and whether each holds a stem:
/// [`KeyStems::in_key_run`]'s memory, one per stream (the scan's scratch space). 64
/// slots, each run in the one its word hashes to.
#[derive(Clone, Debug)]
pub(crate) struct SeenRuns {
    /// A run's bytes as `in_key_run` reads them; 0 (no run's word) in an empty slot.
    words: [u64; 64],
    /// Bit `i`: the run in slot `i` holds a stem.
    held: u64,
}

impl Default for SeenRuns {
    fn default() -> Self {
        SeenRuns {
            words: [0; 64],
            held: 0,
        }
    }
}

/// Calls `visit` with `(start, end)` of every maximal key-byte run that a key-value
/// match could start from, in order and without duplicates. `kv::value` finds a value
/// only after a run that is followed (past an optional closing quote and spaces) by `:`,
/// `=` or `'`, that sits in `<run>`, or that starts with `-` or `.` after whitespace (a
/// flag); every other run yields nothing, so only these are looked at. `masks` are
/// `buf`'s (`blocks::classify`): the bytes that make a run a candidate are found 64 at a
/// time, in order. Each run goes to `visit` as it is found, with nothing stored between;
/// `seen` is the stream's memory of the keys before its separators.
pub(crate) fn for_each_key_run(
    buf: &[u8],
    masks: &[Masks],
    seen: &mut SeenKeys,
    mut visit: impl FnMut(usize, usize),
) {
    // Runs come out in the order of the bytes that make them candidates. Two different
    // maximal runs never overlap, and each candidate's run ends before it (or, for a flag,
    // starts at it), so that order is sorted and a duplicate follows its twin.
    let mut last = None;
    // A flag may start the buffer: as if a blank came before it.
    let mut blank_before = 1;
    for (k, m) in masks.iter().enumerate() {
        let flags = m.dash_dot & ((m.blanks << 1) | blank_before);
        blank_before = m.blanks >> 63;
        let mut candidates = m.separators | m.closes | flags;
        while candidates != 0 {
            let p = 64 * k + candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            let run = match buf[p] {
                b'>' => key_run_ending_at(masks, p),
                b'-' | b'.' => Some((p, run_end(buf, p))),
                _ => seen.key_before(buf, masks, p),
            };
            if let Some((start, end)) = run {
                if last != run {
                    last = run;
                    visit(start, end);
                }
            }
        }
    }
}

/// What the key-value scan of one stream remembers of the keys it met last, so that a
/// key seen again costs a word compared or two: where its run is, back from its
/// separator, and whether the run holds a stem. Boxed, and made at a stream's first
/// scan, so a quiet stream gives it back (`TextState::release_spare`).
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyMemory {
    pub(crate) before: SeenKeys,
    pub(crate) runs: SeenRuns,
}

/// The key runs found before separators last, by the 8 bytes before the separator: where
/// the key starts and ends, back from it. A stream's keys come in the same spelling again
/// and again (`"id":`, `&page=`), and one word compared costs less than finding the run
/// (spaces and a quote passed over, then the key bytes counted back from the masks). 64
/// slots, each window in the one its word hashes to.
#[derive(Clone, Debug)]
pub(crate) struct SeenKeys {
    /// The 8 bytes before a separator, as one little-endian word.
    windows: [u64; 64],
    /// How far back from the separator the key run starts and ends; `(0, 0)` in an
    /// empty slot (a run is never empty).
    back: [(u8, u8); 64],
}

impl Default for SeenKeys {
    fn default() -> Self {
        SeenKeys {
            windows: [0; 64],
            back: [(0, 0); 64],
        }
    }
}

impl SeenKeys {
    /// The key run before the separator at `p`: `key_run_ending_at(masks,
    /// before_separator(buf, p))`. Remembered when the byte before the run is among the 8
    /// before `p`: then those 8 bytes are all that finding it reads.
    fn key_before(&mut self, buf: &[u8], masks: &[Masks], p: usize) -> Option<(usize, usize)> {
        if p < 8 {
            return key_run_ending_at(masks, before_separator(buf, p));
        }
        let window = u64::from_le_bytes(buf[p - 8..p].try_into().expect("8 bytes"));
        let slot = slot_of(window);
        let (start, end) = self.back[slot];
        if self.windows[slot] == window && start != 0 {
            return Some((p - usize::from(start), p - usize::from(end)));
        }
        let run = key_run_ending_at(masks, before_separator(buf, p));
        if let Some((start, end)) = run.filter(|&(start, _)| start > p - 8) {
            self.windows[slot] = window;
            self.back[slot] = ((p - start) as u8, (p - end) as u8);
        }
        run
    }
}

/// Where the key before the separator at `p` ends: past spaces and one closing quote.
fn before_separator(buf: &[u8], p: usize) -> usize {
    let mut j = p;
    while j > 0 && matches!(buf[j - 1], b' ' | b'\t') {
        j -= 1;
    }
    if j > 0 && matches!(buf[j - 1], b'"' | b'\'') {
        j -= 1;
    }
    j
}

/// The maximal key-byte run that ends at `end`, if any, from the masks' key bits.
fn key_run_ending_at(masks: &[Masks], end: usize) -> Option<(usize, usize)> {
    let mut start = end;
    // Key bits of block `k` below `off`, shifted to the top; their leading ones are the
    // run's bytes in that block.
    let (mut k, mut off) = (end / 64, end % 64);
    loop {
        if off == 0 {
            if k == 0 {
                break;
            }
            (k, off) = (k - 1, 64);
        }
        let ones = (masks[k].keys << (64 - off)).leading_ones() as usize;
        start -= ones.min(off);
        if ones < off {
            break;
        }
        off = 0;
    }
    (start < end).then_some((start, end))
}

/// The maximal key-byte run that ends at `end`, if any.
#[cfg(test)]
fn run_ending_at(buf: &[u8], end: usize) -> Option<(usize, usize)> {
    let mut start = end;
    while start > 0 && is_key_byte(buf[start - 1]) {
        start -= 1;
    }
    (start < end).then_some((start, end))
}

/// Where the key-byte run starting at `start` ends.
fn run_end(buf: &[u8], start: usize) -> usize {
    buf[start..]
        .iter()
        .position(|&b| !is_key_byte(b))
        .map_or(buf.len(), |e| start + e)
}

#[cfg(test)]
mod tests;
