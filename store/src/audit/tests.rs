//! The audit log written, chained, verified and broken on purpose.
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
