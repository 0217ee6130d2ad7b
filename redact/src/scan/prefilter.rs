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

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Input, MatchKind};

use crate::detector::Detector;
use crate::scan::kv::is_key_byte;

/// Literals, in lower case, one of which a detector's pattern cannot match without.
/// Patterns are matched against a lowercased copy of the buffer, so a case-sensitive
/// prefix (`AKIA`, `eyJ`) is found in any case: a superset, which is what a filter needs.
/// `None`: the detector has no such literal and always runs.
pub(super) fn triggers(detector: Detector) -> Option<&'static [&'static str]> {
    Some(match detector {
        Detector::Jwt => &["eyj"],
        Detector::AwsAccessKeyId => &[
            "akia", "asia", "abia", "acca", "agpa", "aida", "aipa", "anpa", "anva", "apka", "aroa",
            "asca",
        ],
        Detector::AwsSecretAccessKey => &["aws", "amazon", "akia", "asia"],
        Detector::GithubToken => &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
        Detector::SlackToken => &["xox", "xapp-", "hooks.slack.com/"],
        Detector::StripeKey => &["sk_", "rk_", "whsec_"],
        Detector::GoogleApiKey => &["aiza", "ya29.", "gocspx-"],
        Detector::VendorToken => &[
            "glpat-", "npm_", "hf_", "sk-", "sg.", "shpat_", "shpca_", "shppa_", "shpss_",
            "dop_v1_", "pypi-", "hvs.",
        ],
        Detector::UrlPassword => &["://"],
        Detector::Bearer => &["bearer"],
        Detector::BasicAuth => &["basic"],
        Detector::KeyValue => &["identified"],
        Detector::Email => &["@"],
        _ => return None,
    })
}

/// Which detectors' trigger literals occur in a buffer, found in one pass.
pub(crate) struct Triggers {
    /// Case-sensitive over lowercase literals, so it can use its vectorised prefilter
    /// (an ASCII-case-insensitive automaton steps through every byte instead).
    literals: AhoCorasick,
    /// Detector bit of each literal.
    bits: Vec<u32>,
    /// Every detector that has literals.
    all: u32,
}

impl Triggers {
    pub(crate) fn new(detectors: &[Detector]) -> Triggers {
        // A literal shared by detectors (`akia`) is one pattern carrying both bits: the
        // automaton reports a string under one pattern only.
        let mut words: Vec<&str> = Vec::new();
        let mut bits: Vec<u32> = Vec::new();
        for &d in detectors {
            for w in triggers(d).unwrap_or(&[]) {
                match words.iter().position(|x| x == w) {
                    Some(i) => bits[i] |= Triggers::bit(d),
                    None => {
                        words.push(w);
                        bits.push(Triggers::bit(d));
                    }
                }
            }
        }
        // No literal is a prefix of another, so at most one matches at any position and
        // a leftmost search restarted one byte after each match's start sees them all.
        debug_assert!(words
            .iter()
            .all(|a| words.iter().all(|b| a == b || !b.starts_with(a))));
        let literals = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&words)
            .expect("trigger literals build");
        let all = bits.iter().fold(0, |a, b| a | b);
        Triggers {
            literals,
            bits,
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

    /// Every occurrence of a trigger literal in a buffer (given in ASCII lower case), as
    /// (position, detector bits), in order, into `hits`; returns the bits of every
    /// detector seen.
    pub(crate) fn find(&self, lower: &[u8], hits: &mut Vec<(usize, u32)>) -> u32 {
        hits.clear();
        if self.all == 0 {
            return 0;
        }
        let mut present = 0;
        let mut input = Input::new(lower);
        // Restarting after each match's first byte rather than its end: a literal that
        // overlaps another (`sk-` in `desk-sk_`) counts too.
        while let Some(m) = self.literals.find(input.clone()) {
            let bits = self.bits[m.pattern().as_usize()];
            hits.push((m.start(), bits));
            present |= bits;
            if m.start() + 1 >= lower.len() {
                break;
            }
            input.set_start(m.start() + 1);
        }
        present
    }
}

/// Pushes `(start, end)` of every maximal key-byte run that a key-value match could start
/// from, sorted and without duplicates. `kv::value` finds a value only after a run that
/// is followed (past an optional closing quote and spaces) by `:`, `=` or `'`, that sits
/// in `<run>`, or that starts with `-` or `.` after whitespace (a flag); every other run
/// yields nothing, so only these are looked at.
pub(crate) fn key_runs(buf: &[u8], runs: &mut Vec<(usize, usize)>) {
    runs.clear();
    let run_ending_at = |ke: usize| {
        let mut ks = ke;
        while ks > 0 && is_key_byte(buf[ks - 1]) {
            ks -= 1;
        }
        (ks < ke).then_some((ks, ke))
    };
    for p in memchr::memchr3_iter(b':', b'=', b'\'', buf) {
        let mut j = p;
        while j > 0 && matches!(buf[j - 1], b' ' | b'\t') {
            j -= 1;
        }
        if j > 0 && matches!(buf[j - 1], b'"' | b'\'') {
            j -= 1;
        }
        runs.extend(run_ending_at(j));
    }
    for p in memchr::memchr_iter(b'>', buf) {
        runs.extend(run_ending_at(p));
    }
    for p in memchr::memchr2_iter(b'-', b'.', buf) {
        if p == 0 || matches!(buf[p - 1], b' ' | b'\t' | b'\0' | b'\n') {
            let ke = buf[p..]
                .iter()
                .position(|&b| !is_key_byte(b))
                .map_or(buf.len(), |e| p + e);
            runs.push((p, ke));
        }
    }
    // Three sorted sequences, one after the other. An unstable sort (equal pairs are equal,
    // so order among them cannot matter) needs no scratch buffer: a stable one allocates
    // one per call past a few dozen runs.
    runs.sort_unstable();
    runs.dedup();
}
