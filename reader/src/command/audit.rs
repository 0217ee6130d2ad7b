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
    match audit::verify(path) {
        Ok(entries) => {
            writeln!(out, "audit log OK: {entries} entries")?;
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
