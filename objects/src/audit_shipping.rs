//! The audit log's new lines, shipped as objects of their own: each piece holds whole
//! entries, named by the seqs of its first and last (`layout::audit_piece_key`), and is
//! written only if its key is free (If-None-Match), so the bucket's copy of an entry is never
//! replaced. What has been shipped is kept in `.upload/audit.json`; a log found shorter
//! than that was cut from its end, which is said, audited and shipped from its new start.

use std::{
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use object_store::{
    aws::AmazonS3, path::Path as Key, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
};
use recorder_control::UploadStatus;
use recorder_store::audit::AuditLog;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;

use crate::{describe, layout, queue::write_atomically};

/// The most bytes one piece holds; a longer backlog goes up in several.
const MAX_PIECE_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipped {
    /// Bytes of the log shipped.
    pub offset: u64,
    /// Entries shipped.
    pub entries: u64,
    /// The piece being shipped, saved before its PUT: after a crash the same piece (the
    /// same bytes to the same key) goes again before anything new, so pieces never overlap.
    #[serde(default)]
    pub pending: Option<Pending>,
}

/// A piece whose PUT may or may not have happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Its last entry's seq.
    pub last: u64,
    /// The log's byte offset at its end.
    pub end: u64,
}

/// What one round found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Pieces written, as (first, last) seqs.
    pub pieces: Vec<(u64, u64)>,
    /// The log was shorter than what had been shipped: (shipped bytes, bytes now).
    pub cut: Option<(u64, u64)>,
    /// Pieces whose key already held other bytes: (first, last).
    pub conflicts: Vec<(u64, u64)>,
}

pub struct AuditShipping {
    log: PathBuf,
    state_path: PathBuf,
    folder: String,
    shipped: Shipped,
}

impl AuditShipping {
    /// Ships the log at `log` to `folder`, remembering progress in `state_path`.
    pub fn new(log: &Path, state_path: &Path, folder: String) -> AuditShipping {
        let shipped = std::fs::read(state_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        AuditShipping {
            log: log.to_owned(),
            state_path: state_path.to_owned(),
            folder,
            shipped,
        }
    }

    pub fn shipped(&self) -> Shipped {
        self.shipped
    }

    /// Ships every complete entry not shipped yet.
    pub async fn ship(&mut self, store: &dyn ObjectStore) -> Result<Round, String> {
        let mut round = Round::default();
        loop {
            let (bytes, cut) = read_from(&self.log, self.shipped.offset)
                .map_err(|error| format!("cannot read {}: {error}", self.log.display()))?;
            if let Some(now) = cut {
                round.cut = Some((self.shipped.offset, now));
                self.shipped = Shipped::default();
                continue;
            }
            let (bytes, last) = match self.shipped.pending {
                Some(pending)
                    if pending.end > self.shipped.offset
                        && pending.end - self.shipped.offset <= bytes.len() as u64 =>
                {
                    let len = (pending.end - self.shipped.offset) as usize;
                    (bytes[..len].to_vec(), pending.last)
                }
                _ => {
                    let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
                    if lines == 0 {
                        return Ok(round);
                    }
                    (bytes, self.shipped.entries + lines)
                }
            };
            let first = self.shipped.entries + 1;
            self.shipped.pending = Some(Pending {
                last,
                end: self.shipped.offset + bytes.len() as u64,
            });
            self.save()?;
            let key = layout::audit_piece_key(&self.folder, first, last);
            let put = store
                .put_opts(
                    &Key::from(key.as_str()),
                    bytes.clone().into(),
                    PutOptions {
                        mode: PutMode::Create,
                        tags: crate::transfer::kind_tags("audit"),
                        ..PutOptions::default()
                    },
                )
                .await;
            match put {
                Ok(_) => round.pieces.push((first, last)),
                Err(object_store::Error::AlreadyExists { .. })
                | Err(object_store::Error::Precondition { .. }) => {
                    // A piece shipped just before a crash is the same bytes; anything else
                    // means the log was rewritten, and the bucket keeps the first version.
                    let held = match store.get(&Key::from(key.as_str())).await {
                        Ok(got) => got.bytes().await,
                        Err(error) => Err(error),
                    };
                    match held {
                        Ok(held) if held.as_ref() == bytes.as_slice() => {
                            round.pieces.push((first, last))
                        }
                        Ok(_) => round.conflicts.push((first, last)),
                        Err(error) => return Err(describe(&error)),
                    }
                }
                Err(error) => return Err(describe(&error)),
            }
            self.shipped = Shipped {
                offset: self.shipped.offset + bytes.len() as u64,
                entries: last,
                pending: None,
            };
            self.save()?;
        }
    }

    fn save(&self) -> Result<(), String> {
        let state = serde_json::to_vec(&self.shipped).map_err(|e| e.to_string())?;
        write_atomically(&self.state_path, &state)
            .map_err(|error| format!("cannot save {}: {error}", self.state_path.display()))
    }
}

/// How `status.last_error` says a round failed (and, once one succeeds, that it is over).
const FAILED: &str = "shipping the audit log failed";

/// Ships the log every `interval` until `stop`, then once more; what a round finds goes
/// to stderr, the audit log and `status`. A failure is said and audited
/// (`upload.audit_failed`) once while it stays the same; the next round tries again.
pub async fn run(
    mut shipping: AuditShipping,
    store: Arc<AmazonS3>,
    audit: Arc<AuditLog>,
    status: Arc<Mutex<UploadStatus>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_failure: Option<String> = None;
    loop {
        let stopping = *stop.borrow();
        let round = shipping.ship(&store).await;
        status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .audit_shipped_seq = shipping.shipped().entries;
        match round {
            Ok(round) => {
                last_failure = None;
                report(&round, &audit);
                let mut status = status.lock().unwrap_or_else(|e| e.into_inner());
                if status
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains(FAILED))
                {
                    status.last_error = None;
                }
            }
            Err(error) => {
                if last_failure.as_deref() != Some(&error) {
                    eprintln!(
                        "recorderd: {FAILED}, retrying in {}s: {error}",
                        interval.as_secs()
                    );
                    append(&audit, "upload.audit_failed", json!({ "error": error }));
                    last_failure = Some(error.clone());
                }
                status.lock().unwrap_or_else(|e| e.into_inner()).last_error = Some(format!(
                    "{} {FAILED}: {error}",
                    humantime::format_rfc3339_seconds(SystemTime::now())
                ));
            }
        }
        if stopping {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Says what a round found that someone must know: a cut log, a rewritten one.
fn report(round: &Round, audit: &AuditLog) {
    let append = |event, fields| append(audit, event, fields);
    if let Some((shipped, now)) = round.cut {
        eprintln!("recorderd: the audit log is {now} bytes, shorter than the {shipped} already shipped: it was cut; shipping it from its start");
        append(
            "upload.audit_cut",
            json!({ "shipped_bytes": shipped, "log_bytes": now }),
        );
    }
    for (first, last) in &round.conflicts {
        eprintln!("recorderd: the bucket already holds audit entries {first}-{last} with other contents: the local audit log was rewritten");
        append(
            "upload.audit_conflict",
            json!({ "first_seq": first, "last_seq": last }),
        );
    }
}

fn append(audit: &AuditLog, event: &str, fields: serde_json::Value) {
    if let Err(error) = audit.append(event, fields) {
        tracing::error!(%error, %event, "an upload event could not be audited");
    }
}

/// The complete lines of `log` from `offset` (at most `MAX_PIECE_BYTES` of them), or the
/// log's length when it is shorter than `offset`.
fn read_from(log: &Path, offset: u64) -> std::io::Result<(Vec<u8>, Option<u64>)> {
    let mut file = std::fs::File::open(log)?;
    let len = file.metadata()?.len();
    if len < offset {
        return Ok((Vec::new(), Some(len)));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(MAX_PIECE_BYTES).read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(complete);
    Ok((bytes, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_lines_are_read_and_a_cut_log_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        std::fs::write(&log, b"{\"seq\":1}\n{\"seq\":2}\n{\"se").unwrap();
        let (bytes, cut) = read_from(&log, 0).unwrap();
        assert_eq!(bytes, b"{\"seq\":1}\n{\"seq\":2}\n");
        assert_eq!(cut, None);
        let (bytes, _) = read_from(&log, 10).unwrap();
        assert_eq!(bytes, b"{\"seq\":2}\n");
        assert_eq!(read_from(&log, 400).unwrap(), (Vec::new(), Some(24)));
    }

    fn line(seq: u64, text: &str) -> String {
        format!("{{\"seq\":{seq},\"x\":\"{text}\"}}\n")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn pieces_follow_each_other_survive_a_repeat_and_a_cut_log_is_said() {
        use object_store::memory::InMemory;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let state = dir.path().join("audit.json");
        let store = InMemory::new();
        let shipping = |state: &Path| AuditShipping::new(&log, state, "h/audit".to_owned());

        std::fs::write(&log, line(1, "a") + &line(2, "b")).unwrap();
        let mut first = shipping(&state);
        assert_eq!(first.ship(&store).await.unwrap().pieces, vec![(1, 2)]);
        std::fs::write(&log, line(1, "a") + &line(2, "b") + &line(3, "c")).unwrap();
        assert_eq!(first.ship(&store).await.unwrap().pieces, vec![(3, 3)]);
        assert_eq!(first.ship(&store).await.unwrap(), Round::default());
        let shipped = Shipped {
            offset: 54,
            entries: 3,
            pending: None,
        };
        assert_eq!(shipping(&state).shipped(), shipped);

        // A crash after piece 3-3's PUT, before its end was saved; the log grew meanwhile.
        // The same piece goes again (already there, the same bytes), then the new entry.
        let crashed = Shipped {
            offset: 36,
            entries: 2,
            pending: Some(Pending { last: 3, end: 54 }),
        };
        let lost = dir.path().join("crashed.json");
        std::fs::write(&lost, serde_json::to_vec(&crashed).unwrap()).unwrap();
        let four = line(1, "a") + &line(2, "b") + &line(3, "c") + &line(4, "d");
        std::fs::write(&log, &four).unwrap();
        let round = shipping(&lost).ship(&store).await.unwrap();
        assert_eq!(round.pieces, vec![(3, 3), (4, 4)]);
        assert!(round.conflicts.is_empty());
        std::fs::write(&log, line(1, "a") + &line(2, "b") + &line(3, "c")).unwrap();

        // Cut from its end and written anew: said, and the bucket keeps the first version.
        std::fs::write(&log, line(1, "a") + &line(2, "B")).unwrap();
        let round = first.ship(&store).await.unwrap();
        assert_eq!(round.cut, Some((54, 36)));
        assert_eq!(round.conflicts, vec![(1, 2)]);
        let kept = store
            .get(&Key::from("h/audit/000000000001-000000000002.jsonl"))
            .await;
        let kept = kept.unwrap().bytes().await.unwrap();
        assert_eq!(kept.as_ref(), (line(1, "a") + &line(2, "b")).as_bytes());
    }
}
