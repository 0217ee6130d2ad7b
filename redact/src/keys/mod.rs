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

use aho_corasick::{AhoCorasick, AhoCorasickKind};

/// Matched anywhere in the normalized key.
const CONTAINED: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "secret",
    "credential",
    "apikey",
    "apitoken",
    "accesskey",
    "privatekey",
    "secretkey",
    "signingkey",
    "encryptionkey",
    "sessionkey",
    "masterkey",
    "authkey",
    "accountkey",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "sessiontoken",
    "securitytoken",
    "bearertoken",
    "authorization",
    "csrftoken",
    "xsrftoken",
    "csrfmiddlewaretoken",
    "sessionid",
    "sessid",
    "creditcard",
    "cardnumber",
    "accountnumber",
    "routingnumber",
    "bankaccount",
    "socialsecurity",
];

/// Matched only as a whole component.
const COMPONENT: &[&str] = &[
    "pwd",
    "pw",
    "pass",
    "token",
    "auth",
    "otp",
    "totp",
    "mfa",
    "pin",
    "csrf",
    "xsrf",
    "cvv",
    "cvv2",
    "cvc",
    "ssn",
    "bearer",
    "jwt",
    "cookie",
    "iban",
    "sig",
    "signature",
];

/// PII keys: only in PII mode.
const PII_CONTAINED: &[&str] = &[
    "email",
    "phonenumber",
    "dateofbirth",
    "birthdate",
    "passport",
    "driverlicense",
    "driverslicense",
    "zipcode",
    "postcode",
    "postalcode",
    "patientid",
    "medicalrecord",
    "diagnosis",
    "insuranceid",
    "policynumber",
    "providerid",
    "cardholder",
];
const PII_COMPONENT: &[&str] = &[
    "phone", "mobile", "mail", "address", "dob", "zip", "swift", "expiry",
];

/// Words that, when everything after the sensitive word consists of them, make the key a
/// description of a secret (`token_type`) rather than the secret.
const DESCRIPTIVE: &[&str] = &[
    "type",
    "kind",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "expired",
    "in",
    "at",
    "file",
    "path",
    "dir",
    "name",
    "url",
    "uri",
    "endpoint",
    "length",
    "len",
    "count",
    "size",
    "method",
    "mode",
    "hint",
    "policy",
    "format",
    "scheme",
    "version",
    "required",
    "enabled",
    "header",
    "headers",
    "algorithm",
    "alg",
    "provider",
    "source",
    "field",
    "label",
    "status",
    "strength",
    "min",
    "max",
    "rotation",
    "created",
    "updated",
    "changed",
    "lifetime",
    "duration",
    "age",
    "limit",
    "usage",
    "used",
    "strategy",
    "pattern",
    "prompt",
    "id",
    "ids",
    "sock",
    "socket",
    "env",
    "var",
    "arn",
    "ref",
    "set",
    "is",
    "has",
    "last",
    "next",
    "on",
];

/// Keys longer than this are not considered.
const MAX_KEY_LEN: usize = 128;

/// The compiled key vocabulary.
#[derive(Debug)]
pub(crate) struct KeyMatcher {
    contained: Vec<Vec<u8>>,
    /// Every occurrence of a `contained` word in a normalized key, in one pass.
    contained_search: AhoCorasick,
    component: Vec<Vec<u8>>,
}

impl KeyMatcher {
    pub(crate) fn new(pii: bool, extra: &[String]) -> KeyMatcher {
        let bytes = |words: &[&str]| words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let mut contained: Vec<Vec<u8>> = bytes(CONTAINED);
        let mut component: Vec<Vec<u8>> = bytes(COMPONENT);
        if pii {
            contained.extend(bytes(PII_CONTAINED));
            component.extend(bytes(PII_COMPONENT));
        }
        for key in extra {
            let norm = normalize(key.as_bytes());
            if norm.len() >= 5 {
                contained.push(norm);
            } else if !norm.is_empty() {
                component.push(norm);
            }
        }
        let contained_search = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .build(&contained)
            .expect("key words build");
        KeyMatcher {
            contained,
            contained_search,
            component,
        }
    }

    /// Words a key must contain (case-insensitively, in its raw spelling) to have any
    /// chance of being sensitive: the prefilter for the key-value detector.
    pub(crate) fn prefilter_words(&self) -> Vec<Vec<u8>> {
        // A contained word like `apikey` may be spelled `api_key` in the text, so the
        // prefilter uses each word's first few letters, which survive any separator
        // placement as long as the first component is at least that long.
        let mut words: Vec<Vec<u8>> = Vec::new();
        for word in self.contained.iter().chain(&self.component) {
            let stem = first_part(word);
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

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
