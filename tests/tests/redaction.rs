//! Real clients sending real credentials to real servers: the recording's raw bytes
//! (decompressed, read without any tool of ours) hold none of the secrets, while the parts
//! that are not secret are still there. See: issue #5.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use recorder_tests::{contains, decompressed_segment, require_privileges, Recorder, Recording};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server and waits for the line (on stdout or stderr) saying it is ready.
fn start_server(command: &mut Command, ready: &str) -> Child {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (cargo xtask setup installs it)"));
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(recorder_tests::STEP_TIMEOUT) {
            Ok(line) if line.contains(ready) => return child,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command:?} never said `{ready}`: {seen:#?}");
            }
        }
    }
}

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

/// The PostgreSQL server binaries (Debian keeps them out of PATH).
fn postgres_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (cargo xtask setup installs it)")
        .flatten()
        .map(|entry| entry.path().join("bin").join(name))
        .filter(|path| path.is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .unwrap_or_else(|| panic!("no {name} under /usr/lib/postgresql"))
}

#[test]
fn psql_password_authentication() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // PostgreSQL refuses to run as root: its files belong to the postgres user.
    let data = work.path().join("pg");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let password = "Pg-s3cret-Redacted-42";
    let pwfile = data.join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n")).unwrap();
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    let (uid, gid) = unsafe {
        let entry = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !entry.is_null(),
            "the postgres user exists (Debian's postgresql package)"
        );
        ((*entry).pw_uid, (*entry).pw_gid)
    };
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
    std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
    let cluster = data.join("cluster");
    let initdb = Command::new(postgres_bin("initdb"))
        .uid(uid)
        .gid(gid)
        .args(["-D", cluster.to_str().unwrap(), "-U", "tester", "--pwfile"])
        .arg(&pwfile)
        // Cleartext password authentication over TCP, so the secret really crosses the socket.
        .args(["--auth-local=trust", "--auth-host=password"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(initdb.success());
    let port = free_port();
    let mut server = start_server(
        Command::new(postgres_bin("postgres"))
            .uid(uid)
            .gid(gid)
            .args([
                "-D",
                cluster.to_str().unwrap(),
                "-p",
                &port.to_string(),
                "-k",
            ])
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1"]),
        "ready to accept connections",
    );
    let conninfo = format!("host=127.0.0.1 port={port} user=tester dbname=postgres");
    let psql = [
        "psql",
        &conninfo,
        "-Atc",
        "SELECT 'visible-sql-text' AS probe",
    ];
    let env = [("PGPASSWORD", password)];
    assert_secret_crosses(work.path(), &psql, &env, password);
    let path = record(work.path(), &psql, &env);
    // SAFETY: signalling the server we started; SIGINT is its fast shutdown.
    unsafe { libc::kill(server.id() as i32, libc::SIGINT) };
    server.wait().unwrap();
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
