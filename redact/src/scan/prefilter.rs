//! The fast path's literal prefilter: one pass that says which pattern detectors can
//! match in a buffer at all, and where the ones anchored on a literal can start; and the
//! separator search that yields the only key runs the key-value detector can act on.
//! Both are exact as filters: they may let through a buffer or a run that turns out to
//! hold nothing, never skip one that holds a match (the differential test in
//! `scan::differential` checks this against the reference scan, which runs every
//! detector everywhere).
//!
//! Detectors themselves (patterns, validators, key rules) stay in `value`, `anchored`,
//! `kv` and `shape`; this module only decides where they need to look.

use std::ops::Range;

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Anchored, Input, MatchKind};

use crate::detector::Detector;
use crate::scan::blocks::Masks;
use crate::scan::kv::is_key_byte;
use crate::scan::tokens::long_token_runs;

/// Literals one of which a detector's pattern cannot match without, spelled as the
/// pattern spells them (in lower case where it ignores case). Most are looked for in a
/// lowercased copy of the buffer, in lower case, so a case-sensitive prefix (`eyJ`) is
/// found in any case: a superset, which is what a filter needs. Those of vendor tokens
/// are looked for as spelled, inside long token runs (`searched_in_long_runs`).
/// `None`: the detector has no such literal and always runs.
pub(super) fn triggers(detector: Detector) -> Option<&'static [&'static str]> {
    Some(match detector {
        Detector::Jwt => &["eyJ"],
        Detector::AwsAccessKeyId => &[
            "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "APKA", "AROA",
            "ASCA",
        ],
        Detector::AwsSecretAccessKey => &["aws", "amazon", "akia", "asia"],
        Detector::GithubToken => &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        Detector::SlackToken => &["xox", "xapp-", "hooks.slack.com/"],
        Detector::StripeKey => &["sk_", "rk_", "whsec_"],
        Detector::GoogleApiKey => &["AIza", "ya29.", "GOCSPX-"],
        Detector::VendorToken => &[
            "glpat-", "npm_", "hf_", "sk-", "SG.", "shp", "dop_v1_", "pypi-", "hvs.",
        ],
        Detector::UrlPassword => &["://"],
        Detector::Bearer => &["bearer"],
        Detector::BasicAuth => &["basic"],
        Detector::KeyValue => &["identified"],
        Detector::Email => &["@"],
        _ => return None,
    })
}

/// Whether `detector`'s trigger `word` is looked for only inside long token runs, as
/// spelled: when the detector's patterns are case-sensitive and every match that starts
/// at a trigger made of token bytes is one run of token bytes at least `LONG_RUN` long
/// (a vendor's token). Ordinary text has few such runs, so the literals searched for over
/// the whole buffer are few, and that search several times faster.
pub(super) fn searched_in_long_runs(detector: Detector, word: &str) -> bool {
    let vendor = matches!(
        detector,
        Detector::AwsAccessKeyId
            | Detector::GithubToken
            | Detector::SlackToken
            | Detector::StripeKey
            | Detector::GoogleApiKey
            | Detector::VendorToken
    );
    vendor && word.bytes().all(is_token_byte)
}

/// Long token runs closer than this are searched for vendor literals as one stretch.
const MERGE_GAP: usize = 128;

/// Which detectors' trigger literals occur in a buffer, and where.
pub(crate) struct Triggers {
    /// Literals that may start a match anywhere, searched for over the whole buffer.
    anywhere: Literals,
    /// Literals of vendor tokens, searched for as spelled, only inside long token runs.
    in_long_runs: Literals,
    /// Those of them without a letter past `f` (`ACCA`): all that a run of hex digits (a
    /// digest, a UUID) can hold.
    in_hex_runs: Literals,
    /// Every detector that has literals.
    all: u32,
}

/// A set of trigger literals and the detector bits of each.
struct Literals {
    /// Case-sensitive (over the lowercased buffer for lowercased literals), so it can use
    /// its vectorised prefilter: an ASCII-case-insensitive automaton steps through every
    /// byte instead. `None`: the set is empty.
    searcher: Option<AhoCorasick>,
    bits: Vec<u32>,
}

impl Literals {
    fn new(literals: Vec<(String, u32)>) -> Literals {
        let (words, bits): (Vec<String>, Vec<u32>) = literals.into_iter().unzip();
        // No literal is a prefix of another, so at most one matches at any position and
        // a leftmost search restarted one byte after each match's start sees them all.
        debug_assert!(words
            .iter()
            .all(|a| words.iter().all(|b| a == b || !b.starts_with(a))));
        let searcher = (!words.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .build(&words)
                .expect("trigger literals build")
        });
        Literals { searcher, bits }
    }

    /// Pushes every occurrence in `haystack[range]` onto `hits`, in order; returns the
    /// bits seen.
    fn find(&self, haystack: &[u8], range: Range<usize>, hits: &mut Vec<(usize, u32)>) -> u32 {
        let Some(searcher) = &self.searcher else {
            return 0;
        };
        let mut present = 0;
        let end = range.end;
        let mut input = Input::new(haystack).range(range);
        // Restarting after each match's first byte rather than its end: a literal that
        // overlaps another (`sk-` in `desk-sk_`) counts too.
        while let Some(m) = searcher.find(input.clone()) {
            let bits = self.bits[m.pattern().as_usize()];
            hits.push((m.start(), bits));
            present |= bits;
            if m.start() + 1 >= end {
                break;
            }
            input.set_start(m.start() + 1);
        }
        present
    }
}

impl Triggers {
    pub(crate) fn new(detectors: &[Detector]) -> Triggers {
        // A literal shared by detectors is one pattern carrying both bits: the automaton
        // reports a string under one pattern only.
        let mut anywhere: Vec<(String, u32)> = Vec::new();
        let mut in_long_runs: Vec<(String, u32)> = Vec::new();
        for &d in detectors {
            for &w in triggers(d).unwrap_or(&[]) {
                let (set, word) = if searched_in_long_runs(d, w) {
                    (&mut in_long_runs, w.to_string())
                } else {
                    (&mut anywhere, w.to_ascii_lowercase())
                };
                match set.iter_mut().find(|(x, _)| *x == word) {
                    Some((_, bits)) => *bits |= Triggers::bit(d),
                    None => set.push((word, Triggers::bit(d))),
                }
            }
        }
        let all = anywhere
            .iter()
            .chain(&in_long_runs)
            .fold(0, |a, (_, b)| a | b);
        let in_hex_runs = in_long_runs
            .iter()
            .filter(|(w, _)| {
                !w.bytes()
                    .any(|b| b.is_ascii_alphabetic() && !b.is_ascii_hexdigit())
            })
            .cloned()
            .collect();
        Triggers {
            anywhere: Literals::new(anywhere),
            in_long_runs: Literals::new(in_long_runs),
            in_hex_runs: Literals::new(in_hex_runs),
            all,
        }
    }

    /// The bit `find` reports for `detector`, or `None` if it always runs.
    pub(crate) fn gate(detector: Detector) -> Option<u32> {
        triggers(detector).map(|_| Triggers::bit(detector))
    }

    fn bit(detector: Detector) -> u32 {
        1 << (detector as u32)
    }

    /// Every occurrence of a trigger literal in `buf` (`lower`: it in ASCII lower case;
    /// `masks`: its byte classes) that can start a match, as (position, detector bits),
    /// in order, into `hits`; returns the bits of every detector seen.
    pub(crate) fn find(
        &self,
        buf: &[u8],
        lower: &[u8],
        masks: &[Masks],
        hits: &mut Vec<(usize, u32)>,
    ) -> u32 {
        hits.clear();
        if self.all == 0 {
            return 0;
        }
        let mut present = self.anywhere.find(lower, 0..lower.len(), hits);
        if self.in_long_runs.searcher.is_some() {
            let before = hits.len();
            // Runs close together are searched as one stretch: a search's set-up costs
            // what scanning about a hundred bytes does. A hit between them only costs an
            // anchored attempt that fails.
            let mut stretch: Option<(Range<usize>, bool)> = None;
            long_token_runs(buf.len(), masks, |start, end, non_hex| match &mut stretch {
                Some((range, any_non_hex)) if start - range.end < MERGE_GAP => {
                    range.end = end;
                    *any_non_hex |= non_hex;
                }
                _ => {
                    if let Some(done) = stretch.replace((start..end, non_hex)) {
                        present |= self.find_in_runs(buf, done, hits);
                    }
                }
            });
            if let Some(last) = stretch {
                present |= self.find_in_runs(buf, last, hits);
            }
            if before > 0 && hits.len() > before {
                hits.sort_unstable();
            }
        }
        present
    }

    /// The vendor literals in a stretch of long token runs; `non_hex`: one of the runs
    /// holds a letter past `f`.
    fn find_in_runs(
        &self,
        buf: &[u8],
        (range, non_hex): (Range<usize>, bool),
        hits: &mut Vec<(usize, u32)>,
    ) -> u32 {
        let literals = if non_hex {
            &self.in_long_runs
        } else {
            &self.in_hex_runs
        };
        literals.find(buf, range, hits)
    }
}

/// What `blocks` classes as a token byte: `[A-Za-z0-9+/_-]`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/_-".contains(&b)
}

/// The key-value detector's stems (`KeyMatcher::prefilter_words`, ASCII
/// case-insensitively): a key can only be sensitive if it holds one.
pub(crate) struct KeyStems {
    /// Leftmost-first, as the reference scan meets them.
    leftmost: AhoCorasick,
    /// The same words as a DFA that reports every occurrence, walked byte by byte: a key
    /// is a few bytes, too short for a search's set-up to pay for itself.
    any: DFA,
    shortest: usize,
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
        }
    }

    /// Whether the reference scan would act on a stem in `run` (a whole key run) that
    /// starts at or after `skip`. Stems are alphanumeric, so none crosses a run's edges.
    pub(crate) fn in_run(&self, run: &[u8], skip: usize) -> bool {
        if run.len() < self.shortest {
            return false;
        }
        if skip > 0 {
            // The reference skips the hits of a leftmost, non-overlapping search that
            // start before `skip`; a later stem that overlaps a skipped hit is not seen.
            return self.leftmost.find_iter(run).any(|m| m.start() >= skip);
        }
        // A leftmost search finds something exactly when some stem occurs at all.
        let Ok(mut state) = self.any.start_state(Anchored::No) else {
            return true;
        };
        for &b in run {
            state = self.any.next_state(Anchored::No, state, b);
            if self.any.is_match(state) {
                return true;
            }
        }
        false
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

    /// Each trigger literal, followed by a body of upper-case hex (so `ACCA`'s run is all
    /// hex), at every offset from a block edge, is reported where it starts.
    #[test]
    fn every_trigger_is_found_at_every_offset() {
        let all = Detector::ALL.to_vec();
        let set = Triggers::new(&all);
        let (mut masks, mut hits) = (Vec::new(), Vec::new());
        for &detector in &all {
            for &word in triggers(detector).unwrap_or(&[]) {
                for at in 0..70 {
                    let buf = format!("{}{word}{} x", " ".repeat(at), "ABCDEF0123456789".repeat(2));
                    let lower = buf.to_ascii_lowercase();
                    classify(buf.as_bytes(), &mut masks);
                    let present = set.find(buf.as_bytes(), lower.as_bytes(), &masks, &mut hits);
                    let bit = Triggers::bit(detector);
                    assert!(present & bit != 0, "{word} at {at}");
                    assert!(
                        hits.iter().any(|&(p, bits)| p == at && bits & bit != 0),
                        "{word} at {at}: {hits:?}"
                    );
                    assert!(hits.is_sorted(), "{word} at {at}: {hits:?}");
                }
            }
        }
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
