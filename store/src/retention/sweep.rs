use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde_json::json;
use thiserror::Error;

use super::{plan::plan, Deletion, Plan, Policy, Protection, Recording, HOLD_EXTENSION};
use crate::{
    audit::{AuditError, AuditLog},
    dir::{self, DirError, OutputDir},
    segment,
};

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
    for (path, meta) in dir::segment_files(dir).map_err(scan_error)? {
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

/// The recording id of a segment (`catalog::identify`); `None` for a file that is not one.
pub fn recording_id(path: &Path) -> Option<String> {
    crate::catalog::identify(path).map(|identity| identity.recording_id)
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
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use recorder_proto::v1::{Header, Trailer};

    use std::time::Duration;

    use super::*;
    use crate::SegmentWriter;

    const DAY: Duration = Duration::from_secs(86400);

    fn deleted(plan: &Plan) -> Vec<&str> {
        plan.deletions
            .iter()
            .map(|d| d.recording_id.as_str())
            .collect()
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
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(at).unwrap();
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
}
