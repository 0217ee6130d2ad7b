//! The redaction section of the daemon's configuration, as written in TOML, and its
//! errors. Validation that needs compiling (regexes, globs) happens in `Policy::new`.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

/// Default hold-back size bound per stream direction: bytes pushed but not yet decided.
pub const DEFAULT_HOLD_BACK_BYTES: u64 = 64 * 1024;
/// Default hold-back time bound: how long the oldest undecided byte may wait.
pub const DEFAULT_HOLD_BACK_MILLIS: u64 = 200;
/// Default bound on what one recording holds for redaction decisions, all streams together.
pub const DEFAULT_HOLD_BACK_MEMORY: u64 = 64 * 1024 * 1024;

const HOLD_BACK_BYTES_RANGE: (u64, u64) = (256, 16 * 1024 * 1024);
const HOLD_BACK_MILLIS_RANGE: (u64, u64) = (0, 60_000);
const HOLD_BACK_MEMORY_RANGE: (u64, u64) = (1024 * 1024, 16 * 1024 * 1024 * 1024);

/// Redaction configuration. `Config::default()` is redaction on, every default detector
/// on, PII mode off, the built-in never-capture paths, full capture on both boundaries.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Master switch. Off records payloads as captured (and says so in the Header).
    pub enabled: bool,
    /// PII mode: e-mail addresses, phone numbers, IP addresses and personal-data keys.
    pub pii: bool,
    /// Per-detector switches by name (`jwt = false`). Unnamed detectors keep their default.
    pub detectors: BTreeMap<String, bool>,
    /// Extra sensitive keys for the key-value detector (matched like the built-in ones).
    pub extra_keys: Vec<String>,
    /// Extra header names whose values are masked.
    pub extra_headers: Vec<String>,
    /// Named regular expressions; each match (or its `secret` group) is masked.
    pub rules: Vec<RuleConfig>,
    /// Keep the built-in never-capture path list (shadow files, SSH keys, cloud credentials).
    pub builtin_never_capture: bool,
    /// Extra glob patterns of files whose contents are never captured.
    pub never_capture_paths: Vec<String>,
    /// What is captured per boundary.
    pub capture: CaptureConfig,
    /// Bounds on how much of a stream may wait for a decision.
    pub hold_back: HoldBackConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            pii: false,
            detectors: BTreeMap::new(),
            extra_keys: Vec::new(),
            extra_headers: Vec::new(),
            rules: Vec::new(),
            builtin_never_capture: true,
            never_capture_paths: Vec::new(),
            capture: CaptureConfig::default(),
            hold_back: HoldBackConfig::default(),
        }
    }
}

/// A user rule: `[[rules]] name = "ticket", pattern = "TKT-[0-9]{8}"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    pub pattern: String,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub file: CaptureMode,
    pub network: CaptureMode,
}

/// How much of a boundary's traffic is recorded.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    /// Payload bytes (redacted) and metadata.
    #[default]
    Full,
    /// Syscall, fd, sizes and results only; no payload bytes at all.
    Metadata,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HoldBackConfig {
    pub bytes: u64,
    pub millis: u64,
    /// Bytes one recording may hold waiting for decisions, over all its streams.
    pub memory: u64,
}

impl Default for HoldBackConfig {
    fn default() -> Self {
        HoldBackConfig {
            bytes: DEFAULT_HOLD_BACK_BYTES,
            millis: DEFAULT_HOLD_BACK_MILLIS,
            memory: DEFAULT_HOLD_BACK_MEMORY,
        }
    }
}

/// A configuration problem. Every message is one line, names the offending key or rule,
/// and never contains payload data.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("redaction config, line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("redaction config: unknown detector `{name}` in [detectors]; known: {known}")]
    UnknownDetector { name: String, known: String },
    #[error("redaction config: rule `{name}`: invalid pattern: {reason}")]
    BadRulePattern { name: String, reason: String },
    #[error("redaction config: rule name `{name}` {reason}")]
    BadRuleName { name: String, reason: &'static str },
    #[error("redaction config: never_capture_paths entry `{pattern}`: {reason}")]
    BadPath { pattern: String, reason: String },
    #[error("redaction config: {field} entry `{value}` {reason}")]
    BadEntry {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("redaction config: hold_back.{field} = {value} is outside {min}..={max}")]
    HoldBack {
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
}

impl Config {
    /// Parses the redaction section from TOML text (the table's contents, not a
    /// `[redaction]` header around them).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ConfigError::Parse {
                line,
                message: one_line(error.message()),
            }
        })
    }

    pub(crate) fn validate_hold_back(&self) -> Result<(), ConfigError> {
        let check = |field, value: u64, (min, max): (u64, u64)| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(ConfigError::HoldBack {
                    field,
                    value,
                    min,
                    max,
                })
            }
        };
        check("bytes", self.hold_back.bytes, HOLD_BACK_BYTES_RANGE)?;
        check("millis", self.hold_back.millis, HOLD_BACK_MILLIS_RANGE)?;
        check("memory", self.hold_back.memory, HOLD_BACK_MEMORY_RANGE)
    }
}

pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
