//! Retention sweeps and the audit log, through the real binaries: `recorder sweep` deletes
//! exactly the expired and over-quota recordings, keeps held ones and the one recorderd is
//! still writing, and audits each deletion; `recorder audit verify` names an edited entry.
//! See: issue #6.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, SystemTime},
};

use recorder_proto::v1::{frame::Body, Event, Header, Payload, Trailer};
use recorder_store::{segment, OutputDir, SegmentWriter};
use recorder_tests::{binary, record_gated_workload, require_privileges, Recorder};
use serde_json::Value;

const DAY: Duration = Duration::from_secs(86400);

fn recorder(args: &[&str]) -> Output {
    let output = Command::new(binary("recorder"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes a finished recording `id` with `payload_bytes` of incompressible payload, last
/// written `age` ago; returns its segment.
fn write_recording(dir: &Path, id: &str, payload_bytes: usize, age: Duration) -> PathBuf {
    let out = OutputDir::open_or_create(dir).unwrap();
    let header = Header {
        recording_id: id.to_owned(),
        ..Header::default()
    };
    let name = segment::file_name(SystemTime::now(), id, 0);
    let mut writer = SegmentWriter::create(&out, &name, header).unwrap();
    // xorshift bytes: zstd cannot shrink them, so the file is about payload_bytes long.
    let mut state = 0x9e3779b97f4a7c15u64;
    let data: Vec<u8> = (0..payload_bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let event = Event {
        syscall: "write".into(),
        payload: Some(Payload {
            data,
            ..Payload::default()
        }),
        ..Event::default()
    };
    writer.append(&Body::Event(Box::new(event))).unwrap();
    let path = writer.finish(Trailer::default(), &out).unwrap();
    backdate(&path, age);
    path
}

fn backdate(path: &Path, age: Duration) {
    use std::os::unix::ffi::OsStrExt;
    let since = (SystemTime::now() - age)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let time = libc::timespec {
        tv_sec: since.as_secs() as libc::time_t,
        tv_nsec: since.subsec_nanos() as libc::c_long,
    };
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: the path is NUL-terminated and the timespecs live through the call.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), [time, time].as_ptr(), 0) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

fn audit_entries(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_sweep_deletes_expired_and_over_quota_and_keeps_held_and_active() {
    if !require_privileges() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = base.path().join("recordings");
    let dir_arg = dir.to_str().unwrap();

    // Expired: a real recording, last written ten days ago.
    let expired = record_gated_workload(&["vectored", work.path().to_str().unwrap()], &dir);
    let expired_id = expired
        .recording
        .header
        .as_ref()
        .unwrap()
        .recording_id
        .clone();
    backdate(&expired.path, DAY * 10);
    // Held, and older than max_age.
    let held_id = "b2".repeat(16);
    let held = write_recording(&dir, &held_id, 1000, DAY * 10);
    assert!(recorder(&["hold", &held_id[..8], "--dir", dir_arg])
        .status
        .success());
    // Young ones: the oldest of them is over the quota.
    let (big_id, small_id, newest_id) = ("c3".repeat(16), "d4".repeat(16), "e5".repeat(16));
    let big = write_recording(&dir, &big_id, 40_000, DAY * 3);
    let small = write_recording(&dir, &small_id, 1000, DAY * 2);
    let newest = write_recording(&dir, &newest_id, 1000, Duration::from_secs(3600));
    // Active: recorderd is still writing it, though its segment looks ten days old.
    let mut sleeper = Command::new("sleep")
        .arg("120")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let active = Recorder::start(&["--pid", &sleeper.id().to_string(), "--output", dir_arg]);
    let active_segment: PathBuf = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "rcd")
                && ![&expired.path, &held, &big, &small, &newest].contains(&p)
        })
        .expect("the active recording's segment");
    backdate(&active_segment, DAY * 10);

    // After the expired one goes, the total is over the quota by about `big`, with 1 KB of
    // slack for what the active recording may still write.
    let remaining: u64 = [&held, &big, &small, &newest, &active_segment]
        .iter()
        .map(|p| size(p))
        .sum();
    let max_total = remaining - size(&big) + 1000;
    let config = base.path().join("recorderd.toml");
    std::fs::write(
        &config,
        format!("[retention]\nmax_age = \"7d\"\nmax_total_size = \"{max_total}\"\n"),
    )
    .unwrap();
    let config_arg = config.to_str().unwrap();
    let entries_before = audit_entries(&dir).len();

    let dry = recorder(&[
        "sweep",
        "--dry-run",
        "--dir",
        dir_arg,
        "--config",
        config_arg,
    ]);
    assert!(dry.status.success(), "{dry:?}");
    let dry_text = stdout(&dry);
    for path in [&expired.path, &held, &big, &small, &newest, &active_segment] {
        assert!(
            path.exists(),
            "a dry run deletes nothing: {}",
            path.display()
        );
    }
    assert_eq!(
        audit_entries(&dir).len(),
        entries_before,
        "nor audits anything"
    );

    let swept = recorder(&["sweep", "--dir", dir_arg, "--config", config_arg]);
    assert!(swept.status.success(), "{swept:?}");
    let text = stdout(&swept);
    let deletions: Vec<&str> = text.lines().filter(|l| l.starts_with("deleted ")).collect();
    assert_eq!(deletions.len(), 2, "{text}");
    assert!(
        deletions[0].starts_with(&format!("deleted {expired_id} (1 segment: "))
            && deletions[0].contains("): older than 7d (last written "),
        "{text}"
    );
    assert!(
        deletions[1].starts_with(&format!("deleted {big_id} (1 segment: "))
            && deletions[1].contains("): over max_total_size "),
        "{text}"
    );
    // The dry run printed the same plan.
    let planned: Vec<String> = dry_text
        .lines()
        .filter(|l| l.starts_with("would delete "))
        .map(|l| l.replacen("would delete ", "deleted ", 1))
        .collect();
    assert_eq!(planned, deletions, "dry run:\n{dry_text}\nsweep:\n{text}");
    assert!(text.contains(&format!("kept {held_id} (held")), "{text}");
    assert!(text.contains("(being written"), "{text}");

    assert!(!expired.path.exists() && !big.exists());
    for path in [&held, &small, &newest, &active_segment] {
        assert!(path.exists(), "{} was kept", path.display());
    }
    let entries = audit_entries(&dir);
    let deleted: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["event"] == "sweep.delete")
        .map(|e| (e["id"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(deleted.len(), 2, "{entries:?}");
    assert_eq!(deleted[0].0, expired_id);
    assert!(deleted[0].1.starts_with("older than 7d"));
    assert_eq!(deleted[1].0, big_id);
    assert!(deleted[1].1.starts_with("over max_total_size"));
    let verified = recorder(&["audit", "verify", "--dir", dir_arg]);
    assert!(verified.status.success(), "{verified:?}");

    let finished = active.stop();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_eq!(
        finished, active_segment,
        "the active recording ended intact"
    );
}

#[test]
fn audit_verify_names_the_edited_line() {
    if !require_privileges() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("recordings");
    let dir_arg = dir.to_str().unwrap();
    let id = "f6".repeat(16);
    write_recording(&dir, &id, 100, Duration::ZERO);
    for command in ["hold", "release", "hold"] {
        let output = recorder(&[command, &id, "--dir", dir_arg]);
        assert!(output.status.success(), "{output:?}");
    }
    // Holding twice is refused, saying so, and changes nothing.
    let twice = recorder(&["hold", &id, "--dir", dir_arg]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("is already held"));
    // A reader that can write the log leaves a `read` entry.
    let inspected = recorder(&["inspect", &id, "--dir", dir_arg]);
    assert!(inspected.status.success(), "{inspected:?}");
    let entries = audit_entries(&dir);
    let events: Vec<&str> = entries
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["hold", "release", "hold", "read"]);
    assert_eq!(entries[3]["id"], id.as_str());

    let ok = recorder(&["audit", "verify", "--dir", dir_arg]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(stdout(&ok), "audit log OK: 4 entries\n");

    // One character of a field of line 2 (the release's recording id).
    let log = dir.join("audit.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let field = format!("\"id\":\"{id}\"");
    let edited = format!("\"id\":\"{}7\"", &id[..id.len() - 1]);
    assert!(lines[1].contains(&field), "{}", lines[1]);
    lines[1] = lines[1].replacen(&field, &edited, 1);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();

    for args in [
        vec!["audit", "verify", "--dir", dir_arg],
        vec!["audit", "verify", log.to_str().unwrap()],
    ] {
        let broken = recorder(&args);
        assert_eq!(broken.status.code(), Some(4), "{broken:?}");
        let said = stdout(&broken);
        assert!(said.contains("broken at line 2 (seq 2)"), "{said}");
        assert!(said.contains("was changed"), "{said}");
    }
}
