//! Retention: which recordings a sweep deletes, and deleting them. `plan` is pure (recordings,
//! policy, clock, free space in; deletions out); `sweep` scans a directory, plans, deletes
//! and audits. A recording that is held (`<id>.hold`, see `recorder hold`) or being written
//! (a segment flock-ed by its writer, `record::dir::is_locked`) is never deleted, and a file
//! that is not a segment is never touched.

use std::{
    collections::{BTreeMap, HashSet},
    fs::File,
    io::{self, Read},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use recorder_proto::v1::frame::Body;
use serde::Deserialize;
use serde_json::json;
use thiserror::Error;

use crate::{
    audit::{AuditError, AuditLog},
    record::{
        dir::{self, DirError, OutputDir},
        seal, segment, SegmentReader,
    },
};

/// File name extension of legal-hold files (`<recording id>.hold`).
pub const HOLD_EXTENSION: &str = "hold";

/// The `[retention]` table of the configuration file, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete recordings last written longer ago than this ("7d"; "off" keeps them).
    pub max_age: Option<String>,
    /// Delete the oldest recordings while all of them take more than this ("10GiB").
    pub max_total_size: Option<String>,
    /// Delete the oldest recordings while the filesystem has less free space than this.
    pub min_free: Option<String>,
    /// How often the daemon sweeps ("10m").
    pub sweep_interval: Option<String>,
}

#[derive(Debug, Error)]
pub enum RetentionError {
    #[error("[retention] {key} = \"{value}\": {reason}")]
    BadValue {
        key: &'static str,
        value: String,
        reason: String,
    },
}

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

impl RetentionConfig {
    /// The policy this table describes; defaults for what it leaves out.
    pub fn policy(&self) -> Result<Policy, RetentionError> {
        let defaults = Policy::default();
        let max_age = match self.max_age.as_deref() {
            None => defaults.max_age,
            Some("off") => None,
            Some(text) => Some(duration("max_age", text)?),
        };
        let interval = match self.sweep_interval.as_deref() {
            None => defaults.interval,
            Some(text) => duration("sweep_interval", text)?,
        };
        Ok(Policy {
            max_age,
            max_total_bytes: self
                .max_total_size
                .as_deref()
                .map(|t| size("max_total_size", t))
                .transpose()?,
            min_free_bytes: self
                .min_free
                .as_deref()
                .map(|t| size("min_free", t))
                .transpose()?,
            interval,
        })
    }
}

fn duration(key: &'static str, text: &str) -> Result<Duration, RetentionError> {
    let bad = |reason: String| RetentionError::BadValue {
        key,
        value: text.to_owned(),
        reason,
    };
    let value = humantime::parse_duration(text)
        .map_err(|e| bad(format!("{e}; write a duration like \"7d\" or \"10m\"")))?;
    if value.is_zero() {
        return Err(bad("must be longer than zero".to_owned()));
    }
    Ok(value)
}

fn size(key: &'static str, text: &str) -> Result<u64, RetentionError> {
    crate::cli::parse_size(text).map_err(|reason| RetentionError::BadValue {
        key,
        value: text.to_owned(),
        reason,
    })
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

/// Decides what to delete: everything older than max_age; then, oldest first, until the
/// total is at most max_total; then, oldest first, until free space (counting what the
/// deletions free) is at least min_free. `free_bytes`: free space now, if known.
pub fn plan(
    recordings: &[Recording],
    policy: &Policy,
    now: SystemTime,
    free_bytes: Option<u64>,
) -> Plan {
    let mut order: Vec<&Recording> = recordings.iter().collect();
    order.sort_by(|a, b| (a.last_written, &a.id).cmp(&(b.last_written, &b.id)));
    let mut planner = Planner {
        plan: Plan::default(),
        taken: HashSet::new(),
        total: recordings.iter().map(|r| r.bytes).sum(),
        freed: 0,
    };
    if let Some(max_age) = policy.max_age {
        for recording in &order {
            if now
                .duration_since(recording.last_written)
                .unwrap_or_default()
                > max_age
            {
                let reason = format!(
                    "older than {} (last written {})",
                    format_duration(max_age),
                    humantime::format_rfc3339_seconds(recording.last_written)
                );
                planner.take(recording, reason);
            }
        }
    }
    if let Some(max_total) = policy.max_total_bytes {
        for recording in &order {
            if planner.total <= max_total {
                break;
            }
            let reason = format!(
                "over max_total_size {} (recordings take {})",
                format_bytes(max_total),
                format_bytes(planner.total)
            );
            planner.take(recording, reason);
        }
        if planner.total > max_total {
            planner.plan.unmet.push(format!(
                "max_total_size {} not met: recordings still take {}",
                format_bytes(max_total),
                format_bytes(planner.total)
            ));
        }
    }
    if let (Some(min_free), Some(free)) = (policy.min_free_bytes, free_bytes) {
        for recording in &order {
            if free + planner.freed >= min_free {
                break;
            }
            let reason = format!(
                "free space {} below min_free {}",
                format_bytes(free + planner.freed),
                format_bytes(min_free)
            );
            planner.take(recording, reason);
        }
        if free + planner.freed < min_free {
            planner.plan.unmet.push(format!(
                "min_free {} not met: {} free after this sweep",
                format_bytes(min_free),
                format_bytes(free + planner.freed)
            ));
        }
    }
    planner.plan
}

struct Planner<'a> {
    plan: Plan,
    /// Ids already deleted or kept.
    taken: HashSet<&'a str>,
    total: u64,
    freed: u64,
}

impl<'a> Planner<'a> {
    fn take(&mut self, recording: &'a Recording, reason: String) {
        if !self.taken.insert(&recording.id) {
            return;
        }
        match recording.protection {
            Some(protection) => self.plan.kept.push(Kept {
                recording_id: recording.id.clone(),
                protection,
                bytes: recording.bytes,
                rule: reason,
            }),
            None => {
                self.total -= recording.bytes;
                self.freed += recording.bytes;
                self.plan.deletions.push(Deletion {
                    recording_id: recording.id.clone(),
                    reason,
                    segments: recording.segments.clone(),
                    bytes: recording.bytes,
                });
            }
        }
    }
}

#[derive(Debug, Error)]
pub enum SweepError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("cannot read directory {path}: {source}")]
    Scan { path: PathBuf, source: io::Error },
    #[error("cannot tell the free space of {path}: {source}")]
    FreeSpace { path: PathBuf, source: io::Error },
    #[error("cannot delete {path}: {source}")]
    Delete { path: PathBuf, source: io::Error },
    #[error("deleted recording {id} but could not audit it: {source}")]
    Audit {
        id: String,
        #[source]
        source: AuditError,
    },
}

/// What a sweep did (or, dry, would do).
#[derive(Debug, Default)]
pub struct SweepReport {
    pub plan: Plan,
    /// Recordings planned but left alone because they became held or active meanwhile.
    pub spared: Vec<String>,
    /// Bytes all recordings took before the sweep.
    pub total_bytes: u64,
    /// Free space on the filesystem before the sweep, when min_free asked for it.
    pub free_bytes: Option<u64>,
}

/// Runs one sweep of `dir`. Unless `dry_run`, deletes what `plan` decides and appends a
/// `sweep.delete` entry (id, reason, bytes, segments) to `audit` for each deletion.
pub fn sweep(
    dir: &Path,
    policy: &Policy,
    now: SystemTime,
    dry_run: bool,
    audit: Option<&AuditLog>,
) -> Result<SweepReport, SweepError> {
    let output = OutputDir::open_existing(dir)?;
    let recordings = scan(dir)?;
    let free_bytes = match policy.min_free_bytes {
        Some(_) => Some(free_space(dir).map_err(|source| SweepError::FreeSpace {
            path: dir.to_owned(),
            source,
        })?),
        None => None,
    };
    let mut report = SweepReport {
        plan: plan(&recordings, policy, now, free_bytes),
        total_bytes: recordings.iter().map(|r| r.bytes).sum(),
        free_bytes,
        ..SweepReport::default()
    };
    if dry_run {
        return Ok(report);
    }
    let mut done = Vec::new();
    for deletion in std::mem::take(&mut report.plan.deletions) {
        // The scan is a moment old: a writer may have started, or someone held it, since.
        if !still_deletable(dir, &deletion) {
            report.spared.push(deletion.recording_id);
            continue;
        }
        for path in &deletion.segments {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            output
                .remove_file(name)
                .map_err(|source| SweepError::Delete {
                    path: path.clone(),
                    source,
                })?;
        }
        if let Some(audit) = audit {
            let segments: Vec<String> = deletion
                .segments
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            audit
                .append(
                    "sweep.delete",
                    json!({ "id": deletion.recording_id, "reason": deletion.reason,
                            "bytes": deletion.bytes, "segments": segments }),
                )
                .map_err(|source| SweepError::Audit {
                    id: deletion.recording_id.clone(),
                    source,
                })?;
        }
        done.push(deletion);
    }
    let _ = output.sync();
    report.plan.deletions = done;
    Ok(report)
}

/// The recordings in `dir`: `.rcd` files that are segments (a plain header or a seal header
/// names their recording), grouped by recording id.
pub fn scan(dir: &Path) -> Result<Vec<Recording>, SweepError> {
    let scan_error = |source| SweepError::Scan {
        path: dir.to_owned(),
        source,
    };
    let mut by_id: BTreeMap<String, Recording> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(scan_error)? {
        let entry = entry.map_err(scan_error)?;
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        // Regular files only: a symlink named like a segment is not ours to follow or delete.
        if !meta.is_file() || path.extension().is_none_or(|e| e != segment::EXTENSION) {
            continue;
        }
        let Some(id) = recording_id(&path) else {
            tracing::debug!(path = %path.display(), "Not a segment; the sweeper leaves it alone.");
            continue;
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let recording = by_id.entry(id.clone()).or_insert_with(|| Recording {
            id,
            segments: Vec::new(),
            bytes: 0,
            last_written: SystemTime::UNIX_EPOCH,
            protection: None,
        });
        recording.segments.push(path);
        recording.bytes += meta.len();
        recording.last_written = recording.last_written.max(modified);
    }
    let mut recordings: Vec<Recording> = by_id.into_values().collect();
    for recording in &mut recordings {
        recording.segments.sort();
        recording.protection = protection(dir, &recording.id, &recording.segments);
    }
    Ok(recordings)
}

/// Held, active, or neither. A segment whose lock cannot be probed counts as active: the
/// sweeper errs on the side of keeping.
fn protection(dir: &Path, id: &str, segments: &[PathBuf]) -> Option<Protection> {
    if is_held(dir, id) {
        return Some(Protection::Held);
    }
    segments
        .iter()
        .any(|path| dir::is_locked(path).unwrap_or(true))
        .then_some(Protection::Active)
}

/// No hold, no locked segment, and no segment of it that the scan did not see.
fn still_deletable(dir: &Path, deletion: &Deletion) -> bool {
    if protection(dir, &deletion.recording_id, &deletion.segments).is_some() {
        return false;
    }
    let short_id = deletion
        .recording_id
        .get(..12)
        .unwrap_or(&deletion.recording_id);
    let infix = format!("-{short_id}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(Result::ok).all(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        !(name.contains(&infix) && name.ends_with(&format!(".{}", segment::EXTENSION)))
            || deletion.segments.contains(&entry.path())
    })
}

/// The recording id in a segment's plain Header frame or clear seal header; `None` for a
/// file that is not a segment (or names an id that is not plain hex).
pub fn recording_id(path: &Path) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let mut preamble = [0u8; segment::PREAMBLE_LEN];
    file.read_exact(&mut preamble).ok()?;
    let segment::Preamble::Valid { flags, .. } = segment::check_preamble(&preamble) else {
        return None;
    };
    let id = if flags & seal::FLAG_SEALED != 0 {
        seal::read_seal_header(&mut file).ok()??.recording_id
    } else {
        drop::<File>(file);
        match SegmentReader::open(path).ok()?.next_body() {
            Ok(Some(Body::Header(header))) => header.recording_id,
            _ => return None,
        }
    };
    // The id names hold files: only plain hex may reach a path.
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// `<dir>/<id>.hold`: its existence puts recording `id` under legal hold.
pub fn hold_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.{HOLD_EXTENSION}"))
}

pub fn is_held(dir: &Path, id: &str) -> bool {
    std::fs::symlink_metadata(hold_path(dir, id)).is_ok()
}

/// Bytes an unprivileged process may still write on the filesystem of `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: all-zero is a valid `statvfs`; statvfs fills it in.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: the path is NUL-terminated and `stat` writable.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
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
    use recorder_proto::v1::{Header, Trailer};

    use super::*;
    use crate::record::SegmentWriter;

    const DAY: Duration = Duration::from_secs(86400);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    fn fake(id: &str, days_old: u64, bytes: u64, protection: Option<Protection>) -> Recording {
        Recording {
            id: id.to_owned(),
            segments: vec![PathBuf::from(format!("{id}.rcd"))],
            bytes,
            last_written: now() - DAY * days_old as u32,
            protection,
        }
    }

    fn deleted(plan: &Plan) -> Vec<&str> {
        plan.deletions
            .iter()
            .map(|d| d.recording_id.as_str())
            .collect()
    }

    #[test]
    fn config_values_become_a_policy_or_a_one_line_error() {
        assert_eq!(
            RetentionConfig::default().policy().unwrap(),
            Policy::default()
        );
        let config = RetentionConfig {
            max_age: Some("30d".into()),
            max_total_size: Some("10GiB".into()),
            min_free: Some("1GiB".into()),
            sweep_interval: Some("1m".into()),
        };
        let policy = config.policy().unwrap();
        assert_eq!(policy.max_age, Some(DAY * 30));
        assert_eq!(policy.max_total_bytes, Some(10 << 30));
        assert_eq!(policy.min_free_bytes, Some(1 << 30));
        assert_eq!(policy.interval, Duration::from_secs(60));
        let off = RetentionConfig {
            max_age: Some("off".into()),
            ..RetentionConfig::default()
        };
        assert_eq!(off.policy().unwrap().max_age, None);
        let bad = RetentionConfig {
            max_total_size: Some("ten gigs".into()),
            ..RetentionConfig::default()
        };
        let error = bad.policy().unwrap_err().to_string();
        assert!(
            error.starts_with("[retention] max_total_size = \"ten gigs\": "),
            "{error}"
        );
        let bad = RetentionConfig {
            sweep_interval: Some("0s".into()),
            ..RetentionConfig::default()
        };
        assert!(bad
            .policy()
            .unwrap_err()
            .to_string()
            .contains("sweep_interval"));
    }

    #[test]
    fn plan_deletes_expired_then_oldest_over_quota_then_for_free_space() {
        let recordings = [
            fake("aa", 9, 100, None),
            fake("bb", 8, 100, Some(Protection::Held)),
            fake("cc", 3, 100, None),
            fake("dd", 2, 100, None),
            fake("ee", 1, 100, Some(Protection::Active)),
            fake("ff", 0, 100, None),
        ];
        let age_only = plan(&recordings, &Policy::default(), now(), None);
        assert_eq!(deleted(&age_only), ["aa"]);
        assert!(age_only.deletions[0]
            .reason
            .starts_with("older than 7d (last written "));
        assert_eq!(age_only.kept.len(), 1);
        assert_eq!(age_only.kept[0].recording_id, "bb");

        // 600 bytes, at most 350: aa by age, then cc and dd, oldest first (bb is held).
        let policy = Policy {
            max_total_bytes: Some(350),
            ..Policy::default()
        };
        let quota = plan(&recordings, &policy, now(), None);
        assert_eq!(deleted(&quota), ["aa", "cc", "dd"]);
        assert!(quota.deletions[1]
            .reason
            .starts_with("over max_total_size 350 B"));
        assert!(quota.unmet.is_empty());

        // 50 bytes free, at least 260: aa (+100), cc (+100), dd (+100) → 350.
        let policy = Policy {
            max_age: None,
            min_free_bytes: Some(260),
            ..Policy::default()
        };
        let free = plan(&recordings, &policy, now(), Some(50));
        assert_eq!(deleted(&free), ["aa", "cc", "dd"]);
        assert!(free.deletions[0]
            .reason
            .starts_with("free space 50 B below min_free 260 B"));

        // Nothing but held and active recordings left to delete: the quota stays unmet.
        let policy = Policy {
            max_total_bytes: Some(100),
            ..Policy::default()
        };
        let unmet = plan(&recordings, &policy, now(), None);
        assert_eq!(deleted(&unmet), ["aa", "cc", "dd", "ff"]);
        let kept: Vec<&str> = unmet.kept.iter().map(|k| k.recording_id.as_str()).collect();
        assert_eq!(kept, ["bb", "ee"]);
        assert_eq!(unmet.unmet.len(), 1, "{:?}", unmet.unmet);
    }

    /// Writes a finished one-segment recording `id` in `dir`, last written `days_old` ago.
    fn recording(dir: &OutputDir, id: &str, days_old: u64) -> PathBuf {
        let writer = open_recording(dir, id);
        let path = writer.finish(Trailer::default(), dir).unwrap();
        set_mtime(&path, SystemTime::now() - DAY * days_old as u32);
        path
    }

    /// A recording still being written: its writer holds the segment's lock.
    fn open_recording(dir: &OutputDir, id: &str) -> SegmentWriter {
        let header = Header {
            recording_id: id.to_owned(),
            ..Header::default()
        };
        let name = segment::file_name(SystemTime::now(), id, 0);
        SegmentWriter::create(dir, &name, header).unwrap()
    }

    fn set_mtime(path: &Path, at: SystemTime) {
        use std::os::unix::ffi::OsStrExt;
        let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        let time = libc::timespec {
            tv_sec: since.as_secs() as libc::time_t,
            tv_nsec: since.subsec_nanos() as libc::c_long,
        };
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: the path is NUL-terminated and the two timespecs live through the call.
        let rc =
            unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), [time, time].as_ptr(), 0) };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
    }

    #[test]
    fn sweep_deletes_expired_keeps_held_active_and_strangers_and_audits() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r");
        let dir = OutputDir::open_or_create(&path).unwrap();
        let old = recording(&dir, &"a1".repeat(16), 10);
        let held = recording(&dir, &"b2".repeat(16), 10);
        std::fs::write(hold_path(&path, &"b2".repeat(16)), b"{}").unwrap();
        let active = open_recording(&dir, &"c3".repeat(16));
        set_mtime(active.path(), SystemTime::now() - DAY * 10);
        let young = recording(&dir, &"d4".repeat(16), 1);
        let stranger = path.join("notes.rcd");
        std::fs::write(&stranger, b"not a segment").unwrap();
        set_mtime(&stranger, SystemTime::now() - DAY * 30);
        let audit = AuditLog::open(&crate::audit::path_in(&path)).unwrap();

        let dry = sweep(
            &path,
            &Policy::default(),
            SystemTime::now(),
            true,
            Some(&audit),
        )
        .unwrap();
        assert_eq!(deleted(&dry.plan), [&"a1".repeat(16)]);
        assert!(old.exists(), "a dry run deletes nothing");
        assert_eq!(
            crate::audit::verify(audit.path()).unwrap(),
            0,
            "and audits nothing"
        );

        let report = sweep(
            &path,
            &Policy::default(),
            SystemTime::now(),
            false,
            Some(&audit),
        )
        .unwrap();
        assert_eq!(deleted(&report.plan), [&"a1".repeat(16)]);
        assert_eq!(
            report.plan.deletions[0].segments,
            std::slice::from_ref(&old)
        );
        let mut kept: Vec<(String, Protection)> = report
            .plan
            .kept
            .iter()
            .map(|k| (k.recording_id.clone(), k.protection))
            .collect();
        kept.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            kept,
            [
                ("b2".repeat(16), Protection::Held),
                ("c3".repeat(16), Protection::Active)
            ]
        );
        assert!(!old.exists());
        for path in [&held, active.path(), &young, &stranger] {
            assert!(path.exists(), "{} was kept", path.display());
        }
        assert_eq!(crate::audit::verify(audit.path()).unwrap(), 1);
        let entry: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(audit.path()).unwrap()).unwrap();
        assert_eq!(entry["event"], "sweep.delete");
        assert_eq!(entry["id"], "a1".repeat(16));
        assert!(entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("older than 7d"));

        // Once its writer is done, the (old) active recording goes too.
        active.finish(Trailer::default(), &dir).unwrap();
        let finished = scan(&path).unwrap();
        let c3 = finished.iter().find(|r| r.id == "c3".repeat(16)).unwrap();
        assert_eq!(c3.protection, None);
    }

    #[test]
    fn sizes_and_durations_read_like_the_config() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(10 << 30), "10.0 GiB");
        assert_eq!(format_duration(DAY * 7), "7d");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
