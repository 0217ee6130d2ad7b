//! Which key names are sensitive. Keys are compared after normalization: ASCII
//! lowercase with `_`, `-`, `.` and other separators removed, so `clientSecret`,
//! `client-secret` and `CLIENT_SECRET` are the same key.
//!
//! Long, distinctive words (`password`, `secret`, `apikey`) match anywhere in the
//! normalized key (`db_password`, `AWS_SECRET_ACCESS_KEY`). Short or ambiguous words
//! (`pwd`, `token`, `auth`, `pin`) match only as a whole component of the key, so
//! `author`, `shipping` and `prompt_tokens` stay clear. A key whose words after the
//! sensitive one are all descriptive (`token_type`, `password_file`, `secret_name`,
//! `access_key_id`) describes a secret rather than holding one, and is not masked.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};
use rustc_hash::FxHashSet;

mod words;

use words::{vocabulary, DESCRIPTIVE};
#[cfg(test)]
use words::{COMPONENT, CONTAINED, PII_COMPONENT, PII_CONTAINED};

/// Keys longer than this are not considered (nor is a configured key that long).
pub(crate) const MAX_KEY_LEN: usize = 128;

/// The compiled key vocabulary.
#[derive(Debug)]
pub(crate) struct KeyMatcher {
    contained: Vec<Vec<u8>>,
    contained_ends: WordEnds,
    component: Vec<Vec<u8>>,
    component_set: WordSet,
    descriptive: WordSet,
    /// The prefilter stems of the configured keys matched anywhere: their first letter.
    extra_stems: Vec<Vec<u8>>,
}

impl KeyMatcher {
    pub(crate) fn new(pii: bool, extra: &[String]) -> KeyMatcher {
        let (contained, component, extra_stems) = vocabulary(pii, extra);
        KeyMatcher {
            extra_stems,
            contained_ends: WordEnds::new(&contained),
            component_set: WordSet::new(component.iter().map(Vec::as_slice)),
            descriptive: WordSet::new(DESCRIPTIVE.iter().map(|w| w.as_bytes())),
            contained,
            component,
        }
    }

    /// Words a key must contain (case-insensitively, in its raw spelling) to have any
    /// chance of being sensitive: the prefilter for the key-value detector.
    pub(crate) fn prefilter_words(&self) -> Vec<Vec<u8>> {
        // A contained word like `apikey` may be spelled `api_key` in the text, so the
        // prefilter uses each word's first few letters, which survive any separator
        // placement as long as the first component is at least that long.
        // A configured key adds its first letter (`extra_stems`): its first component may
        // be shorter than the stem (`x_tenant_ref` holds no `xten`).
        let mut words: Vec<Vec<u8>> = Vec::new();
        let stems = self
            .contained
            .iter()
            .chain(&self.component)
            .map(|w| first_part(w));
        for stem in stems.chain(self.extra_stems.iter().cloned()) {
            if !words.contains(&stem) {
                words.push(stem);
            }
        }
        words
    }

    pub(crate) fn is_sensitive(&self, key: &[u8]) -> bool {
        // Longer "keys" are text, not names.
        if key.len() > MAX_KEY_LEN {
            return false;
        }
        // A key that ends in a contained word is sensitive whatever its components are:
        // nothing follows the word. That is most sensitive keys (`Authorization`,
        // `api_key`), so they are answered without splitting the key.
        let (contained_end, norm_len) = self.contained_ends.last(key);
        if contained_end == Some(norm_len) {
            return true;
        }
        let key = Components::of(key);
        // Most keys the prefilter lets through hold no sensitive word at all.
        let Some(end) = contained_end.max(self.last_component_word_end(&key)) else {
            return false;
        };
        self.holds_value_after(&key, end)
    }

    /// Where the last component that is a component word ends.
    fn last_component_word_end(&self, key: &Components) -> Option<usize> {
        let norm = key.norm();
        key.comps()
            .filter(|&(s, e)| self.component_set.contains(&norm[s..e]))
            .map(|(_, e)| e)
            .last()
    }

    /// Whether the key holds a secret, given its last sensitive word ends at `end`:
    /// nothing follows the word, or something other than descriptive components does
    /// (`token_type` describes a token; `token_value` holds one).
    fn holds_value_after(&self, key: &Components, end: usize) -> bool {
        let norm = key.norm();
        let mut rest = key.comps().filter(|&(_, e)| e > end).peekable();
        if rest.peek().is_none() {
            return true;
        }
        // A component the word ends inside is not descriptive either.
        rest.any(|(s, e)| s < end || !self.descriptive.contains(&norm[s..e]))
    }
}

/// Where words end in a key read as normalized, overlaps included: an Aho-Corasick DFA
/// walked a byte at a time. Only the last end matters, and a search iterator costs more
/// to set up than walking a key of a few bytes.
#[derive(Debug)]
struct WordEnds {
    dfa: DFA,
    start: StateID,
}

impl WordEnds {
    /// `words` are normalized: lower case letters and digits.
    fn new(words: &[Vec<u8>]) -> WordEnds {
        // Standard semantics: a state is a match state whenever some word ends there,
        // overlapping or not. No prefilter: keys are too short to skip through.
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(StartKind::Unanchored)
            .prefilter(false)
            .build(words)
            .expect("key words build");
        let start = dfa.start_state(Anchored::No).expect("built unanchored");
        WordEnds { dfa, start }
    }

    /// Where the last word ends in `key` normalized, and the normalized key's length.
    fn last(&self, key: &[u8]) -> (Option<usize>, usize) {
        let mut sid = self.start;
        // 0 for none: no word is empty.
        let (mut len, mut last) = (0, 0);
        for &b in key {
            // Normalizing drops everything but letters and digits.
            if class(b) == Class::Separator {
                continue;
            }
            len += 1;
            // Letters' lower case differs only in bit 0x20, which digits already have.
            sid = self.dfa.next_state(Anchored::No, sid, b | 0x20);
            // Unanchored, with standard semantics, the DFA has no dead state to stop at.
            if self.dfa.is_match(sid) {
                last = len;
            }
        }
        ((last > 0).then_some(last), len)
    }
}

/// Whole words to look components up in. Most components have a length no word has,
/// so a bit per length turns them away before any hashing.
#[derive(Debug)]
struct WordSet {
    words: FxHashSet<Vec<u8>>,
    /// Bit `n` set: some word is `n` bytes long (bit 63: 63 or more).
    lengths: u64,
}

impl WordSet {
    fn new<'a>(words: impl Iterator<Item = &'a [u8]>) -> WordSet {
        let words: FxHashSet<Vec<u8>> = words.map(<[u8]>::to_vec).collect();
        let lengths = words.iter().fold(0, |bits, w| bits | length_bit(w.len()));
        WordSet { words, lengths }
    }

    fn contains(&self, word: &[u8]) -> bool {
        self.lengths & length_bit(word.len()) != 0 && self.words.contains(word)
    }
}

fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

/// The leading letters of a normalized word that any spelling of it starts with.
fn first_part(word: &[u8]) -> Vec<u8> {
    // Compound words are listed without separators; their first component is at least
    // the shortest of our first words ("api", "pw", ...), so 2–4 letters is safe.
    let n = word.len().min(4);
    let prefixes: &[&[u8]] = &[
        b"api", b"pw", b"pin", b"sig", b"otp", b"mfa", b"ssn", b"cvv", b"cvc", b"jwt", b"dob",
        b"zip",
    ];
    for p in prefixes {
        if word.starts_with(p) {
            return p.to_vec();
        }
    }
    word[..n].to_vec()
}

/// How many components `key`, of at most `MAX_KEY_LEN` letters and digits, has.
fn component_count(key: &[u8]) -> usize {
    Components::of(key).comps().count()
}

/// ASCII-lowercase with every non-alphanumeric byte removed.
pub(crate) fn normalize(key: &[u8]) -> Vec<u8> {
    normalized(key).collect()
}

/// Whether `key` normalizes to `word` (lower case), without allocating.
pub(crate) fn normalizes_to(key: &[u8], word: &[u8]) -> bool {
    normalized(key).eq(word.iter().copied())
}

fn normalized(key: &[u8]) -> impl Iterator<Item = u8> + '_ {
    key.iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| b.to_ascii_lowercase())
}

/// A key of at most `MAX_KEY_LEN` bytes, normalized, and where its components start.
/// Components break at separators, lower→upper (`clientSecret`), acronym ends (`APIKey`
/// → API|Key) and letter↔digit changes. On the stack: it is built for every candidate
/// key the scan meets.
struct Components {
    norm: [u8; MAX_KEY_LEN],
    norm_len: usize,
    /// Bit `i` set: a component starts at `norm[i]`. It runs to the next start, or to the
    /// end. One word instead of a list of ranges that would need clearing per key.
    starts: u128,
}

#[derive(PartialEq, Clone, Copy)]
enum Class {
    Separator,
    Lower,
    Upper,
    Digit,
}

/// Each byte's class, looked up rather than tested range by range: every byte of every
/// candidate key is classified.
static CLASSES: [Class; 256] = {
    let mut classes = [Class::Separator; 256];
    let mut b = 0;
    while b < 256 {
        classes[b] = match b as u8 {
            b'a'..=b'z' => Class::Lower,
            b'A'..=b'Z' => Class::Upper,
            b'0'..=b'9' => Class::Digit,
            _ => Class::Separator,
        };
        b += 1;
    }
    classes
};

fn class(b: u8) -> Class {
    CLASSES[usize::from(b)]
}

/// Whether an alphanumeric byte of class `cur` after one of class `prev` begins a
/// component; `next` gives the class of the byte after it, asked for only by capitals.
fn starts_component(prev: Class, cur: Class, next: impl FnOnce() -> Class) -> bool {
    if prev == cur {
        // Within a run of one class only an acronym's last capital starts a word: `APIKey`.
        cur == Class::Upper && next() == Class::Lower
    } else {
        // Any other change of class does, but for a capital's own lower case: `Key`.
        !(prev == Class::Upper && cur == Class::Lower)
    }
}

impl Components {
    /// `key` is at most `MAX_KEY_LEN` bytes long (`is_sensitive` checks).
    fn of(key: &[u8]) -> Components {
        let mut out = Components {
            norm: [0; MAX_KEY_LEN],
            norm_len: 0,
            starts: 0,
        };
        // Kept in locals, stored once: cheaper than updating fields per byte.
        let (mut len, mut starts) = (0, 0u128);
        let mut prev = Class::Separator;
        let mut i = 0;
        while i < key.len() {
            let b = key[i];
            let cur = class(b);
            i += 1;
            if cur == Class::Separator {
                prev = cur;
                continue;
            }
            // Few bytes start a component; a branch is cheaper than a 128-bit shift each.
            let next = || key.get(i).map_or(Class::Separator, |&n| class(n));
            if starts_component(prev, cur, next) {
                starts |= 1 << len;
            }
            // Letters' lower case differs only in bit 0x20, which digits already have.
            out.norm[len] = b | 0x20;
            len += 1;
            prev = cur;
            // Lower case after a letter starts nothing: most of most keys is such runs,
            // copied here without the rules above.
            if cur != Class::Digit {
                while let Some(&b @ b'a'..=b'z') = key.get(i) {
                    out.norm[len] = b;
                    len += 1;
                    i += 1;
                    prev = Class::Lower;
                }
            }
        }
        out.norm_len = len;
        out.starts = starts;
        out
    }

    fn norm(&self) -> &[u8] {
        &self.norm[..self.norm_len]
    }

    /// Each component as `(start, end)` in `norm`, in order.
    fn comps(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut starts = self.starts;
        std::iter::from_fn(move || {
            if starts == 0 {
                return None;
            }
            let start = starts.trailing_zeros() as usize;
            starts &= starts - 1;
            let end = match starts {
                0 => self.norm_len,
                next => next.trailing_zeros() as usize,
            };
            Some((start, end))
        })
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
