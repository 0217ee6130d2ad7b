//! recorderd's redaction engine: finds secrets and personal data in the bytes a process
//! exchanges with files and sockets, and masks them before anything is serialized.
//!
//! ```text
//! Config (TOML) ──Policy::new──▶ Policy (compiled, shared by Arc)
//!     ├─ redact_buffer(&[u8])            one complete buffer (argv, env, redact-test)
//!     └─ StreamRedactor::new(policy)     one direction of one stream:
//!            push(piece) → framing (PostgreSQL, Redis, HTTP request bodies)
//!                        → text scan at each line/message end or forced cut
//!            take(ticket) → the piece, masked, with (rule, offset, length) annotations
//! ```
//!
//! Masks replace bytes one for one with [`MASK_BYTE`], so lengths and offsets never
//! change. Annotations name the rule and the range, never anything derived from the
//! secret. When a hold-back bound is hit, the engine fails closed: whatever could still
//! be part of a secret is masked, and so is its continuation when it arrives.
//! `docs/REDACTION.md` lists every detector.

/// `[redaction]` as written in TOML, checked.
mod config;
/// The built-in detectors: names, PII flags.
mod detector;
/// Which key and header names are sensitive.
mod keys;
/// Files whose contents are never captured.
mod paths;
/// The compiled policy every stream shares.
mod policy;
/// One direction of one stream: pieces in, decided pieces out, hold-back bounds.
mod stream;
/// PostgreSQL, Redis and HTTP framing followed byte by byte.
mod framing;
/// Text scanning: what to mask in a run of bytes.
mod scan;

use std::sync::Arc;

pub use config::{
    CaptureConfig, CaptureMode, Config, ConfigError, HoldBackConfig, RuleConfig,
    DEFAULT_HOLD_BACK_BYTES, DEFAULT_HOLD_BACK_MILLIS,
};
pub use policy::{Boundary, HoldBack, Policy, PolicySummary};
pub use stream::{StreamRedactor, Ticket};

/// The byte that replaces every masked byte (line breaks inside a masked text region are
/// kept, so the text keeps its line structure).
pub const MASK_BYTE: u8 = b'*';

/// A piece of payload after redaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redacted {
    /// Same length as what was pushed.
    pub bytes: Vec<u8>,
    /// Masked ranges, sorted, non-overlapping.
    pub redactions: Vec<Redaction>,
}

/// One masked range of a piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    /// Detector or user rule name (`http-header`, `jwt`, `fail-closed`, ...).
    pub rule: Arc<str>,
    /// Offset within the piece's own payload.
    pub offset: u32,
    pub length: u32,
}

/// Every built-in detector name, in the order [`PolicySummary::detectors`] uses.
pub fn detector_names() -> Vec<&'static str> {
    detector::Detector::ALL.iter().map(|d| d.name()).collect()
}

/// Names of the detectors that run only in PII mode.
pub fn pii_detector_names() -> Vec<&'static str> {
    detector::Detector::ALL
        .iter()
        .filter(|d| d.pii())
        .map(|d| d.name())
        .collect()
}
