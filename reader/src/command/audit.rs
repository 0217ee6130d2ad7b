//! `recorder audit verify`, and the `read` / `export` entries `recorder` leaves in a
//! recordings directory's audit log when it can write to it.

use std::{io::Write, path::Path, process::ExitCode};

use serde_json::json;

use recorder_store::{
    audit::{self, AuditLog, VerifyError},
    catalog::RecordingSummary,
};

use super::{CommandError, EXIT_CORRUPT};

pub fn verify(path: &Path, out: &mut impl Write) -> Result<ExitCode, CommandError> {
    if crate::remote::is_remote(path) {
        return verify_shipped(&path.to_string_lossy(), out);
    }
    report(audit::verify(path), "audit log", out)
}

/// `recorder audit verify s3://bucket/host/audit/`: the pieces a service shipped, checked
/// for gaps and overlaps between them, then joined and checked as one chain.
fn verify_shipped(address: &str, out: &mut impl Write) -> Result<ExitCode, CommandError> {
    use recorder_objects::{layout, Address, Remote};
    let parsed = Address::parse(address).map_err(CommandError::Remote)?;
    let bucket = Remote::for_bucket(&parsed.bucket).map_err(CommandError::Remote)?;
    let mut pieces: Vec<(u64, u64, String)> = bucket
        .list(&parsed.key)
        .map_err(CommandError::Remote)?
        .into_iter()
        .filter_map(|(key, _)| layout::audit_piece_range(&key).map(|(a, b)| (a, b, key)))
        .collect();
    pieces.sort();
    if pieces.is_empty() {
        return Err(CommandError::Remote(format!(
            "no audit log pieces (NNN-NNN.jsonl) under {address}"
        )));
    }
    let ranges: Vec<(u64, u64)> = pieces.iter().map(|(a, b, _)| (*a, *b)).collect();
    let problems = piece_problems(&ranges);
    for problem in &problems {
        writeln!(out, "{problem}")?;
    }
    if !problems.is_empty() {
        return Ok(ExitCode::from(EXIT_CORRUPT));
    }
    let mut joined = Vec::new();
    for (_, _, key) in &pieces {
        joined.extend(bucket.get(key).map_err(CommandError::Remote)?);
    }
    let name = format!("shipped audit log {address} ({} pieces)", pieces.len());
    report(audit::verify_bytes(Path::new(address), &joined), &name, out)
}

/// Gaps and overlaps between shipped pieces `(first, last)`, sorted; the log starts at 1.
fn piece_problems(pieces: &[(u64, u64)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut next = 1;
    for &(first, last) in pieces {
        if first > next {
            problems.push(format!(
                "gap: entries {next}-{} were not shipped (the next piece starts at {first})",
                first - 1
            ));
        } else if first < next {
            problems.push(format!(
                "overlap: entries {first}-{} were shipped twice (the local log was rewritten)",
                (next - 1).min(last)
            ));
        }
        next = next.max(last.saturating_add(1));
    }
    problems
}

fn report(
    verified: Result<u64, VerifyError>,
    name: &str,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    match verified {
        Ok(entries) => {
            writeln!(out, "{name} OK: {entries} entries")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(broken @ VerifyError::Broken { .. }) => {
            writeln!(out, "{broken}")?;
            Ok(ExitCode::from(EXIT_CORRUPT))
        }
        Err(error) => Err(error.into()),
    }
}

/// Appends `event` (`read` or `export`) for `recording` to its directory's audit log, if
/// there is one this user may write; otherwise reading goes on unaudited.
pub fn note_access(recording: &RecordingSummary, event: &str) {
    if crate::remote::is_remote(&recording.segments[0].path) {
        // The bucket's own access logs say who read an object.
        return;
    }
    let dir = recording.segments[0]
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let path = audit::path_in(dir);
    let appended = AuditLog::open_existing(&path)
        .and_then(|log| log.append(event, json!({ "id": recording.id })));
    if let Err(error) = appended {
        tracing::debug!(%error, "No audit entry for this read.");
    }
}

#[cfg(test)]
mod tests {
    use super::piece_problems;

    #[test]
    fn gaps_and_overlaps_between_shipped_pieces_are_named() {
        assert!(piece_problems(&[(1, 4), (5, 9), (10, 10)]).is_empty());
        assert_eq!(
            piece_problems(&[(1, 4), (8, 9)]),
            ["gap: entries 5-7 were not shipped (the next piece starts at 8)"]
        );
        assert_eq!(
            piece_problems(&[(3, 4)]),
            ["gap: entries 1-2 were not shipped (the next piece starts at 3)"]
        );
        assert_eq!(
            piece_problems(&[(1, 5), (4, 8)]),
            ["overlap: entries 4-5 were shipped twice (the local log was rewritten)"]
        );
    }
}
