//! The compiled, immutable redaction policy: which detectors run, the key and header
//! vocabularies, compiled patterns, never-capture paths and capture modes. Built once
//! from a [`Config`] and shared by every stream through an `Arc`.

use std::sync::Arc;

use rustc_hash::FxHashSet;

use crate::config::{CaptureConfig, CaptureMode, Config, ConfigError};
use crate::detector::{Detector, Rule, FAIL_CLOSED_NAME, FIRST_USER_RULE};
use crate::keys::KeyMatcher;
use crate::paths::NeverCapture;
use crate::scan::{KeyStems, ValueDetectors, MAX_HEADER_NAME};
use crate::stream::StreamRedactor;
use crate::Redacted;

// The limits the config's refusals name.
const _: () = assert!(MAX_HEADER_NAME == 64 && crate::keys::MAX_KEY_LEN == 128);

/// Header names whose values are always masked (names are kept).
const DENIED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "authentication",
    "x-authorization",
    "cookie",
    "set-cookie",
    "set-cookie2",
    "x-api-key",
    "api-key",
    "apikey",
    "x-api-token",
    "x-auth",
    "x-auth-key",
    "x-auth-token",
    "x-access-token",
    "x-refresh-token",
    "x-session-token",
    "x-session-id",
    "x-csrf-token",
    "x-xsrf-token",
    "x-csrftoken",
    "csrf-token",
    "xsrf-token",
    "www-authenticate",
    "proxy-authenticate",
    "x-amz-security-token",
    "x-goog-api-key",
    "x-vault-token",
    "private-token",
    "x-gitlab-token",
    "x-shopify-access-token",
    "x-jwt-assertion",
    "cf-access-token",
    "cf-access-jwt-assertion",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-slack-signature",
    "x-client-secret",
    "x-ms-token-aad-access-token",
    "x-ms-token-aad-id-token",
];

/// Which boundary a payload crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Boundary {
    File,
    Network,
}

/// The hold-back bounds of a stream, as the daemon's timer needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldBack {
    /// At most this many undecided bytes per stream direction.
    pub bytes: u64,
    /// No undecided byte waits longer than this (once `expire` or `push` sees the time).
    pub nanos: u64,
    /// A recording holds at most about this many bytes waiting for decisions, all streams
    /// together (the daemon enforces it; see `hold_back.memory`).
    pub memory: u64,
}

/// What the recording Header says about redaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySummary {
    pub enabled: bool,
    pub pii: bool,
    /// Built-in detectors that are on, in a fixed order.
    pub detectors: Vec<String>,
    /// User rule names, in config order.
    pub rules: Vec<String>,
}

/// A compiled redaction policy. `Send + Sync`; share it with `Arc`.
pub struct Policy {
    enabled: bool,
    pii: bool,
    on: [bool; Detector::ALL.len()],
    keys: KeyMatcher,
    kv_prefilter: Option<KeyStems>,
    /// With a fast hasher: every header name that passes the checks below is looked up.
    headers: FxHashSet<Vec<u8>>,
    /// Lengths and lowercase first bytes of the denied header names: most lines are
    /// ruled out by these before a name is lowercased and hashed.
    header_lengths: u128,
    header_firsts: [bool; 256],
    values: ValueDetectors,
    rule_names: Vec<Arc<str>>,
    user_rules: Vec<String>,
    never: NeverCapture,
    capture: CaptureConfig,
    hold_back: HoldBack,
    /// Scan with the reference path (every detector over every byte) instead of the
    /// prefiltered one: the differential tests compare the two.
    #[cfg(test)]
    reference: bool,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("summary", &self.summary())
            .finish_non_exhaustive()
    }
}

impl Policy {
    /// Compiles `config`. Errors name the offending key, detector, rule or pattern.
    pub fn new(config: &Config) -> Result<Policy, ConfigError> {
        config.validate_hold_back()?;
        for name in config.detectors.keys() {
            if Detector::from_name(name).is_none() {
                return Err(ConfigError::UnknownDetector {
                    name: name.clone(),
                    known: Detector::ALL.map(Detector::name).join(", "),
                });
            }
        }
        let mut on = [false; Detector::ALL.len()];
        for d in Detector::ALL {
            let switch = config.detectors.get(d.name()).copied().unwrap_or(true);
            on[d as usize] = config.enabled && switch && (!d.pii() || config.pii);
        }
        let user_rules = validate_rules(config)?;
        for key in &config.extra_keys {
            let reason = if crate::keys::normalize(key.as_bytes()).is_empty() {
                "has no letters or digits"
            } else if !key.is_ascii() {
                // A key run in traffic is ASCII: `naïve_key` is read as `ve_key`.
                "holds a character that is not ASCII; keys are read as ASCII letters, digits, \
                 `_`, `-` and `.`"
            } else if key.len() > crate::keys::MAX_KEY_LEN {
                // Written as it is, it is longer than any key the detector reads.
                "is longer than 128 bytes, the longest key redaction reads"
            } else {
                continue;
            };
            return Err(ConfigError::BadEntry {
                field: "extra_keys",
                value: key.clone(),
                reason,
            });
        }
        let mut headers: FxHashSet<Vec<u8>> = DENIED_HEADERS
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        for header in &config.extra_headers {
            let valid = !header.is_empty()
                && header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b));
            if !valid {
                return Err(ConfigError::BadEntry {
                    field: "extra_headers",
                    value: header.clone(),
                    reason: "is not a valid HTTP header name",
                });
            }
            // No longer name is read (`header_denied`, the HTTP/1 scan): such an entry
            // would load and never match.
            if header.len() > MAX_HEADER_NAME {
                return Err(ConfigError::BadEntry {
                    field: "extra_headers",
                    value: header.clone(),
                    reason: "is longer than 64 bytes, the longest header name redaction reads",
                });
            }
            headers.insert(header.to_ascii_lowercase().into_bytes());
        }
        let mut header_lengths = 0u128;
        let mut header_firsts = [false; 256];
        for h in &headers {
            header_lengths |= 1 << h.len();
            header_firsts[usize::from(h[0])] = true;
        }
        let keys = KeyMatcher::new(config.pii, &config.extra_keys);
        let kv_prefilter =
            on[Detector::KeyValue as usize].then(|| KeyStems::new(&keys.prefilter_words()));
        let value_detectors: Vec<Detector> = Detector::ALL
            .into_iter()
            .filter(|d| on[*d as usize])
            .collect();
        let user: Vec<(Rule, &str)> = if config.enabled {
            config
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| (Rule(FIRST_USER_RULE + i as u16), r.pattern.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        let values = ValueDetectors::new(&value_detectors, &user).map_err(|bad| {
            let name = config
                .rules
                .get(bad.index)
                .map_or_else(|| "(all rules together)".to_string(), |r| r.name.clone());
            ConfigError::BadRulePattern {
                name,
                reason: bad.reason,
            }
        })?;
        let mut rule_names: Vec<Arc<str>> =
            Detector::ALL.iter().map(|d| Arc::from(d.name())).collect();
        rule_names.push(Arc::from(FAIL_CLOSED_NAME));
        rule_names.extend(config.rules.iter().map(|r| Arc::from(r.name.as_str())));
        Ok(Policy {
            enabled: config.enabled,
            pii: config.pii,
            on,
            keys,
            kv_prefilter,
            headers,
            header_lengths,
            header_firsts,
            values,
            rule_names,
            user_rules,
            never: NeverCapture::new(config.builtin_never_capture, &config.never_capture_paths)?,
            capture: config.capture,
            hold_back: HoldBack {
                bytes: config.hold_back.bytes,
                nanos: config.hold_back.millis * 1_000_000,
                memory: config.hold_back.memory,
            },
            #[cfg(test)]
            reference: false,
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// For the recording Header: what is on.
    pub fn summary(&self) -> PolicySummary {
        PolicySummary {
            enabled: self.enabled,
            pii: self.pii,
            detectors: Detector::ALL
                .into_iter()
                .filter(|d| self.on[*d as usize])
                .map(|d| d.name().to_string())
                .collect(),
            rules: if self.enabled {
                self.user_rules.clone()
            } else {
                Vec::new()
            },
        }
    }

    /// Redacts one complete buffer (argv element, environment block, a sample given to
    /// `recorder redact-test`). The buffer is treated as a whole stream that ends where it
    /// ends, so nothing is masked merely for being at the end.
    pub fn redact_buffer(&self, bytes: &[u8]) -> Redacted {
        StreamRedactor::redact_complete(self, bytes)
    }

    /// The never-capture pattern that matches this file path, if its contents must not be
    /// captured at all.
    pub fn never_capture(&self, path: &str) -> Option<&str> {
        self.never.matches(path)
    }

    pub fn capture_mode(&self, boundary: Boundary) -> CaptureMode {
        match boundary {
            Boundary::File => self.capture.file,
            Boundary::Network => self.capture.network,
        }
    }

    pub fn hold_back(&self) -> HoldBack {
        self.hold_back
    }

    /// This policy, scanning with the reference path.
    #[cfg(test)]
    pub(crate) fn into_reference(self) -> Policy {
        Policy {
            reference: true,
            ..self
        }
    }

    #[cfg(test)]
    pub(crate) fn reference_scan(&self) -> bool {
        self.reference
    }

    pub(crate) fn detector_on(&self, detector: Detector) -> bool {
        self.on[detector as usize]
    }

    pub(crate) fn keys(&self) -> &KeyMatcher {
        &self.keys
    }

    pub(crate) fn kv_prefilter(&self) -> Option<&KeyStems> {
        self.kv_prefilter.as_ref()
    }

    pub(crate) fn values(&self) -> &ValueDetectors {
        &self.values
    }

    pub(crate) fn header_denied(&self, name: &[u8]) -> bool {
        if name.len() > MAX_HEADER_NAME
            || self.header_lengths >> name.len() & 1 == 0
            || name
                .first()
                .is_none_or(|b| !self.header_firsts[usize::from(b.to_ascii_lowercase())])
        {
            return false;
        }
        let mut lower = [0u8; MAX_HEADER_NAME];
        for (dst, src) in lower.iter_mut().zip(name) {
            *dst = src.to_ascii_lowercase();
        }
        self.headers.contains(&lower[..name.len()])
    }

    pub(crate) fn rule_name(&self, rule: Rule) -> Arc<str> {
        self.rule_names[rule.0 as usize].clone()
    }
}

fn validate_rules(config: &Config) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for rule in &config.rules {
        let name = &rule.name;
        let bad = |reason| ConfigError::BadRuleName {
            name: name.clone(),
            reason,
        };
        if name.is_empty() || name.len() > 64 {
            return Err(bad("must be 1 to 64 characters"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad("may contain only letters, digits, `-`, `_` and `.`"));
        }
        if Detector::from_name(name).is_some() || name == FAIL_CLOSED_NAME {
            return Err(bad("is the name of a built-in detector"));
        }
        if names.contains(name) {
            return Err(bad("is used twice"));
        }
        names.push(name.clone());
    }
    if names.len() > usize::from(u16::MAX - FIRST_USER_RULE) {
        return Err(ConfigError::BadRuleName {
            name: names[0].clone(),
            reason: "belongs to too many rules",
        });
    }
    Ok(names)
}
