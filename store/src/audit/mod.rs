//! The audit log: `<recordings dir>/audit.log`, append-only JSON lines (0600), each entry
//! chained to the one before it by a SHA-256 hash, so `recorder audit verify` can name the
//! first entry that was changed or removed. It records who did what to recordings (started,
//! stopped, swept, held, read); never what a recording holds.
//!
//! Entry format (docs/FORMAT.md, "Audit log"): `{"seq":N,"time":"…","event":"…","by":{…},
//! <event fields>…,"prev":"<hex>","hash":"<hex>"}` on one line. `hash` is the SHA-256 (lower
//! case hex) of the line's bytes up to, not including, `,"hash":`, followed by `}`; `prev` is
//! the previous entry's `hash` (64 zeros for the first); `seq` counts from 1.

use std::{
    fs::File,
    io::{self, Write},
    os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use rustix::fs::FlockOperation;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Checking the chain.
mod verify;

pub use verify::{verify, verify_bytes, VerifyError};

pub const FILE_NAME: &str = "audit.log";

/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Keys every entry has; event fields may not use them.
const RESERVED: [&str; 6] = ["seq", "time", "event", "by", "prev", "hash"];

/// `,"hash":"` + 64 hex digits + `"}`: how every entry line ends.
const HASH_KEY: &str = ",\"hash\":\"";
const HASH_SUFFIX_LEN: usize = HASH_KEY.len() + 64 + 2;

/// The audit log of the recordings in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read audit log {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write audit log {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("audit log {path}: its last entry is unreadable, so a new one cannot be chained to it: run `recorder audit verify {path}`")]
    Damaged { path: PathBuf },
    #[error("audit event fields must be a JSON object without the keys seq, time, event, by, prev or hash (got `{key}`)")]
    BadFields { key: String },
}

/// An open audit log. Appends are serialised between threads (a mutex) and between
/// processes (flock on the file), so the daemon and `recorder` never fork the chain.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens the log at `path`, creating it (0600) if it does not exist.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        Self::open_with(path, true)
    }

    /// Opens the log at `path` only if it exists.
    pub fn open_existing(path: &Path) -> Result<AuditLog, AuditError> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, create: bool) -> Result<AuditLog, AuditError> {
        let error = |source| AuditError::Open {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(create)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(error)?;
        let meta = file.metadata().map_err(error)?;
        let ours = meta.uid() == rustix::process::geteuid().as_raw();
        // The umask may have cut the mode, or someone widened it: 0600 is the contract.
        if ours && meta.mode() & 0o7777 != 0o600 {
            rustix::fs::fchmod(&file, rustix::fs::Mode::from_raw_mode(0o600))
                .map_err(|errno| error(errno.into()))?;
        }
        Ok(AuditLog {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an `event` done by whoever runs this process (`invoker`), with `fields` (a
    /// JSON object; ids, reasons, counts — never recorded data).
    pub fn append(&self, event: &str, fields: Value) -> Result<(), AuditError> {
        self.append_by(event, invoker(), fields).map(|_| ())
    }

    /// Appends an `event` done `by` someone else (e.g. a control-socket peer); returns its seq.
    pub fn append_by(&self, event: &str, by: Value, fields: Value) -> Result<u64, AuditError> {
        let fields = match fields {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(AuditError::BadFields {
                    key: other.to_string(),
                })
            }
        };
        if let Some(key) = fields.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(AuditError::BadFields { key: key.clone() });
        }
        let file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _lock = FileLock::exclusive(&file).map_err(|source| self.write_error(source))?;
        let last = last_entry(&file).map_err(|source| AuditError::Read {
            path: self.path.clone(),
            source,
        })?;
        let (seq, prev, torn) = match last {
            Tail::Empty { torn } => (1, GENESIS.to_owned(), torn),
            Tail::Entry { seq, hash, torn } => (seq + 1, hash, torn),
            Tail::Unreadable => {
                return Err(AuditError::Damaged {
                    path: self.path.clone(),
                })
            }
        };
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut bytes = Vec::new();
        // A writer that died mid-line left a torn entry: end it, so only it fails to verify.
        if torn {
            bytes.push(b'\n');
        }
        bytes.extend(entry_line(seq, &time, event, &by, &fields, &prev).into_bytes());
        bytes.push(b'\n');
        let mut writer: &File = &file;
        writer
            .write_all(&bytes)
            .and_then(|()| file.sync_data())
            .map_err(|source| self.write_error(source))?;
        Ok(seq)
    }

    fn write_error(&self, source: io::Error) -> AuditError {
        AuditError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// Who runs this process: uid, user name, and SUDO_USER when set (who asked sudo).
pub fn invoker() -> Value {
    let uid = rustix::process::getuid().as_raw();
    let mut by = json!({ "uid": uid, "user": crate::accounts::user_name(uid) });
    if let Some(sudo_user) = std::env::var_os("SUDO_USER") {
        by["sudo_user"] = Value::String(sudo_user.to_string_lossy().into_owned());
    }
    by
}

/// One entry as a line (without the newline), its hash computed as the module doc says.
fn entry_line(
    seq: u64,
    time: &str,
    event: &str,
    by: &Value,
    fields: &Map<String, Value>,
    prev: &str,
) -> String {
    let mut line = format!(
        "{{\"seq\":{seq},\"time\":{},\"event\":{},\"by\":{by}",
        Value::from(time),
        Value::from(event)
    );
    for (key, value) in fields {
        line.push_str(&format!(",{}:{value}", Value::from(key.as_str())));
    }
    line.push_str(&format!(",\"prev\":\"{prev}\""));
    let hash = hash_of(line.as_bytes());
    line.push_str(&format!("{HASH_KEY}{hash}\"}}"));
    line
}

/// SHA-256 hex of `body` (an entry up to, not including, `,"hash":`) followed by `}`.
fn hash_of(body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(b"}");
    hex::encode(hasher.finalize())
}

/// Splits an entry line into the bytes its hash covers and the hash it claims.
fn split_hash(line: &[u8]) -> Option<(&[u8], &str)> {
    let body_len = line.len().checked_sub(HASH_SUFFIX_LEN)?;
    let (body, suffix) = line.split_at(body_len);
    let hash = suffix
        .strip_prefix(HASH_KEY.as_bytes())?
        .strip_suffix(b"\"}")?;
    let hash = std::str::from_utf8(hash).ok()?;
    hash.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then_some((body, hash))
}

/// An exclusive flock held until dropped.
struct FileLock<'a>(&'a File);

impl<'a> FileLock<'a> {
    fn exclusive(file: &'a File) -> io::Result<FileLock<'a>> {
        rustix::fs::flock(file, FlockOperation::LockExclusive)?;
        Ok(FileLock(file))
    }
}

impl Drop for FileLock<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0, FlockOperation::Unlock);
    }
}

/// What ends the log.
enum Tail {
    /// No complete entry; `torn`: bytes without a newline.
    Empty {
        torn: bool,
    },
    /// The last complete entry; `torn`: bytes without a newline follow it.
    Entry {
        seq: u64,
        hash: String,
        torn: bool,
    },
    Unreadable,
}

/// Reads back from the end of `file` to its last complete line.
fn last_entry(file: &File) -> io::Result<Tail> {
    let size = file.metadata()?.len();
    let mut window = 4096u64;
    loop {
        let start = size.saturating_sub(window);
        let mut bytes = vec![0; (size - start) as usize];
        file.read_exact_at(&mut bytes, start)?;
        let torn = bytes.last().is_some_and(|&b| b != b'\n');
        // The end of the last complete line, if this window holds one.
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            if start == 0 {
                // Nothing, or only a torn first entry: the chain starts afresh after it.
                return Ok(Tail::Empty {
                    torn: !bytes.is_empty(),
                });
            }
            window *= 4;
            continue;
        };
        let line_start = match bytes[..end].iter().rposition(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None if start == 0 => 0,
            None => {
                window *= 4;
                continue;
            }
        };
        let line = &bytes[line_start..end];
        return Ok(parse_tail(line, torn));
    }
}

fn parse_tail(line: &[u8], torn: bool) -> Tail {
    let Some((_, hash)) = split_hash(line) else {
        return Tail::Unreadable;
    };
    let seq = serde_json::from_slice::<Value>(line)
        .ok()
        .and_then(|entry| entry.get("seq").and_then(Value::as_u64));
    match seq {
        Some(seq) => Tail::Entry {
            seq,
            hash: hash.to_owned(),
            torn,
        },
        None => Tail::Unreadable,
    }
}

#[cfg(test)]
mod tests;
