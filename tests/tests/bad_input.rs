//! Bad input gets one line saying what is wrong, a non-zero exit, and no panic. See: issue #2.

use std::{
    os::unix::{fs::PermissionsExt, process::CommandExt},
    process::Command,
};

use recorder_tests::{binary, require_privileges};

/// stderr as lines, after checking the command failed without a panic.
fn failure_lines(command: &mut Command) -> (i32, Vec<String>) {
    let output = command.output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<String> = stderr.lines().map(str::to_owned).collect();
    (
        output.status.code().expect("exit code, not a signal"),
        lines,
    )
}

#[test]
fn without_root_recorderd_says_it_needs_root() {
    if !require_privileges() {
        return;
    }
    // A copy nobody can reach: the checkout itself may sit under a 0700 home directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let recorderd = dir.path().join("recorderd");
    std::fs::copy(binary("recorderd"), &recorderd).unwrap();
    let (code, lines) = failure_lines(
        Command::new(&recorderd)
            .args(["--pid", "1", "--output", "/nonexistent/r"])
            .current_dir("/")
            .uid(65534)
            .gid(65534),
    );
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("needs root (or CAP_BPF and CAP_PERFMON)"),
        "{lines:?}"
    );
}

#[test]
fn a_pid_that_does_not_exist_is_one_line() {
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (code, lines) = failure_lines(
        Command::new(binary("recorderd"))
            .args(["--pid", &gone.id().to_string(), "--output"])
            .arg(dir.path().join("r")),
    );
    assert_eq!(code, 2);
    assert_eq!(
        lines,
        [format!(
            "recorderd: no process with pid {0}: check it with `ps -p {0}`",
            gone.id()
        )]
    );
    assert!(
        !dir.path().join("r").exists(),
        "nothing is created for a bad target"
    );
}

#[test]
fn a_missing_cgroup_or_impossible_comm_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("r");
    for (args, expected) in [
        (
            ["--cgroup", "/no/such/cgroup"],
            "recorderd: --cgroup /no/such/cgroup: ",
        ),
        (
            ["--comm", "a-name-longer-than-15"],
            "recorderd: --comm `a-name-longer-than-15`: a command name is 1 to 15 bytes",
        ),
    ] {
        let (code, lines) = failure_lines(
            Command::new(binary("recorderd"))
                .args(args)
                .arg("--output")
                .arg(&output),
        );
        assert_eq!(code, 2);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(expected), "{lines:?}");
        assert!(!output.exists(), "nothing is created for a bad target");
    }
}

#[test]
fn recorderd_refuses_to_record_itself_and_needs_a_target() {
    let (code, _) = failure_lines(&mut Command::new(binary("recorderd")));
    assert_eq!(code, 2, "clap usage error");
    let (code, lines) =
        failure_lines(Command::new(binary("recorderd")).args(["--pid", "not-a-pid"]));
    assert_eq!(code, 2);
    assert!(lines[0].contains("invalid value 'not-a-pid'"), "{lines:?}");
}

/// A redaction config whose entry could never match (so its values would go to disk
/// unmasked) is refused by both commands alike: one line naming the entry, exit 2, and
/// nothing recorded.
#[test]
fn a_config_entry_that_would_never_match_is_refused_by_both_commands() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("recorderd.toml");
    std::fs::write(&config, "[redaction]\nextra_keys = [\"na\u{ef}ve_key\"]\n").unwrap();
    let output = dir.path().join("r");
    let (code, lines) = failure_lines(
        Command::new(binary("recorderd"))
            .arg("--config")
            .arg(&config)
            .arg("--output")
            .arg(&output)
            .args(["--", "true"]),
    );
    assert_eq!(code, 2, "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("extra_keys") && lines[0].contains("not ASCII"),
        "{lines:?}"
    );
    assert!(!output.exists(), "nothing is recorded");
    let (code, redact_test) = failure_lines(
        Command::new(binary("recorder"))
            .args(["redact-test", "--config"])
            .arg(&config)
            .stdin(std::process::Stdio::null()),
    );
    assert_eq!(code, 2, "{redact_test:?}");
    assert_eq!(
        redact_test,
        [lines[0].replacen("recorderd:", "recorder:", 1)]
    );
}

#[test]
fn inspect_rejects_files_that_are_not_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 3] = [
        ("empty", b""),
        ("text", b"just some text that is long enough\n"),
        (
            "random",
            &[
                0x89, 0x13, 0x37, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
            ],
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (code, lines) =
            failure_lines(Command::new(binary("recorder")).arg("inspect").arg(&path));
        assert_eq!(code, 1);
        assert_eq!(
            lines,
            [format!(
                "recorder: {} is not a recorderd recording (no segment header)",
                path.display()
            )]
        );
    }
    let (code, lines) = failure_lines(
        Command::new(binary("recorder"))
            .arg("inspect")
            .arg(dir.path().join("missing")),
    );
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("no such file, directory or recording id"),
        "{lines:?}"
    );
}

#[test]
fn every_reader_command_refuses_bad_files_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut future = b"\x89RCDSEG\n".to_vec();
    future.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, &[u8], &str); 3] = [
        ("empty.rcd", b"", "is not a recorderd recording"),
        ("random.rcd", &random, "is not a recorderd recording"),
        (
            "future.rcd",
            &future,
            "is format version 9; this recorder reads up to 1: upgrade recorder",
        ),
    ];
    for (name, bytes, message) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        for command in ["inspect", "verify", "export"] {
            let (code, lines) =
                failure_lines(Command::new(binary("recorder")).arg(command).arg(&path));
            assert_eq!(code, 1, "{command} {name}");
            assert_eq!(lines.len(), 1, "{command} {name}: {lines:?}");
            assert!(lines[0].contains(message), "{command} {name}: {lines:?}");
        }
    }
    let empty = tempfile::tempdir().unwrap();
    for command in [vec!["list"], vec!["verify"], vec!["inspect"]] {
        let (code, lines) = failure_lines(
            Command::new(binary("recorder"))
                .args(&command)
                .arg(empty.path()),
        );
        assert_eq!(code, 1);
        assert_eq!(
            lines,
            [format!(
                "recorder: {} holds no recordings (no readable .rcd files)",
                empty.path().display()
            )]
        );
    }
}

#[test]
fn a_command_that_cannot_start_is_named_without_its_arguments() {
    if !require_privileges() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = "Hunter2-not-in-errors";
    let (code, lines) = failure_lines(
        Command::new(binary("recorderd"))
            .arg("--output")
            .arg(dir.path().join("r"))
            .args(["--", "/nonexistent/tool", "--password", secret]),
    );
    assert_ne!(code, 0);
    // The exec fails once the probes are attached: after the start line, one line says so.
    let last = lines.last().expect("an error line");
    assert!(
        last.contains("cannot start `/nonexistent/tool`: No such file"),
        "{lines:?}"
    );
    // Arguments may hold secrets: not in the error, nor in the audit log's stop entry.
    let audit = std::fs::read_to_string(dir.path().join("r/audit.log")).unwrap();
    assert!(
        audit.contains("cannot start `/nonexistent/tool`"),
        "{audit}"
    );
    for text in lines.iter().chain([&audit]) {
        assert!(!text.contains(secret), "{text}");
    }
}
