//! Patterns whose every match starts at one of their trigger literals (JWTs, vendor
//! tokens, AWS key ids, `Bearer`, `Basic`, `IDENTIFIED BY`): tried, anchored, only where
//! the prefilter found a literal, instead of searched for over the whole buffer; and the
//! secret group read from the pattern's shape instead of by a capturing search. Both give
//! what `find_iter`/`captures_iter` over the buffer would (the differential test holds the
//! scan to the reference, which searches every buffer whole).

use regex_automata::{meta, Anchored, Input};

use crate::detector::Detector;
use crate::scan::extent::{match_bytes, open_run, parse, run_end, OpenRun};
use crate::scan::prefilter::Triggers;
use crate::scan::Span;

/// A built-in pattern tried only at its trigger literals.
pub(super) struct AnchoredPattern {
    regex: meta::Regex,
    secret: Secret,
    /// Every byte a match can hold: a match starting at a hit ends at or before the first
    /// byte after it that is not one of these.
    extent: [bool; 256],
    /// For a pattern that begins with a literal, then any number of bytes of a class that
    /// holds the literal's own (a JWT's `eyJ[A-Za-z0-9_-]{4,}`): the literal and the class.
    /// When the search fails where the literal is, so does the search at every later hit in
    /// the same run of the class (`open_run`). Not when it fails at a hit that is not the
    /// literal: hits are found case-blind, and `eyj` fails for its case alone.
    run: Option<OpenRun>,
}

impl AnchoredPattern {
    /// `detector`'s `pattern` (secret group `group`), if its matches all start at a trigger
    /// literal and its secret has a known shape.
    pub(super) fn new(detector: Detector, pattern: &str, group: usize) -> Option<AnchoredPattern> {
        let secret = Secret::of(detector, group)?;
        (starts_at_trigger(detector) && Triggers::gate(detector).is_some()).then(|| {
            let hir = parse(pattern);
            AnchoredPattern {
                regex: compile_anchored(pattern),
                secret,
                extent: match_bytes(hir.as_ref()),
                run: hir.as_ref().and_then(open_run),
            }
        })
    }

    /// Calls `found` with the secret's bounds of every match in `buf`, trying the pattern
    /// at each trigger hit with detector bit `bit`, in order, and skipping hits inside the
    /// previous match, as `find_iter` resumes after it. A hit is not tried when a span
    /// already in `out` holds every match it could start (`held_to` says how far the spans
    /// that hold a hit reach, `scan::covering`): such a secret would change nothing, and so
    /// would one from a hit inside its match, which lies inside the same span.
    pub(super) fn find(
        &self,
        buf: &[u8],
        hits: &[(usize, u32)],
        bit: u32,
        out: &mut Vec<Span>,
        mut held_to: impl FnMut(&[Span], usize) -> usize,
        mut found: impl FnMut(&mut Vec<Span>, usize, usize),
    ) {
        let mut resume = 0;
        // The reach of the last hit it was found for. A later hit before it has the same
        // reach, as every byte between is one a match can hold; finding it once keeps hits
        // inside one long held value from each walking the rest of it.
        let mut reach = 0;
        // A search failed where the pattern's literal is, at a hit before this offset within
        // the run it ends: hits up to here fail too (`open_run`). Without it, `eyJ-eyJ-…`
        // would read the rest of the run once per hit.
        let mut failed_to = 0;
        for &(at, bits) in hits {
            if bits & bit == 0 || at < resume || at < failed_to {
                continue;
            }
            // The cheap question first: is the hit itself inside such a span?
            let held = held_to(out, at);
            if held > at {
                // Where the span ends, a byte no match can hold (or the buffer's end) stops
                // every match from the hit before it: no need to find the match's reach.
                let stopped = buf.get(held).is_none_or(|&b| !self.extent[usize::from(b)]);
                if !stopped && at >= reach {
                    reach = self.reach(buf, at);
                }
                if stopped || held >= reach {
                    continue;
                }
            }
            let input = Input::new(buf).range(at..).anchored(Anchored::Yes);
            let Some(matched) = self.regex.search(&input) else {
                if let Some(run) = &self.run {
                    if buf[at..].starts_with(&run.literal) {
                        failed_to = run_end(buf, at, &run.bytes);
                    }
                }
                continue;
            };
            let (s, e) = self.secret.bounds(&buf[at..matched.end()]);
            found(out, at + s, at + e);
            resume = matched.end().max(at + 1);
        }
    }

    /// The furthest a match starting at `at` can end.
    fn reach(&self, buf: &[u8], at: usize) -> usize {
        run_end(buf, at, &self.extent)
    }
}

/// Whether every match of `detector`'s patterns starts where one of its trigger literals
/// does (after `\b` at most). Not so for patterns whose literal sits inside the match (a
/// URL's `://`, an email's `@`) or only somewhere near it (an AWS hint).
fn starts_at_trigger(detector: Detector) -> bool {
    matches!(
        detector,
        Detector::Jwt
            | Detector::AwsAccessKeyId
            | Detector::GithubToken
            | Detector::SlackToken
            | Detector::StripeKey
            | Detector::GoogleApiKey
            | Detector::VendorToken
            | Detector::Bearer
            | Detector::BasicAuth
            | Detector::KeyValue
    )
}

/// Where the secret is in an anchored pattern's match, known from the pattern's shape so
/// that no capturing search (several times slower) is needed. The test
/// `secret_bounds_are_each_patterns_group` holds each to its pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Secret {
    /// The whole match (group 0).
    Whole,
    /// After the first run of blanks, to the end: `bearer <secret>`, `basic <secret>`.
    AfterBlanks,
    /// Between the first quote and the last byte: `identified ... by '<secret>'`.
    Quoted,
    /// After the second `/`, to the end: `hooks.slack.com/<kind>/<secret>`.
    SlackPath,
}

impl Secret {
    /// The shape of `detector`'s pattern with secret group `group`; `None` if it has
    /// none of these, so the pattern is searched for over the whole buffer instead.
    pub(super) fn of(detector: Detector, group: usize) -> Option<Secret> {
        Some(match (detector, group) {
            (_, 0) => Secret::Whole,
            (Detector::Bearer | Detector::BasicAuth, 1) => Secret::AfterBlanks,
            (Detector::KeyValue, 1) => Secret::Quoted,
            (Detector::SlackToken, 1) => Secret::SlackPath,
            _ => return None,
        })
    }

    /// The secret's bounds in `matched`, a match of the pattern. (Were the shape not
    /// found, which a match cannot do, the whole match is the secret: more, never less.)
    pub(super) fn bounds(self, matched: &[u8]) -> (usize, usize) {
        let blank = |b: &u8| matches!(b, b' ' | b'\t');
        let after_nth = |byte: u8, n: usize| memchr::memchr_iter(byte, matched).nth(n - 1);
        let found = match self {
            Secret::Whole => Some((0, matched.len())),
            Secret::AfterBlanks => matched.iter().position(blank).map(|word| {
                let blanks = matched[word..].iter().take_while(|b| blank(b)).count();
                (word + blanks, matched.len())
            }),
            Secret::Quoted => after_nth(b'\'', 1).map(|q| (q + 1, matched.len() - 1)),
            Secret::SlackPath => after_nth(b'/', 2).map(|s| (s + 1, matched.len())),
        };
        found.unwrap_or((0, matched.len()))
    }
}

/// A built-in pattern for anchored searches, with `regex::bytes`'s semantics (any byte
/// matched, empty matches anywhere).
fn compile_anchored(pattern: &str) -> meta::Regex {
    meta::Regex::builder()
        .syntax(regex_automata::util::syntax::Config::new().utf8(false))
        .configure(meta::Regex::config().utf8_empty(false))
        .build(pattern)
        .expect("built-in patterns compile")
}

#[cfg(test)]
mod tests {
    use regex_syntax::hir::{Hir, HirKind};

    use super::*;
    use crate::scan::extent::mark;
    use crate::scan::prefilter::{searched_in_long_runs, triggers};
    use crate::scan::tokens::LONG_RUN;
    use crate::scan::value::{builtin, compile};

    /// What the anchored search rests on: every match of an anchored pattern starts with
    /// one of its detector's trigger literals. The pattern's leading literals are read from
    /// the parsed pattern (every way a match can begin, case variants included), so a
    /// pattern changed to begin elsewhere fails here, not in the field.
    #[test]
    fn every_anchored_match_starts_with_a_trigger() {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        let mut checked = 0;
        for &detector in &Detector::ALL {
            if !starts_at_trigger(detector) {
                continue;
            }
            let words = triggers(detector).expect("an anchored detector has triggers");
            for &(pattern, _) in builtin(detector) {
                let hir = parse(pattern).unwrap();
                let mut extractor = Extractor::new();
                extractor.kind(ExtractKind::Prefix).limit_total(100_000);
                let prefixes = extractor.extract(&hir);
                let literals = prefixes
                    .literals()
                    .unwrap_or_else(|| panic!("{detector:?}: {pattern} has no leading literal"));
                for literal in literals {
                    let (bytes, lower) =
                        (literal.as_bytes(), literal.as_bytes().to_ascii_lowercase());
                    // Vendor literals are searched for as spelled; the rest in lower case.
                    let starts = |w: &&str| {
                        if searched_in_long_runs(detector, w) {
                            bytes.starts_with(w.as_bytes())
                        } else {
                            lower.starts_with(&w.as_bytes().to_ascii_lowercase())
                        }
                    };
                    assert!(
                        words.iter().any(starts),
                        "{detector:?}: a match can begin {:?}, which no trigger starts",
                        String::from_utf8_lossy(literal.as_bytes())
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "{checked} leading literals checked");
    }

    /// What searching vendor literals only inside long token runs rests on: every
    /// alternative of a pattern that can begin with such a literal matches only token
    /// bytes, `LONG_RUN` of them at least. Read from the parsed pattern, so a pattern
    /// changed to allow a `.` or a shorter token fails here.
    #[test]
    fn vendor_tokens_are_long_token_runs() {
        use regex_syntax::hir::literal::{ExtractKind, Extractor};
        /// The alternatives of `\b(?:a|b|c)\b`; a pattern of another shape is one.
        fn branches(hir: &Hir) -> Vec<&Hir> {
            if let HirKind::Concat(parts) = hir.kind() {
                let inner: Vec<&Hir> = parts
                    .iter()
                    .filter(|h| !matches!(h.kind(), HirKind::Look(_)))
                    .collect();
                if let [only] = inner[..] {
                    if let HirKind::Alternation(alternatives) = only.kind() {
                        return alternatives.iter().collect();
                    }
                }
            }
            vec![hir]
        }

        let mut checked = 0;
        for &detector in &Detector::ALL {
            let Some(words) = triggers(detector) else {
                continue;
            };
            let vendor: Vec<&str> = words
                .iter()
                .copied()
                .filter(|w| searched_in_long_runs(detector, w))
                .collect();
            if vendor.is_empty() {
                continue;
            }
            for &(pattern, _) in builtin(detector) {
                let hir = parse(pattern).unwrap();
                for branch in branches(&hir) {
                    let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(branch);
                    let begins_with_vendor = prefixes.literals().is_none_or(|ls| {
                        // Either may be the longer: the extractor cuts long prefixes short.
                        ls.iter().any(|l| {
                            vendor.iter().any(|w| {
                                l.as_bytes().starts_with(w.as_bytes())
                                    || w.as_bytes().starts_with(l.as_bytes())
                            })
                        })
                    });
                    if !begins_with_vendor {
                        continue;
                    }
                    let mut seen = [false; 256];
                    mark(branch, &mut seen);
                    for b in (0..=255u8).filter(|&b| seen[usize::from(b)]) {
                        assert!(
                            b.is_ascii_alphanumeric() || b"+/_-".contains(&b),
                            "{detector:?}: {pattern} can match {:?}, not a token byte",
                            b as char
                        );
                    }
                    let shortest = branch.properties().minimum_len().unwrap_or(0);
                    assert!(
                        shortest >= LONG_RUN,
                        "{detector:?}: {pattern} matches {shortest} bytes"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 15, "{checked} alternatives checked");
    }

    /// The shapes `Secret::bounds` assumes, held to each anchored pattern's own group on
    /// matches of every form the pattern allows.
    #[test]
    fn secret_bounds_are_each_patterns_group() {
        let samples: &[(Detector, &[&str])] = &[
            (
                Detector::Bearer,
                &[
                    "Bearer abcdefgh12",
                    "bearer \t  x.y~z+/=-12345",
                    "BEARER\tAAAA.BBBB==",
                ],
            ),
            (
                Detector::BasicAuth,
                &["Basic dXNlcjpwYXNz", "basic\t \tQUJD==", "BASIC  YWJjZA="],
            ),
            (
                Detector::KeyValue,
                &[
                    "identified by 'hunter2'",
                    "IDENTIFIED\tWITH mysql_native_password  BY  ''",
                    "identified with x by 'a b\\c'",
                ],
            ),
            (
                Detector::SlackToken,
                &[
                    "hooks.slack.com/services/T000/B000/XXXXXXXX",
                    "hooks.slack.com/workflows/abcdefgh_-",
                    "hooks.slack.com/triggers/A1/B2/C3/D4",
                ],
            ),
        ];
        let mut checked = 0;
        for &detector in &Detector::ALL {
            for &(pattern, group) in builtin(detector) {
                let Some(secret) = Secret::of(detector, group) else {
                    continue;
                };
                if secret == Secret::Whole {
                    continue;
                }
                let regex = compile(pattern).unwrap();
                let (_, texts) = samples
                    .iter()
                    .find(|(d, _)| *d == detector)
                    .unwrap_or_else(|| panic!("no samples for {detector:?}'s group"));
                for text in *texts {
                    let Some(caps) = regex.captures(text.as_bytes()) else {
                        continue;
                    };
                    let (whole, want) = (caps.get(0).unwrap(), caps.get(group).unwrap());
                    let (s, e) = secret.bounds(whole.as_bytes());
                    assert_eq!(
                        (whole.start() + s, whole.start() + e),
                        (want.start(), want.end()),
                        "{detector:?} on {text:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 12, "every sample matches its pattern");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        /// What the failed-run skip rests on: where an anchored search with a run fails at
        /// its literal, it fails at every later position of that run too.
        #[test]
        fn a_failed_search_fails_on_in_its_run(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "eyJ", "eyJhbGciOiJIUzI1NiJ9", "eyJ-", "ab", ".", "-", "_", "x", "0123",
                    " ", "\n", "=",
                ]),
                0..24,
            ),
        ) {
            let buf = parts.concat().into_bytes();
            let mut with_runs = 0;
            for &detector in &Detector::ALL {
                for &(pattern, group) in builtin(detector) {
                    let Some(anchored) = AnchoredPattern::new(detector, pattern, group) else {
                        continue;
                    };
                    let Some(run) = &anchored.run else {
                        continue;
                    };
                    with_runs += 1;
                    let fails = |at: usize| {
                        let input = Input::new(&buf).range(at..).anchored(Anchored::Yes);
                        anchored.regex.search(&input).is_none()
                    };
                    let hits = (0..buf.len()).filter(|&at| buf[at..].starts_with(&run.literal));
                    for at in hits.filter(|&at| fails(at)) {
                        for later in at + 1..run_end(&buf, at, &run.bytes) {
                            proptest::prop_assert!(
                                fails(later),
                                "{:?} fails at {} but not at {} in {:?}",
                                detector, at, later, String::from_utf8_lossy(&buf)
                            );
                        }
                    }
                }
            }
            proptest::prop_assert_eq!(with_runs, 1, "the JWT's pattern has a run");
        }

        /// What passing over a held hit rests on: no match of an anchored pattern ends past
        /// `reach`, at any position of text made of the patterns' own pieces and the bytes
        /// that end them.
        #[test]
        fn no_match_ends_past_its_reach(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "Bearer ", "basic\t", "eyJ", "eyJhbGciOiJIUzI1NiJ9", ".", "AKIA", "ghp_",
                    "sk_live_", "xoxb-", "AIza", "glpat-", "hooks.slack.com/services/",
                    "identified by '", "'", "Zx9QwErTyU1iOpAsDfGh2JkL", "0123456789", "=", "~",
                    "+/", "-", "_", " ", "\r\n", "\n", "&", ";", "\"", "<", "\u{e9}",
                ]),
                0..24,
            ),
        ) {
            let buf = parts.concat().into_bytes();
            for &detector in &Detector::ALL {
                for &(pattern, group) in builtin(detector) {
                    let Some(anchored) = AnchoredPattern::new(detector, pattern, group) else {
                        continue;
                    };
                    for at in 0..buf.len() {
                        let input = Input::new(&buf).range(at..).anchored(Anchored::Yes);
                        if let Some(matched) = anchored.regex.search(&input) {
                            proptest::prop_assert!(
                                matched.end() <= anchored.reach(&buf, at),
                                "{:?} at {} in {:?}", detector, at, String::from_utf8_lossy(&buf)
                            );
                        }
                    }
                }
            }
        }
    }
}
