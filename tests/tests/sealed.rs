//! Sealed recordings as an operator uses them: keys made with `recorder keygen`, a real
//! workload recorded with `--seal-to`, the file unreadable without an identity and readable
//! with either of two, `recorder list` saying "sealed" without a key, and a SIGKILLed
//! recorder leaving a readable sealed prefix. See: issue #7.

use std::{
    net::TcpListener,
    path::Path,
    process::{Command, Stdio},
};

use recorder_proto::v1::frame::Body;
use recorder_store::{Keyring, SegmentReader};
use recorder_tests::{
    assert_recent_gapless_prefix, binary, is_busy_write, patient_redaction_config,
    record_gated_workload_with, require_privileges, segment_files as segments,
    sigkill_busy_recording, unhex,
};

/// Runs `recorder ARGS` with `RECORDER_IDENTITY` unset unless `identity_env` sets it.
fn recorder(args: &[&str], identity_env: Option<&Path>) -> (i32, String, String) {
    let mut command = Command::new(binary("recorder"));
    command.args(args).env_remove("RECORDER_IDENTITY");
    if let Some(path) = identity_env {
        command.env("RECORDER_IDENTITY", path);
    }
    let output = command.stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

/// `recorder keygen --output PATH`; returns the recipient it printed.
fn keygen(path: &Path) -> String {
    let (code, stdout, stderr) = recorder(&["keygen", "--output", path.to_str().unwrap()], None);
    assert_eq!(code, 0, "{stderr}");
    let recipient = stdout.trim().to_owned();
    assert!(recipient.starts_with("age1"), "{stdout}");
    recipient
}

fn keyring(path: &Path) -> Keyring {
    Keyring::load(&[path.to_owned()]).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[test]
fn a_sealed_recording_opens_only_with_its_identities() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (team_key, escrow_key, stranger_key) = (
        work.path().join("team.key"),
        work.path().join("escrow.key"),
        work.path().join("stranger.key"),
    );
    let team = keygen(&team_key);
    let escrow = keygen(&escrow_key);
    keygen(&stranger_key);
    // The escrow key comes from a recipients file, as an operator would deploy it.
    let recipients_file = work.path().join("recipients.txt");
    std::fs::write(&recipients_file, format!("# offline escrow\n{escrow}\n")).unwrap();

    let recordings = work.path().join("recordings");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut received = Vec::new();
        std::io::Read::read_to_end(&mut stream, &mut received).unwrap();
        received
    });
    // The file payload ends in bytes with no line end: only its close decides them, however
    // slowly the workload runs. This test is about sealing, not the redaction time bound.
    let config = patient_redaction_config(work.path());
    let run = record_gated_workload_with(
        &["basic", work.path().to_str().unwrap(), &address],
        &recordings,
        &[
            "--config",
            config.to_str().unwrap(),
            "--seal-to",
            &team,
            "--seal-to-file",
            recipients_file.to_str().unwrap(),
        ],
        &keyring(&team_key),
    );
    server.join().unwrap();

    // Read through the production reader with the team identity: the workload's bytes.
    let payload = unhex(&run.report["payload"]);
    let net_message = unhex(&run.report["net_message"]);
    let events = run.recording.of_pid(run.pid);
    let write = events
        .iter()
        .filter(|e| e.syscall == "write")
        .find_map(|e| e.payload.as_ref().filter(|p| p.data == payload))
        .unwrap_or_else(|| panic!("no write of the payload in {events:#?}"));
    assert_eq!(write.length, payload.len() as u64);
    assert_eq!(
        run.recording.trailer.as_ref().unwrap().end_reason,
        "target exited"
    );

    // On disk: none of it, nor the target's command line or host.
    let raw = std::fs::read(&run.path).unwrap();
    let file_line = format!("recorderd workload {}", run.pid);
    assert!(
        !contains(&raw, file_line.as_bytes()),
        "payload in the clear"
    );
    assert!(
        !contains(&raw, &net_message),
        "network payload in the clear"
    );
    assert!(
        !contains(&raw, run.report["path"].as_bytes()),
        "path in the clear"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    // (A very short name could turn up in ciphertext by chance.)
    if host.trim().len() >= 6 {
        assert!(!contains(&raw, host.trim().as_bytes()), "host in the clear");
    }
    assert!(
        contains(&raw, team.as_bytes()),
        "the seal header names its recipients"
    );

    let path = run.path.to_str().unwrap();
    let team_arg = team_key.to_str().unwrap();
    let (code, stdout, stderr) = recorder(&["inspect", "--identity", team_arg, path], None);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("GET /hello HTTP/1.1"), "{stdout}");
    let (code, stdout, stderr) = recorder(&["export", path], Some(&escrow_key));
    assert_eq!(code, 0, "escrow identity via RECORDER_IDENTITY: {stderr}");
    assert!(stdout.contains(&format!("recorderd workload {}", run.pid)));
    let (code, stdout, _) = recorder(&["verify", "-i", team_arg, path], None);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.starts_with("complete: "), "{stdout}");

    // Without a matching identity: one line naming the recipients, exit 5.
    for (args, env) in [
        (vec!["inspect", path], None),
        (vec!["export", path], Some(stranger_key.as_path())),
    ] {
        let (code, stdout, stderr) = recorder(&args, env);
        assert_eq!(code, 5, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("is sealed for {team}, {escrow}")),
            "{stderr}"
        );
    }
    let (code, stdout, _) = recorder(&["verify", path], None);
    assert_eq!(code, 5);
    assert!(stdout.starts_with("sealed: "), "{stdout}");

    // `list` without a key: what the seal header says, marked sealed.
    let dir = recordings.to_str().unwrap();
    let (code, stdout, stderr) = recorder(&["list", dir, "--json"], None);
    assert_eq!(code, 0, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let row = &rows[0];
    assert_eq!(row["state"], "sealed", "{row}");
    assert_eq!(row["sealed"], true);
    assert_eq!(row["ended"], true);
    assert_eq!(row["target"], "(sealed)");
    assert_eq!(row["recipients"], serde_json::json!([team, escrow]));
    let id = row["id"].as_str().unwrap();
    assert_eq!(id, run.recording.header.as_ref().unwrap().recording_id);
    let (_, table, _) = recorder(&["list", dir], None);
    assert!(table.lines().nth(1).unwrap().ends_with("sealed"), "{table}");
    let (code, stdout, _) = recorder(&["list", dir, "--json", "-i", team_arg], None);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["state"], "complete", "{stdout}");
    assert_eq!(rows[0]["sealed"], true);
}

#[test]
fn bad_recipients_are_one_line_usage_errors() {
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("id.key");
    keygen(&key);
    let secret = std::fs::read_to_string(&key).unwrap();
    let secret = secret.lines().last().unwrap();
    let empty = work.path().join("empty.txt");
    std::fs::write(&empty, "# nobody\n").unwrap();
    for (flag, value) in [
        ("--seal-to", "age1notakey"),
        ("--seal-to", secret),
        ("--seal-to-file", empty.to_str().unwrap()),
        ("--seal-to-file", "/nonexistent/recipients"),
    ] {
        let output = Command::new(binary("recorderd"))
            .args([flag, value, "--pid", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!stderr.contains(&secret[16..]), "secret echoed: {stderr}");
    }
    // keygen never overwrites an identity.
    let (code, _, stderr) = recorder(&["keygen", "-o", key.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert!(stderr.contains("refusing to overwrite"), "{stderr}");
}

#[test]
fn sigkill_leaves_a_readable_sealed_prefix() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("team.key");
    let team = keygen(&key);
    let output = work.path().join("recordings");
    let killed_at = sigkill_busy_recording(&output, &["--seal-to", &team]);

    let dir = output.to_str().unwrap();
    let (code, stdout, stderr) = recorder(&["verify", dir], Some(&key));
    assert_eq!(code, 3, "verify: {stdout} {stderr}");
    assert!(stdout.starts_with("incomplete: "), "{stdout}");
    let (_, stdout, _) = recorder(&["list", dir, "--json"], None);
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["state"], "sealed");
    assert_eq!(rows[0]["ended"], false, "no end marker after a kill");

    let segment = segments(&output).remove(0);
    let mut reader = SegmentReader::open_with(&segment, &keyring(&key)).unwrap();
    let mut writes = Vec::new();
    let end = loop {
        match reader.next_body() {
            Ok(Some(Body::Event(event))) => {
                if is_busy_write(&event) {
                    writes.push(*event);
                }
            }
            Ok(Some(_)) => {}
            other => break other,
        }
    };
    // A clean end between blocks, or the open block torn: never corruption.
    assert!(
        matches!(&end, Ok(None)) || end.as_ref().is_err_and(|e| e.is_truncation()),
        "{end:?}"
    );
    let lost = assert_recent_gapless_prefix(&writes, killed_at);
    eprintln!(
        "sealed: {} writes readable, the last {} ms before the kill",
        writes.len(),
        lost.as_millis()
    );
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_host_keeps_no_command_line_of_a_sealed_recording() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("team.key");
    let team = keygen(&key);
    let recordings = work.path().join("recordings");
    // Plain words, so that no detector masks them in the sealed Header either.
    let token = "plantedargvmarker";
    let file = work.path().join("written.txt");
    let script = format!("echo {token} > {}", file.display());
    let output = Command::new(binary("recorderd"))
        .args(["--output", recordings.to_str().unwrap(), "--seal-to", &team])
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("a command, sealed (pid "), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for (what, text) in [("stdout", stdout.as_ref()), ("stderr", stderr.as_ref())] {
        assert!(!text.contains(token), "argv in recorderd's {what}: {text}");
    }
    // The segments and the audit log: nothing of the command in the clear.
    let files = files_under(&recordings);
    assert!(files.iter().any(|f| f.ends_with("audit.log")), "{files:?}");
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !contains(&bytes, token.as_bytes()),
            "argv in the clear in {}",
            path.display()
        );
    }
    // The command is in the recording, sealed: the identity shows it.
    let segment = &segments(&recordings)[0];
    let mut reader = SegmentReader::open_with(segment, &keyring(&key)).unwrap();
    let Ok(Some(Body::Header(header))) = reader.next_body() else {
        panic!("no Header in {}", segment.display());
    };
    let command = header.target.unwrap().command.join(" ");
    assert!(command.contains(token), "{command}");
}
