//! Whether a span already found holds a candidate, so that a detector can pass over it.
//! A span for a held candidate would change nothing: a piece's masks are merged, and where
//! they overlap the one that starts first names the region, or at the same start the lower
//! rule. That holds in every piece a span is split into. The high-entropy detector asks it
//! of each run, the anchored patterns of each trigger hit.

use crate::detector::Rule;
use crate::scan::Span;

/// The spans found before the first question, sorted by start: those of the detectors
/// that ran before the value detectors, and the card numbers, SSNs and value patterns found
/// before it. Gathered at the first question, so a buffer without candidates (most of them)
/// costs nothing, and once for all the detectors that ask.
pub(super) struct EarlierSpans<'a> {
    spans: &'a mut Vec<(usize, usize, Rule)>,
    gathered: bool,
}

impl<'a> EarlierSpans<'a> {
    pub(super) fn new(scratch: &'a mut Vec<(usize, usize, Rule)>) -> Self {
        EarlierSpans {
            spans: scratch,
            gathered: false,
        }
    }

    /// `found`'s spans, read at the first call. Spans added to `found` after it are not
    /// seen, which only means fewer candidates are passed over.
    fn get(&mut self, found: &[Span]) -> &[(usize, usize, Rule)] {
        if !self.gathered {
            self.gathered = true;
            self.spans.clear();
            self.spans
                .extend(found.iter().map(|span| (span.start, span.end, span.rule)));
            self.spans.sort_unstable_by_key(|&(start, ..)| start);
        }
        self.spans
    }
}

/// One detector's questions, asked in order of start: does an earlier span with a rule at
/// most the detector's hold the candidate?
pub(super) struct Covering {
    rule: Rule,
    /// How many of the earlier spans start at or before the last candidate asked about.
    next: usize,
    /// The furthest end of those with a rule at most `rule` (0 while there is none).
    reach: usize,
}

impl Covering {
    pub(super) fn new(rule: Rule) -> Self {
        Covering {
            rule,
            next: 0,
            reach: 0,
        }
    }

    /// Whether a span of `earlier` with a rule at most the detector's starts at or before
    /// `start` and ends at or after `end`, which is after `start`. `start` must not
    /// decrease from one call to the next.
    pub(super) fn holds(
        &mut self,
        earlier: &mut EarlierSpans,
        found: &[Span],
        start: usize,
        end: usize,
    ) -> bool {
        debug_assert!(start < end, "a candidate holds a byte");
        self.held_to(earlier, found, start) >= end
    }

    /// Where the spans of `earlier` with a rule at most the detector's that start at or
    /// before `start` end, the furthest (0 if none): they hold `start..end` for every `end`
    /// up to it. `start` must not decrease from one call to the next.
    pub(super) fn held_to(
        &mut self,
        earlier: &mut EarlierSpans,
        found: &[Span],
        start: usize,
    ) -> usize {
        let spans = earlier.get(found);
        while let Some(&(s, e, rule)) = spans.get(self.next) {
            if s > start {
                break;
            }
            if rule <= self.rule {
                self.reach = self.reach.max(e);
            }
            self.next += 1;
        }
        self.reach
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// `Covering::holds` against a search of every span, for candidates asked in order,
        /// by two detectors of different rules over the same gathered spans.
        #[test]
        fn covering_holds_exactly_the_candidates_a_span_holds(
            spans in proptest::collection::vec((0..200usize, 0..60usize, 0..30u16), 0..12),
            candidates in proptest::collection::vec((0..200usize, 1..60usize), 0..12),
            rules in (0..30u16, 0..30u16),
        ) {
            let found: Vec<Span> = spans
                .iter()
                .map(|&(start, len, r)| Span { start, end: start + len, rule: Rule(r) })
                .collect();
            let mut candidates = candidates;
            candidates.sort_unstable();
            let mut scratch = Vec::new();
            let mut earlier = EarlierSpans::new(&mut scratch);
            for rule in [Rule(rules.0), Rule(rules.1)] {
                let mut covering = Covering::new(rule);
                for &(start, len) in &candidates {
                    let end = start + len;
                    let want = found
                        .iter()
                        .any(|s| s.rule <= rule && s.start <= start && end <= s.end);
                    prop_assert_eq!(
                        covering.holds(&mut earlier, &found, start, end),
                        want,
                        "{}..{} under {:?}", start, end, rule
                    );
                }
            }
        }
    }
}
