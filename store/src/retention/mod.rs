//! Retention: which recordings a sweep deletes, and deleting them. [`plan`] is pure
//! (recordings, policy, clock, free space in; deletions out); [`sweep`] scans a directory,
//! plans, deletes and audits. A recording that is held (`<id>.hold`, see `recorder hold`) or
//! being written (a segment flock-ed by its writer, `dir::is_locked`) is never deleted, and
//! a file that is not a segment is never touched.

/// The pure decision.
mod plan;
/// The directory scanned, the plan carried out, each deletion audited.
mod sweep;

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

pub use plan::plan;
pub use sweep::{
    free_space, hold_path, is_held, recording_id, scan, sweep, SweepError, SweepReport,
};

/// File name extension of legal-hold files (`<recording id>.hold`).
pub const HOLD_EXTENSION: &str = "hold";

/// What a sweep keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub max_age: Option<Duration>,
    pub max_total_bytes: Option<u64>,
    pub min_free_bytes: Option<u64>,
    /// How often the daemon sweeps.
    pub interval: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_total_bytes: None,
            min_free_bytes: None,
            interval: Duration::from_secs(10 * 60),
        }
    }
}

/// Why a recording may not be deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// Under legal hold.
    Held,
    /// A writer still has one of its segments open.
    Active,
}

impl std::fmt::Display for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protection::Held => "held",
            Protection::Active => "being written",
        })
    }
}

/// A recording as the sweeper sees it.
#[derive(Clone, Debug)]
pub struct Recording {
    pub id: String,
    /// Its segment files, by name (which sorts by sequence).
    pub segments: Vec<PathBuf>,
    pub bytes: u64,
    /// The newest modification time of its segments.
    pub last_written: SystemTime,
    pub protection: Option<Protection>,
}

/// A recording a sweep deletes, and why.
#[derive(Clone, Debug)]
pub struct Deletion {
    pub recording_id: String,
    pub reason: String,
    pub segments: Vec<PathBuf>,
    pub bytes: u64,
}

/// A recording a rule would have deleted, kept because it is held or being written.
#[derive(Clone, Debug)]
pub struct Kept {
    pub recording_id: String,
    pub protection: Protection,
    pub bytes: u64,
    /// The rule it would have been deleted by.
    pub rule: String,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub deletions: Vec<Deletion>,
    pub kept: Vec<Kept>,
    /// Quotas still not met after every deletion allowed (held or active recordings, or
    /// space used by something else).
    pub unmet: Vec<String>,
}

/// `1536` → "1.5 KiB".
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration as a config would say it: "7d", "12h", "10m", "90s".
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{}ms", duration.as_millis()),
        _ if secs.is_multiple_of(86400) => format!("{}d", secs / 86400),
        _ if secs.is_multiple_of(3600) => format!("{}h", secs / 3600),
        _ if secs.is_multiple_of(60) => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_the_config() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(10 << 30), "10.0 GiB");
        assert_eq!(format_duration(Duration::from_secs(7 * 86400)), "7d");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
