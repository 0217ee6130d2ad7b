//! The matcher as it was before it was made cheaper (an Aho-Corasick overlapping search,
//! word lists searched linearly, a zeroed component array per key). Its `is_sensitive`
//! and `Components` are kept verbatim (`prefilter_words`, which it did not have a say in,
//! is left out) so the differential test can check the fast one answers the same for every
//! key. Both take their words from `vocabulary`, which has changed since (configured keys
//! of two components matched anywhere).

use aho_corasick::{AhoCorasick, AhoCorasickKind};

use super::{vocabulary, DESCRIPTIVE, MAX_KEY_LEN};

/// The compiled key vocabulary.
#[derive(Debug)]
pub(super) struct KeyMatcher {
    /// Every occurrence of a `contained` word in a normalized key, in one pass.
    contained_search: AhoCorasick,
    component: Vec<Vec<u8>>,
}

impl KeyMatcher {
    pub(super) fn new(pii: bool, extra: &[String]) -> KeyMatcher {
        let (contained, component, _) = vocabulary(pii, extra);
        let contained_search = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .build(&contained)
            .expect("key words build");
        KeyMatcher {
            contained_search,
            component,
        }
    }

    pub(super) fn is_sensitive(&self, key: &[u8]) -> bool {
        // Longer "keys" are text, not names.
        if key.len() > MAX_KEY_LEN {
            return false;
        }
        let key = Components::of(key);
        let norm = key.norm();
        if key.comps_len == 0 {
            return false;
        }
        let comps = key.comps();
        // Where the last sensitive word in the key ends.
        let mut best_end = self
            .contained_search
            .find_overlapping_iter(norm)
            .map(|m| m.end())
            .max();
        for (start, end) in comps.clone() {
            if self.component.iter().any(|w| w[..] == norm[start..end]) {
                best_end = Some(best_end.map_or(end, |b| b.max(end)));
            }
        }
        let Some(end) = best_end else {
            return false;
        };
        // Everything after the sensitive word: empty, or only descriptive components.
        let mut rest = comps.filter(|&(_, e)| e > end).peekable();
        if rest.peek().is_none() {
            return true;
        }
        let mut all_descriptive = true;
        for (s, e) in rest {
            if s < end || !DESCRIPTIVE.iter().any(|d| d.as_bytes() == &norm[s..e]) {
                all_descriptive = false;
                break;
            }
        }
        !all_descriptive
    }
}

/// A key of at most `MAX_KEY_LEN` bytes, normalized, and its components as ranges into
/// that. Components break at separators, lower→upper (`clientSecret`), acronym ends
/// (`APIKey` → API|Key) and letter↔digit changes. On the stack: it is built for every
/// candidate key the scan meets.
struct Components {
    norm: [u8; MAX_KEY_LEN],
    norm_len: usize,
    /// (start, end) in `norm`: bytes, so the array is small to clear.
    comps: [(u8, u8); MAX_KEY_LEN],
    comps_len: usize,
}

impl Components {
    /// `key` is at most `MAX_KEY_LEN` bytes long (`is_sensitive` checks).
    fn of(key: &[u8]) -> Components {
        #[derive(PartialEq, Clone, Copy)]
        enum C {
            Lower,
            Upper,
            Digit,
        }
        let class = |b: u8| {
            if b.is_ascii_lowercase() {
                Some(C::Lower)
            } else if b.is_ascii_uppercase() {
                Some(C::Upper)
            } else if b.is_ascii_digit() {
                Some(C::Digit)
            } else {
                None
            }
        };
        let mut out = Components {
            norm: [0; MAX_KEY_LEN],
            norm_len: 0,
            comps: [(0, 0); MAX_KEY_LEN],
            comps_len: 0,
        };
        let mut start = 0;
        let mut prev: Option<C> = None;
        for (i, &b) in key.iter().enumerate().take(MAX_KEY_LEN) {
            let Some(cur) = class(b) else {
                out.end_component(start);
                start = out.norm_len;
                prev = None;
                continue;
            };
            let next = key.get(i + 1).copied().and_then(class);
            let boundary = match (prev, cur) {
                (Some(C::Lower), C::Upper) => true,
                (Some(C::Upper), C::Upper) => next == Some(C::Lower),
                (Some(C::Digit), C::Lower | C::Upper) | (Some(C::Lower | C::Upper), C::Digit) => {
                    true
                }
                _ => false,
            };
            if boundary {
                out.end_component(start);
                start = out.norm_len;
            }
            out.norm[out.norm_len] = b.to_ascii_lowercase();
            out.norm_len += 1;
            prev = Some(cur);
        }
        out.end_component(start);
        out
    }

    /// Closes the component `start..` if it holds anything.
    fn end_component(&mut self, start: usize) {
        if self.norm_len > start {
            // Both are at most `MAX_KEY_LEN`, which fits a byte.
            self.comps[self.comps_len] = (start as u8, self.norm_len as u8);
            self.comps_len += 1;
        }
    }

    fn norm(&self) -> &[u8] {
        &self.norm[..self.norm_len]
    }

    fn comps(&self) -> impl Iterator<Item = (usize, usize)> + Clone + '_ {
        self.comps[..self.comps_len]
            .iter()
            .map(|&(s, e)| (usize::from(s), usize::from(e)))
    }
}
