//! Object keys. A segment's key is `[upload] prefix` filled in, then the segment's file name
//! (`{host}/{date}/{recording_id}/20261204T150000Z-3f2a…-0000.rcd` by default); a piece
//! of the audit log is `[upload] audit_prefix` filled in, then its first and last entry's
//! seq (`{host}/audit/000000000001-000000000042.jsonl`). Both are derived from what they
//! hold, never from when they were uploaded, so a repeated upload lands on the same key.

use std::time::{Duration, UNIX_EPOCH};

/// The host's name as keys carry it: what `uname -n` says, with anything but letters,
/// digits, `.`, `_` and `-` made `_`.
pub fn host_name() -> String {
    let name = rustix::system::uname();
    let name = name.nodename().to_string_lossy();
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => "unnamed-host".to_owned(),
        name => name.to_owned(),
    }
}

/// `YYYY-MM-DD` (UTC) of a wall-clock time in ns since the epoch.
pub fn utc_date(realtime_ns: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_nanos(realtime_ns.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()[..10].to_owned()
}

/// The key of segment file `file_name` of recording `recording_id`.
pub fn segment_key(
    prefix: &str,
    host: &str,
    recording_id: &str,
    started_realtime_ns: i64,
    file_name: &str,
) -> String {
    let folder = prefix
        .replace("{host}", host)
        .replace("{date}", &utc_date(started_realtime_ns))
        .replace("{recording_id}", recording_id);
    join(&folder, file_name)
}

/// The folder the audit log's pieces go to.
pub fn audit_folder(audit_prefix: &str, host: &str) -> String {
    audit_prefix.replace("{host}", host)
}

/// The key of the audit log piece holding entries `first..=last`.
pub fn audit_piece_key(folder: &str, first: u64, last: u64) -> String {
    join(folder, &format!("{first:012}-{last:012}.jsonl"))
}

/// The seqs a piece's key names: `(first, last)`.
pub fn audit_piece_range(key: &str) -> Option<(u64, u64)> {
    let name = key.rsplit('/').next()?.strip_suffix(".jsonl")?;
    let (first, last) = name.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

fn join(folder: &str, name: &str) -> String {
    let folder = folder.trim_matches('/');
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_what_they_hold() {
        // 2026-12-04T15:00:00Z
        let started = 1_796_396_400_000_000_000;
        assert_eq!(utc_date(started), "2026-12-04");
        assert_eq!(
            segment_key(
                "{host}/{date}/{recording_id}/",
                "stage-1",
                "3f2a",
                started,
                "20261204T150000Z-3f2a-0000.rcd"
            ),
            "stage-1/2026-12-04/3f2a/20261204T150000Z-3f2a-0000.rcd"
        );
        let folder = audit_folder("{host}/audit/", "stage-1");
        let key = audit_piece_key(&folder, 1, 42);
        assert_eq!(key, "stage-1/audit/000000000001-000000000042.jsonl");
        assert_eq!(audit_piece_range(&key), Some((1, 42)));
        assert_eq!(audit_piece_range("stage-1/audit/notes.txt"), None);
    }

    #[test]
    fn host_names_are_safe_in_keys() {
        let host = host_name();
        assert!(!host.is_empty());
        assert!(host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
    }
}
