//! The key-value detector's prefilter: the key-byte runs a key-value match could start
//! from, found from the buffer's byte classes, and whether a run holds the stem of a
//! sensitive key. Exact as a filter, like `prefilter`: the differential test holds the
//! scan that uses it to the reference scan, which looks at every stem hit in the buffer.

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Anchored, MatchKind};

use crate::scan::blocks::Masks;
use crate::scan::kv::is_key_byte;

/// The key-value detector's stems (`KeyMatcher::prefilter_words`, ASCII
/// case-insensitively): a key can only be sensitive if it holds one.
pub(crate) struct KeyStems {
    /// Leftmost-first, as the reference scan meets them.
    leftmost: AhoCorasick,
    /// The same words as a DFA that reports every occurrence, walked byte by byte: a key
    /// is a few bytes, too short for a search's set-up to pay for itself.
    any: DFA,
    shortest: usize,
    /// Bit `b` of `pairs[a]` is set when a stem begins with bytes of classes `a`, `b`
    /// (`PAIR_CLASS`): a run without such a pair holds no stem, and most keys are
    /// passed over on this alone, a table lookup per byte where the DFA takes several.
    /// `None` when a stem is shorter than two bytes or not alphanumeric (a one-letter
    /// `extra_keys` entry): every run is then walked, as the table cannot rule one out.
    pairs: Option<[u64; PAIR_CLASSES]>,
}

/// Classes of `PAIR_CLASS`: 0, the ten digits and the 26 letters.
const PAIR_CLASSES: usize = 37;

/// ASCII letters (either case) and digits numbered from 1; every other byte is 0, which
/// begins no pair.
static PAIR_CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        class[b] = match byte {
            b'0'..=b'9' => byte - b'0' + 1,
            b'a'..=b'z' => byte - b'a' + 11,
            b'A'..=b'Z' => byte - b'A' + 11,
            _ => 0,
        };
        b += 1;
    }
    class
};

/// The stems' first two bytes as pair classes, or `None` if some stem has no such pair
/// (stems are alphanumeric words of two bytes or more; anything else is not trusted to
/// the table).
fn first_pairs(words: &[Vec<u8>]) -> Option<[u64; PAIR_CLASSES]> {
    let mut pairs = [0u64; PAIR_CLASSES];
    for word in words {
        let (a, b) = match word[..] {
            [a, b, ..] => (PAIR_CLASS[usize::from(a)], PAIR_CLASS[usize::from(b)]),
            _ => return None,
        };
        if a == 0 || b == 0 || !word.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        pairs[usize::from(a)] |= 1 << b;
    }
    Some(pairs)
}

impl KeyStems {
    pub(crate) fn new(words: &[Vec<u8>]) -> KeyStems {
        let leftmost = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .build(words)
            .expect("key stems build");
        let any = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(words)
            .expect("key stems build");
        KeyStems {
            shortest: leftmost.min_pattern_len(),
            leftmost,
            any,
            pairs: first_pairs(words),
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
        // Where the first pair that begins a stem is: no stem starts before it.
        let from = match &self.pairs {
            Some(pairs) => {
                let mut prev = 0;
                let first = run.iter().position(|&b| {
                    let class = usize::from(PAIR_CLASS[usize::from(b)]);
                    let hit = pairs[prev] >> class & 1 == 1;
                    prev = class;
                    hit
                });
                match first {
                    // Never the run's first byte: `prev` starts as class 0, whose row
                    // of the table is empty.
                    Some(second_byte) => second_byte - 1,
                    None => return false,
                }
            }
            None => 0,
        };
        // A leftmost search finds something exactly when some stem occurs at all.
        let Ok(mut state) = self.any.start_state(Anchored::No) else {
            return true;
        };
        for &b in &run[from..] {
            state = self.any.next_state(Anchored::No, state, b);
            if self.any.is_match(state) {
                return true;
            }
        }
        false
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

/// Pushes `(start, end)` of every maximal key-byte run that a key-value match could start
/// from, sorted and without duplicates. `kv::value` finds a value only after a run that
/// is followed (past an optional closing quote and spaces) by `:`, `=` or `'`, that sits
/// in `<run>`, or that starts with `-` or `.` after whitespace (a flag); every other run
/// yields nothing, so only these are looked at. `masks` are `buf`'s (`blocks::classify`):
/// the bytes that make a run a candidate are found 64 at a time, in order.
pub(crate) fn key_runs(buf: &[u8], masks: &[Masks], runs: &mut Vec<(usize, usize)>) {
    runs.clear();
    // Runs come out in the order of the bytes that make them candidates. Two different
    // maximal runs never overlap, and each candidate's run ends before it (or, for a flag,
    // starts at it), so that order is sorted and a duplicate follows its twin.
    let mut push = |run: Option<(usize, usize)>| {
        if let Some(run) = run {
            if runs.last() != Some(&run) {
                runs.push(run);
            }
        }
    };
    // A flag may start the buffer: as if a blank came before it.
    let mut blank_before = 1;
    for (k, m) in masks.iter().enumerate() {
        let flags = m.dash_dot & ((m.blanks << 1) | blank_before);
        blank_before = m.blanks >> 63;
        let mut candidates = m.separators | m.closes | flags;
        while candidates != 0 {
            let p = 64 * k + candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            push(match buf[p] {
                b'>' => key_run_ending_at(masks, p),
                b'-' | b'.' => Some((p, run_end(buf, p))),
                _ => key_run_ending_at(masks, before_separator(buf, p)),
            });
        }
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
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::scan::blocks::classify;

    /// The runs by their definition: every candidate byte looked for in turn, then
    /// sorted.
    fn reference(buf: &[u8]) -> Vec<(usize, usize)> {
        let mut runs = Vec::new();
        for p in memchr::memchr3_iter(b':', b'=', b'\'', buf) {
            runs.extend(run_ending_at(buf, before_separator(buf, p)));
        }
        for p in memchr::memchr_iter(b'>', buf) {
            runs.extend(run_ending_at(buf, p));
        }
        for p in memchr::memchr2_iter(b'-', b'.', buf) {
            if p == 0 || matches!(buf[p - 1], b' ' | b'\t' | b'\0' | b'\n') {
                runs.push((p, run_end(buf, p)));
            }
        }
        runs.sort_unstable();
        runs.dedup();
        runs
    }

    #[test]
    fn a_stem_is_seen_in_a_run_as_the_leftmost_search_sees_it() {
        let stems = KeyStems::new(&[b"pass".to_vec(), b"secr".to_vec(), b"pw".to_vec()]);
        for run in [
            &b"PassWord"[..],
            b"xpw",
            b"db_secret",
            b"name",
            b"pa",
            b"passecret",
        ] {
            for skip in 0..run.len() {
                let want = stems.find_iter(run).any(|m| m.start() >= skip);
                assert_eq!(stems.in_run(run, skip), want, "{run:?} from {skip}");
            }
        }
    }

    fn fast(buf: &[u8]) -> Vec<(usize, usize)> {
        let (mut masks, mut runs) = (Vec::new(), Vec::new());
        classify(buf, &mut masks);
        key_runs(buf, &masks, &mut runs);
        runs
    }

    #[test]
    fn candidates_at_block_edges() {
        for at in 58..70 {
            for text in [
                &b"key: v"[..],
                b"--pw x",
                b"<pw>x",
                b"'pw' = 'x'",
                b"a\0.x=1",
            ] {
                let mut buf = vec![b'x'; at];
                buf[at - 1] = b' ';
                buf.extend_from_slice(text);
                assert_eq!(fast(&buf), reference(&buf), "at {at}");
                assert_eq!(fast(text), reference(text));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// The pair table only passes over runs without a stem: with it (stems of two
        /// bytes or more) and without it (a stem of one byte), every run gets the
        /// leftmost search's answer.
        #[test]
        fn pairs_pass_over_no_run_that_holds_a_stem(
            run in proptest::collection::vec(
                proptest::sample::select(b"pPaAsSwWeEcCrRtToO_-.1x\xc3".to_vec()),
                0..24,
            ),
        ) {
            for words in [
                &["pass", "secr", "pw", "tok", "o1"][..],
                &["pass", "secr", "pw", "tok", "o1", "x"][..],
            ] {
                let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
                let stems = KeyStems::new(&words);
                prop_assert_eq!(stems.pairs.is_some(), words.len() == 5);
                for skip in 0..=run.len() {
                    let want = stems.find_iter(&run).any(|m| m.start() >= skip);
                    prop_assert_eq!(stems.in_run(&run, skip), want, "{:?} from {}", run, skip);
                }
            }
        }

        #[test]
        fn same_runs_as_the_reference(
            parts in proptest::collection::vec(
                prop_oneof![
                    6 => proptest::sample::select(vec![
                        "password", "key", "x", "-", "--", ".", ":", "=", "'", "\"", ">", "<",
                        " ", "\t", "\0", "\n", "::", "=>", ":=", "&", "_",
                    ]).prop_map(|s| s.as_bytes().to_vec()),
                    1 => proptest::collection::vec(any::<u8>(), 0..70),
                ],
                0..60,
            ),
        ) {
            let buf = parts.concat();
            prop_assert_eq!(fast(&buf), reference(&buf));
        }
    }
}
