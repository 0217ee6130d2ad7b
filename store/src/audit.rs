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

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::PermissionsExt, sync::Arc};

    use super::*;

    fn log_with(entries: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let log = AuditLog::open(&path).unwrap();
        for i in 0..entries {
            log.append(
                "hold",
                json!({ "id": format!("{i:032x}"), "reason": "case 7" }),
            )
            .unwrap();
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    fn broken_line(path: &Path) -> (usize, String) {
        match verify(path) {
            Err(VerifyError::Broken { line, problem, .. }) => (line, problem),
            other => panic!("expected a broken log, got {other:?}"),
        }
    }

    #[test]
    fn entries_chain_and_verify() {
        let (_dir, path) = log_with(4);
        assert_eq!(verify(&path).unwrap(), 4);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let entries: Vec<Value> = lines(&path)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(entries[0]["seq"], 1);
        assert_eq!(entries[0]["prev"], GENESIS);
        assert_eq!(entries[1]["prev"], entries[0]["hash"]);
        assert_eq!(entries[3]["event"], "hold");
        assert_eq!(entries[3]["reason"], "case 7");
        assert_eq!(entries[3]["by"]["uid"], rustix::process::getuid().as_raw());
        // The hash is over the line without its hash member, as docs/FORMAT.md says.
        let line = &lines(&path)[2];
        let cut = line.find(",\"hash\":").unwrap();
        let digest = hex::encode(Sha256::digest(format!("{}}}", &line[..cut])));
        assert_eq!(entries[2]["hash"], digest);
    }

    #[test]
    fn an_edited_entry_is_named_itself() {
        let (_dir, path) = log_with(4);
        let mut text = lines(&path);
        text[1] = text[1].replace("case 7", "case 8");
        write_lines(&path, &text);
        let (line, problem) = broken_line(&path);
        assert_eq!(line, 2);
        assert!(problem.contains("was changed"), "{problem}");
    }

    #[test]
    fn a_removed_entry_is_named_by_the_one_after_it() {
        let (_dir, path) = log_with(4);
        let mut text = lines(&path);
        text.remove(1);
        write_lines(&path, &text);
        let (line, problem) = broken_line(&path);
        assert_eq!(line, 2);
        assert!(problem.contains("seq 3 where 2 was expected"), "{problem}");
        // Removing the first entry breaks the first line.
        let (_dir, path) = log_with(2);
        let text = lines(&path);
        write_lines(&path, &text[1..]);
        assert_eq!(broken_line(&path).0, 1);
    }

    #[test]
    fn a_relinked_entry_with_a_fixed_hash_breaks_the_next_link() {
        let (_dir, path) = log_with(3);
        let mut text = lines(&path);
        let entry: Value = serde_json::from_str(&text[1]).unwrap();
        let fields: Map<String, Value> = [("id".to_owned(), json!("forged"))].into_iter().collect();
        text[1] = entry_line(
            2,
            entry["time"].as_str().unwrap(),
            "hold",
            &entry["by"],
            &fields,
            entry["prev"].as_str().unwrap(),
        );
        write_lines(&path, &text);
        let (line, problem) = broken_line(&path);
        assert_eq!(line, 3);
        assert!(problem.contains("prev"), "{problem}");
    }

    #[test]
    fn a_torn_tail_is_reported_and_the_chain_goes_on_after_it() {
        let (_dir, path) = log_with(2);
        let mut text = std::fs::read(&path).unwrap();
        text.extend_from_slice(b"{\"seq\":3,\"ti");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(broken_line(&path).0, 3);
        AuditLog::open(&path)
            .unwrap()
            .append("release", json!({}))
            .unwrap();
        let all = lines(&path);
        assert_eq!(all.len(), 4);
        let last: Value = serde_json::from_str(&all[3]).unwrap();
        assert_eq!(last["seq"], 3, "chained to the last complete entry");
        assert_eq!(broken_line(&path).0, 3, "only the torn entry is broken");
    }

    #[test]
    fn concurrent_appends_keep_one_chain() {
        let (_dir, path) = log_with(0);
        let shared = Arc::new(AuditLog::open(&path).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    // Half share one open log (the mutex), half open their own (the flock).
                    let own = AuditLog::open(&path).unwrap();
                    let log = if t % 2 == 0 { &*shared } else { &own };
                    for i in 0..25 {
                        log.append("read", json!({ "thread": t, "i": i })).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(verify(&path).unwrap(), 200);
    }

    #[test]
    fn reserved_keys_and_symlinks_are_refused() {
        let (dir, path) = log_with(1);
        let log = AuditLog::open(&path).unwrap();
        assert!(matches!(
            log.append("hold", json!({ "seq": 9 })),
            Err(AuditError::BadFields { .. })
        ));
        let link = dir.path().join("link.log");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            AuditLog::open(&link),
            Err(AuditError::Open { .. })
        ));
        assert!(AuditLog::open_existing(&dir.path().join("none.log")).is_err());
        assert!(!dir.path().join("none.log").exists());
        assert_eq!(verify(&path).unwrap(), 1);
    }

    #[test]
    fn the_invoker_has_a_uid_and_user() {
        let by = invoker();
        assert!(by["uid"].is_u64());
        assert!(by.get("user").is_some());
    }
}
