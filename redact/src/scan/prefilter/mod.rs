//! The fast path's literal prefilter: which pattern detectors can match in a buffer at
//! all, and where the ones anchored on a literal can start. It is exact as a filter: it
//! may let through a place that turns out to hold nothing, never skip one that holds a
//! match (the differential test in `scan::differential` checks this against the reference
//! scan, which runs every detector everywhere). The key-value detector's own prefilter is
//! `key_runs`.
//!
//! Detectors themselves (patterns, validators, key rules) stay in `value`, `anchored`,
//! `kv` and `shape`; this module only decides where they need to look.

use std::ops::Range;

use aho_corasick::{packed, AhoCorasick, AhoCorasickBuilder, Input, MatchKind, Span};
use memchr::memmem;

use crate::detector::Detector;

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
    /// a vectorised search: an ASCII-case-insensitive one steps through every byte
    /// instead. `None`: the set is empty.
    searcher: Option<Searcher>,
    bits: Vec<u32>,
    /// A literal of one byte (`@`) and its bits, looked for apart with memchr: in Teddy
    /// it would leave one byte to match on, and almost every byte a candidate to check
    /// (with PII on, `Triggers::find` over the bench's request cost seven times more).
    byte: Option<(u8, u32)>,
    /// The automaton `find` used before it called Teddy directly, on every literal with
    /// its bits: the test's reference.
    #[cfg(test)]
    reference: Option<(AhoCorasick, Vec<u32>)>,
}

/// How `Literals` looks for its words.
enum Searcher {
    /// Teddy, called directly. An automaton over these literals ran this same Teddy as
    /// its prefilter and returned Teddy's match as it was, but set up an `Input`,
    /// checked its anchoring and entered its search loop first, on each of `find`'s
    /// calls (one per hit). With no literal a prefix of another, at most one matches at
    /// a position, so Teddy's leftmost-first match is the automaton's.
    Packed(packed::Searcher),
    /// A single literal (`ACCA`, all the hex runs need): memchr's substring search,
    /// cheaper than Teddy for one.
    One(memmem::Finder<'static>),
    /// Where Teddy cannot be built (no vector instructions for it, too many literals).
    Automaton(AhoCorasick),
}

impl Searcher {
    fn new(words: &[String]) -> Searcher {
        if let [word] = words {
            return Searcher::One(memmem::Finder::new(word.as_bytes()).into_owned());
        }
        let teddy = |fat| {
            packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .only_teddy_fat(fat)
                .builder()
                .extend(words)
                .build()
        };
        // Slim Teddy sorts the literals into 8 buckets, Fat Teddy (AVX2 only) into 16 and
        // reads half as many bytes a step. Past 16 literals (the 32 vendor ones) slim's
        // buckets are so crowded that checking its candidates costs more: fat took a
        // third less over the bench's request. Below, slim is the cheaper.
        let fat = (words.len() > 16).then(|| teddy(Some(true))).flatten();
        match fat.or_else(|| teddy(None)) {
            Some(teddy) => Searcher::Packed(teddy),
            None => Searcher::Automaton(automaton(words)),
        }
    }
}

fn automaton(words: &[String]) -> AhoCorasick {
    AhoCorasickBuilder::new()
        .match_kind(MatchKind::LeftmostFirst)
        .build(words)
        .expect("trigger literals build")
}

impl Literals {
    fn new(literals: Vec<(String, u32)>) -> Literals {
        let (mut words, mut bits): (Vec<String>, Vec<u32>) = literals.into_iter().unzip();
        // No literal is a prefix of another, so at most one matches at any position and
        // a leftmost search restarted one byte after each match's start sees them all.
        // Checked in every build: it runs once per policy, and `find` is wrong without it.
        assert!(
            words
                .iter()
                .all(|a| words.iter().all(|b| a == b || !b.starts_with(a.as_str()))),
            "a trigger literal is a prefix of another"
        );
        #[cfg(test)]
        let reference = (!words.is_empty()).then(|| (automaton(&words), bits.clone()));
        let byte = words
            .iter()
            .position(|w| w.len() == 1)
            .map(|i| (words.remove(i).as_bytes()[0], bits.remove(i)));
        Literals {
            searcher: (!words.is_empty()).then(|| Searcher::new(&words)),
            bits,
            byte,
            #[cfg(test)]
            reference,
        }
    }

    /// Pushes every occurrence in `haystack[range]` onto `hits`, in order; returns the
    /// bits seen.
    fn find(&self, haystack: &[u8], range: Range<usize>, hits: &mut Vec<(usize, u32)>) -> u32 {
        let first = hits.len();
        let mut present = self.find_words(haystack, range.clone(), hits);
        if let Some((byte, bits)) = self.byte {
            let words = hits.len();
            for at in memchr::memchr_iter(byte, &haystack[range.clone()]) {
                hits.push((range.start + at, bits));
                present |= bits;
            }
            // A position holds one literal at most: ordered by position, as one search
            // over every literal would report them.
            if words > first && hits.len() > words {
                hits[first..].sort_unstable();
            }
        }
        present
    }

    /// Whether there is nothing to look for.
    fn is_empty(&self) -> bool {
        self.searcher.is_none() && self.byte.is_none()
    }

    /// `find` for the literals but `byte`.
    fn find_words(
        &self,
        haystack: &[u8],
        range: Range<usize>,
        hits: &mut Vec<(usize, u32)>,
    ) -> u32 {
        // One loop per kind of searcher, so the one in use has nothing to dispatch.
        match &self.searcher {
            None => 0,
            Some(Searcher::Packed(teddy)) => self.each(range, hits, |range| {
                let m = teddy.find_in(haystack, Span::from(range))?;
                Some((m.start(), m.pattern().as_usize()))
            }),
            Some(Searcher::One(finder)) => self.each(range, hits, |range| {
                let at = finder.find(&haystack[range.clone()])?;
                Some((range.start + at, 0))
            }),
            Some(Searcher::Automaton(automaton)) => self.each(range, hits, |range| {
                let m = automaton.find(Input::new(haystack).range(range))?;
                Some((m.start(), m.pattern().as_usize()))
            }),
        }
    }

    /// `find`, with `leftmost` giving the start and literal of the leftmost occurrence in
    /// a range.
    fn each(
        &self,
        range: Range<usize>,
        hits: &mut Vec<(usize, u32)>,
        leftmost: impl Fn(Range<usize>) -> Option<(usize, usize)>,
    ) -> u32 {
        let mut present = 0;
        let mut start = range.start;
        // Restarting after each match's first byte rather than its end: a literal that
        // overlaps another (`akia` in `akiasia`) counts too.
        while let Some((at, literal)) = leftmost(start..range.end) {
            let bits = self.bits[literal];
            hits.push((at, bits));
            present |= bits;
            start = at + 1;
            if start >= range.end {
                break;
            }
        }
        present
    }

    /// `find` as it was before it called Teddy directly, for the test to compare with.
    #[cfg(test)]
    fn find_reference(
        &self,
        haystack: &[u8],
        range: Range<usize>,
        hits: &mut Vec<(usize, u32)>,
    ) -> u32 {
        let Some((searcher, bits)) = &self.reference else {
            return 0;
        };
        let mut present = 0;
        let end = range.end;
        let mut input = Input::new(haystack).range(range);
        while let Some(m) = searcher.find(input.clone()) {
            let bits = bits[m.pattern().as_usize()];
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
    /// `long_runs`: its long token runs, `tokens::long_token_runs`) that can start a
    /// match, as (position, detector bits), in order, into `hits`; returns the bits of
    /// every detector seen.
    pub(crate) fn find(
        &self,
        buf: &[u8],
        lower: &[u8],
        long_runs: &[(usize, usize, bool)],
        hits: &mut Vec<(usize, u32)>,
    ) -> u32 {
        self.find_with(buf, lower, long_runs, hits, Literals::find)
    }

    /// `find`, with `search` looking for a set of literals in a range of a buffer.
    fn find_with(
        &self,
        buf: &[u8],
        lower: &[u8],
        long_runs: &[(usize, usize, bool)],
        hits: &mut Vec<(usize, u32)>,
        search: impl Fn(&Literals, &[u8], Range<usize>, &mut Vec<(usize, u32)>) -> u32,
    ) -> u32 {
        hits.clear();
        if self.all == 0 {
            return 0;
        }
        let mut present = search(&self.anywhere, lower, 0..lower.len(), hits);
        if !self.in_long_runs.is_empty() {
            let before = hits.len();
            // Runs close together are searched as one stretch: a search's set-up costs
            // what scanning about a hundred bytes does. A hit between them only costs an
            // anchored attempt that fails.
            let mut stretch: Option<(Range<usize>, bool)> = None;
            for &(start, end, non_hex) in long_runs {
                match &mut stretch {
                    Some((range, any_non_hex)) if start - range.end < MERGE_GAP => {
                        range.end = end;
                        *any_non_hex |= non_hex;
                    }
                    _ => {
                        if let Some(done) = stretch.replace((start..end, non_hex)) {
                            present |= search(self.in_runs(done.1), buf, done.0, hits);
                        }
                    }
                }
            }
            if let Some((range, non_hex)) = stretch {
                present |= search(self.in_runs(non_hex), buf, range, hits);
            }
            if before > 0 && hits.len() > before {
                hits.sort_unstable();
            }
        }
        present
    }

    /// The vendor literals to look for in a stretch of long token runs; `non_hex`: one
    /// of the runs holds a letter past `f`.
    fn in_runs(&self, non_hex: bool) -> &Literals {
        if non_hex {
            &self.in_long_runs
        } else {
            &self.in_hex_runs
        }
    }
}

/// What `blocks` classes as a token byte: `[A-Za-z0-9+/_-]`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/_-".contains(&b)
}

#[cfg(test)]
mod tests;
