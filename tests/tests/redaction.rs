//! Real clients sending real credentials to real servers: the recording's raw bytes
//! (decompressed, read without any tool of ours) hold none of the secrets, while the parts
//! that are not secret are still there. See: issue #5.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use recorder_tests::{
    contains, decompressed_segment, require_privileges,
    servers::{free_port, start_server, Postgres},
    Recorder, Recording,
};

/// Records `command` (spawned by recorderd with `env`) and returns the segment file.
fn record(work: &Path, command: &[&str], env: &[(&str, &str)]) -> PathBuf {
    record_with(work, &[], command, env)
}

fn record_with(work: &Path, options: &[&str], command: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let output = work.join("recordings");
    let mut args = vec!["--output", output.to_str().unwrap()];
    args.extend_from_slice(options);
    args.push("--");
    args.extend_from_slice(command);
    Recorder::start_with_env(&args, env).finish()
}

/// Records `command` once with redaction turned off in config, and checks the secret did
/// cross the boundary: so the redacted run's clean bytes mean the redactor worked.
fn assert_secret_crosses(work: &Path, command: &[&str], env: &[(&str, &str)], secret: &str) {
    let config = work.join("no-redaction.toml");
    std::fs::write(&config, "[redaction]\nenabled = false\n").unwrap();
    let path = record_with(work, &["--config", config.to_str().unwrap()], command, env);
    assert!(
        contains(&decompressed_segment(&path), secret.as_bytes()),
        "without redaction the secret is recorded (so the client really sent it)"
    );
    let policy = Recording::read(&path).header.unwrap().redaction.unwrap();
    assert!(!policy.enabled, "the Header says redaction was off");
}

/// The raw bytes hold no secret and every public part.
fn assert_redacted(path: &Path, secrets: &[&str], public: &[&str]) {
    let raw = decompressed_segment(path);
    for secret in secrets {
        assert!(
            !contains(&raw, secret.as_bytes()),
            "secret {secret:?} is in the recording {}",
            path.display()
        );
    }
    for part in public {
        assert!(
            contains(&raw, part.as_bytes()),
            "{part:?} is missing from the recording"
        );
    }
    let trailer = Recording::read(path).trailer.expect("a finished recording");
    assert!(
        trailer.redactions > 0,
        "redactions are counted in the trailer"
    );
}

#[test]
fn curl_credentials_headers_and_json_body() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start_server(
        Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(work.path()),
        "Serving HTTP",
    );
    let token = "Zx8Qm2Lp9Vr4Tn6Wk1Hs5Jd7Fb3Gc0Ye";
    let cookie = "sess-4be1f07c9a2d8e61";
    let password = "correct-horse-battery-staple-77";
    let body = format!(
        r#"{{"user":"alice","password":"{password}","card":"4111 1111 1111 1111","qty":3}}"#
    );
    let authorization = format!("Authorization: Bearer {token}");
    let cookie_header = format!("Cookie: session={cookie}");
    let url = format!("http://127.0.0.1:{port}/api/orders?customer=alice");
    let path = record(
        work.path(),
        &[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            "-H",
            &authorization,
            "-H",
            &cookie_header,
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
            &url,
        ],
        &[],
    );
    server.kill().unwrap();
    server.wait().unwrap();
    assert_redacted(
        &path,
        &[
            token,
            cookie,
            password,
            "4111 1111 1111 1111",
            "4111111111111111",
        ],
        &[
            "POST /api/orders?customer=alice HTTP/1.1",
            "Authorization: ",
            "Cookie: ",
            r#""user":"alice""#,
            r#""qty":3"#,
            "HTTP/1.0 501",
        ],
    );
}

#[test]
fn psql_password_authentication() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let password = "Pg-s3cret-Redacted-42";
    let server = Postgres::start(work.path(), password, &[], &[]);
    let conninfo = server.conninfo();
    let psql = [
        "psql",
        &conninfo,
        "-Atc",
        "SELECT 'visible-sql-text' AS probe",
    ];
    let env = [("PGPASSWORD", password)];
    assert_secret_crosses(work.path(), &psql, &env, password);
    let path = record(work.path(), &psql, &env);
    drop(server);
    assert_redacted(
        &path,
        &[password],
        &["SELECT 'visible-sql-text' AS probe", "tester"],
    );
}

#[test]
fn redis_cli_auth() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let password = "redis-pass-5Ty8Qw2Zx";
    let port = free_port();
    let mut server = start_server(
        Command::new("redis-server").args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
        ]),
        "Ready to accept connections",
    );
    let port = port.to_string();
    let cli = [
        "redis-cli",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "SET",
        "visible-key",
        "visible-value",
    ];
    let env = [("REDISCLI_AUTH", password)];
    assert_secret_crosses(work.path(), &cli, &env, password);
    let path = record(work.path(), &cli, &env);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_redacted(
        &path,
        &[password],
        &["AUTH", "SET", "visible-key", "visible-value", "+OK"],
    );
}
