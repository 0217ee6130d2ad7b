//! `recorder hold ID` / `recorder release ID`: legal hold. A hold is the file
//! `<dir>/<recording id>.hold` (created like a segment: O_EXCL | O_NOFOLLOW, the segments'
//! mode), holding JSON that says who held it, when and why. Sweeps keep a held recording.

use std::{io::Write, path::Path, time::SystemTime};

use serde_json::json;

use recorder_store::{
    audit::{self, AuditLog},
    catalog::CatalogError,
    retention::{self, HOLD_EXTENSION},
    OutputDir,
};

use super::CommandError;

pub fn hold(
    dir: &Path,
    id: &str,
    reason: Option<&str>,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let output = OutputDir::open_existing(dir)?;
    let ids: Vec<String> = retention::scan(dir)?.into_iter().map(|r| r.id).collect();
    let id = unique(dir, id, &ids)?;
    let path = retention::hold_path(dir, &id);
    let already = || CommandError::AlreadyHeld {
        id: id.clone(),
        path: path.clone(),
    };
    if retention::is_held(dir, &id) {
        return Err(already());
    }
    let name = format!("{id}.{HOLD_EXTENSION}");
    let mut file = match output.create_file(&name) {
        Ok(file) => file,
        Err(recorder_store::DirError::CreateFile { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            return Err(already())
        }
        Err(error) => return Err(error.into()),
    };
    let time = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let content = json!({ "id": id, "by": audit::invoker(), "time": time, "reason": reason });
    writeln!(file, "{content}").and_then(|()| file.sync_all())?;
    let log = AuditLog::open(&audit::path_in(dir))?;
    log.append("hold", json!({ "id": id, "reason": reason }))?;
    writeln!(
        out,
        "held {id}: sweeps keep it until `recorder release {id}`"
    )?;
    Ok(())
}

pub fn release(dir: &Path, id: &str, out: &mut impl Write) -> Result<(), CommandError> {
    let output = OutputDir::open_existing(dir)?;
    let held: Vec<String> = held_ids(dir)?;
    let id = match unique(dir, id, &held) {
        Ok(id) => id,
        // Not held: say so if the recording exists, else that the id is unknown.
        Err(CommandError::Catalog(CatalogError::UnknownId { .. })) => {
            let ids: Vec<String> = retention::scan(dir)?.into_iter().map(|r| r.id).collect();
            return Err(CommandError::NotHeld {
                id: unique(dir, id, &ids)?,
            });
        }
        Err(error) => return Err(error),
    };
    output.remove_file(&format!("{id}.{HOLD_EXTENSION}"))?;
    let log = AuditLog::open(&audit::path_in(dir))?;
    log.append("release", json!({ "id": id }))?;
    writeln!(out, "released {id}: sweeps may delete it again")?;
    Ok(())
}

/// Recording ids with a hold file in `dir`.
fn held_ids(dir: &Path) -> Result<Vec<String>, CommandError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CatalogError::Dir {
        path: dir.to_owned(),
        source,
    })?;
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let id = name.strip_suffix(&format!(".{HOLD_EXTENSION}"))?;
            id.bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then(|| id.to_owned())
        })
        .collect())
}

/// The one id in `ids` that starts with `prefix`.
fn unique(dir: &Path, prefix: &str, ids: &[String]) -> Result<String, CommandError> {
    let unknown = || CatalogError::UnknownId {
        id: prefix.to_owned(),
        dir: dir.to_owned(),
    };
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown().into());
    }
    let matches: Vec<&String> = ids.iter().filter(|id| id.starts_with(prefix)).collect();
    match matches[..] {
        [] => Err(unknown().into()),
        [one] => Ok(one.clone()),
        _ => Err(CatalogError::AmbiguousId {
            id: prefix.to_owned(),
            dir: dir.to_owned(),
            count: matches.len(),
        }
        .into()),
    }
}
