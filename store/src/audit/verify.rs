//! `recorder audit verify`: every entry's hash, seq and link to the one before checked.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde_json::Value;
use thiserror::Error;

use super::{hash_of, split_hash, GENESIS};

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("cannot read audit log {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("audit log {path} is broken at line {line}{}: {problem}", seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
    Broken {
        path: PathBuf,
        line: usize,
        seq: Option<u64>,
        problem: String,
    },
}

/// Checks every entry's hash, seq and link to the one before; returns how many entries
/// there are, or the first broken one. (Entries removed from the end leave no trace in the
/// chain itself.)
pub fn verify(path: &Path) -> Result<u64, VerifyError> {
    let bytes = std::fs::read(path).map_err(|source| VerifyError::Read {
        path: path.to_owned(),
        source,
    })?;
    verify_bytes(path, &bytes)
}

/// [`verify`] of a log's bytes (pieces shipped to a bucket, joined); `path` names it.
pub fn verify_bytes(path: &Path, bytes: &[u8]) -> Result<u64, VerifyError> {
    let mut previous = GENESIS.to_owned();
    let mut entries = 0u64;
    let mut lines = bytes.split(|&b| b == b'\n').peekable();
    let mut number = 0;
    while let Some(line) = lines.next() {
        number += 1;
        let last = lines.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        let broken = |seq, problem: &str| VerifyError::Broken {
            path: path.to_owned(),
            line: number,
            seq,
            problem: problem.to_owned(),
        };
        let expected = entries + 1;
        let (seq, hash) =
            check_line(line, expected, &previous, last).map_err(|(seq, p)| broken(seq, &p))?;
        debug_assert_eq!(seq, expected);
        previous = hash;
        entries += 1;
    }
    Ok(entries)
}

/// Checks one line against the seq and hash expected of it: its (seq, hash), or
/// (seq if known, what is wrong).
fn check_line(
    line: &[u8],
    expected_seq: u64,
    previous_hash: &str,
    last: bool,
) -> Result<(u64, String), (Option<u64>, String)> {
    let entry: Option<Value> = serde_json::from_slice(line).ok();
    let seq = entry
        .as_ref()
        .and_then(|e| e.get("seq"))
        .and_then(Value::as_u64);
    if last {
        return Err((
            seq,
            "the entry is torn (no newline at its end): a writer stopped mid-entry".to_owned(),
        ));
    }
    let Some((body, hash)) = split_hash(line) else {
        return Err((seq, "the entry does not end with its hash".to_owned()));
    };
    if hash_of(body) != hash {
        return Err((
            seq,
            "its hash does not match its contents: the entry was changed".to_owned(),
        ));
    }
    let Some(entry) = entry else {
        return Err((None, "not a JSON object".to_owned()));
    };
    let Some(seq) = seq else {
        return Err((None, "no seq".to_owned()));
    };
    if seq != expected_seq {
        return Err((
            Some(seq),
            format!("seq {seq} where {expected_seq} was expected: an entry before it was removed or reordered"),
        ));
    }
    if entry.get("prev").and_then(Value::as_str) != Some(previous_hash) {
        return Err((
            Some(seq),
            "its prev is not the hash of the entry before it: an entry before it was removed or changed".to_owned(),
        ));
    }
    Ok((seq, hash.to_owned()))
}
