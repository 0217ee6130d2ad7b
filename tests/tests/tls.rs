//! TLS plaintext through the uprobes on OpenSSL and GnuTLS: real clients (curl, python3,
//! gnutls-cli) against a real nginx serving HTTPS with a certificate the test makes. The
//! plaintext is recorded on the connection's descriptor, redacted like any payload, and the
//! ciphertext the library moved is recorded by length only (or kept, with `--tls both`).
//! See: issue #14.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use recorder_proto::v1::{payload::Direction, resource::Kind, Event};
use recorder_tests::{
    contains, decompressed_segment, payload_bytes, require_privileges,
    servers::{make_certificate, Nginx, Postgres},
    Recorder, Recording,
};

const BEARER: &str = "tls_bearer_Q7fK2mX9pL4vR8sT1wY6zB3n";
const COOKIE: &str = "sid_H5jD8kW2qN7xC4vB9mZ1pL6t";
const PASSWORD: &str = "Pw-tls-4g8Hq2Lz9Xv";
const BODY: &str = "recorderd-tls-response-body";

/// curl's arguments for a POST carrying every kind of secret to `url` over HTTP/1.1; the
/// response goes to stderr (recorderd's spawned command shares its stdout, which names the
/// recording).
fn curl_with_secrets(nginx: &Nginx, path: &str) -> Vec<String> {
    curl_over(nginx, path, "--http1.1")
}

/// The same over `version` (`--http1.1`, `--http2`).
fn curl_over(nginx: &Nginx, path: &str, version: &str) -> Vec<String> {
    [
        "curl",
        "-sS",
        "-o",
        "/dev/stderr",
        version,
        "--cacert",
        nginx.cert.to_str().unwrap(),
        "-H",
        &format!("Authorization: Bearer {BEARER}"),
        "-H",
        &format!("Cookie: session={COOKIE}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        &format!(r#"{{"user":"ann","password":"{PASSWORD}"}}"#),
        &nginx.url(path),
    ]
    .map(String::from)
    .to_vec()
}

fn record(output: &Path, options: &[&str], command: &[String]) -> PathBuf {
    let mut args = vec!["--output", output.to_str().unwrap()];
    args.extend_from_slice(options);
    args.push("--");
    args.extend(command.iter().map(String::as_str));
    Recorder::start(&args).finish()
}

/// Plaintext events of `library` whose descriptor is a socket to or from `port`.
fn plaintext<'a>(events: &[&'a Event], library: &str, port: u16) -> Vec<&'a Event> {
    events
        .iter()
        .copied()
        .filter(|e| e.tls.as_ref().is_some_and(|t| t.library == library))
        .filter(|e| {
            e.resource.as_ref().is_some_and(|r| {
                r.kind() == Kind::Socket
                    && [&r.peer, &r.local]
                        .iter()
                        .any(|a| a.as_ref().is_some_and(|a| a.port == u32::from(port)))
            })
        })
        .collect()
}

/// The bytes of one direction of these events, in order.
fn bytes(events: &[&Event], direction: Direction) -> Vec<u8> {
    payload_bytes(events.iter().copied(), direction)
}

/// No secret in the recording's bytes, in plain form or HPACK's Huffman code.
fn assert_no_secret(segment: &Path) {
    let bytes = decompressed_segment(segment);
    for secret in [BEARER, COOKIE, PASSWORD] {
        assert!(
            !contains(&bytes, secret.as_bytes()),
            "{secret} is in the recording"
        );
        for text in [secret.to_owned(), format!("Bearer {secret}")] {
            assert!(
                !contains(&bytes, &huffman(&text)),
                "{secret} is in the recording, Huffman-coded"
            );
        }
    }
}

fn huffman(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    httlib_huffman::encode(text.as_bytes(), &mut out).unwrap();
    out
}

#[test]
fn curl_over_https_is_recorded_as_redacted_plaintext_on_its_connection() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_https(work.path(), BODY);
    let output = work.path().join("recordings");
    let segment = record(&output, &[], &curl_with_secrets(&nginx, "/api/orders"));
    let recording = Recording::read(&segment);
    assert_no_secret(&segment);

    let limits = recording.header.as_ref().unwrap().limits.clone().unwrap();
    assert_eq!(limits.tls, "plaintext");
    assert!(
        limits
            .tls_libraries
            .iter()
            .any(|l| l.starts_with("openssl ")),
        "{:?}",
        limits.tls_libraries
    );
    let events = recording.of_pid(recording.first_target());
    let calls = plaintext(&events, "openssl", nginx.port);
    assert!(
        calls.iter().any(|e| e.syscall.starts_with("SSL_write")),
        "no SSL_write on the connection to nginx: {events:#?}"
    );
    let fd = calls[0].fd;
    assert!(calls.iter().all(|e| e.fd == fd), "one connection");
    let sent = String::from_utf8(bytes(&calls, Direction::Out)).unwrap();
    assert!(sent.starts_with("POST /api/orders HTTP/1.1\r\n"), "{sent}");
    assert!(sent.contains("Authorization: *"), "{sent}");
    assert!(sent.contains("\"password\":\"*"), "{sent}");
    let received = String::from_utf8(bytes(&calls, Direction::In)).unwrap();
    assert!(received.starts_with("HTTP/1.1 200 OK\r\n"), "{received}");
    assert!(received.ends_with(BODY), "{received}");

    // The ciphertext those calls moved is on the same descriptor, by length only; the
    // handshake's (before any plaintext) and the shutdown's (after it) are kept, marked as
    // moved by the library.
    let first_call = events.iter().position(|e| e.tls.is_some()).unwrap();
    let last_call = events.iter().rposition(|e| e.tls.is_some()).unwrap();
    let ciphertext: Vec<(usize, _)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.fd == fd && e.tls.is_none())
        .filter_map(|(i, e)| e.payload.as_ref().map(|p| (i, p)))
        .filter(|(_, p)| p.tls_ciphertext)
        .collect();
    for direction in [Direction::Out, Direction::In] {
        assert!(
            ciphertext
                .iter()
                .any(|(_, p)| p.direction() == direction && p.omitted_bytes > 0),
            "no {direction:?} ciphertext left out"
        );
    }
    for (i, p) in ciphertext {
        let omitted = p.data.is_empty() && p.omitted_bytes == p.length && p.length > 0;
        let session = (i < first_call || i > last_call) && p.omitted_bytes == 0;
        assert!(omitted || session, "{:#?}", events[i]);
    }
    // Every TLS record curl moved went through a probed call (the handshake's too).
    assert!(events
        .iter()
        .filter_map(|e| e.payload.as_ref())
        .all(|p| !p.tls_not_decrypted));
    let trailer = recording.trailer.unwrap();
    assert!(trailer.payload_bytes_omitted > 0);
    assert_eq!(
        trailer.payload_bytes
            + trailer.payload_bytes_lost
            + trailer.payload_bytes_capped
            + trailer.payload_bytes_omitted,
        trailer.payload_bytes_moved
    );
}

#[test]
fn curl_over_http2_has_its_header_blocks_redacted_in_place() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_https(work.path(), BODY);
    let output = work.path().join("recordings");
    let segment = record(&output, &[], &curl_over(&nginx, "/h2/orders", "--http2"));
    assert_no_secret(&segment);
    let recording = Recording::read(&segment);
    let events = recording.of_pid(recording.first_target());
    let calls = plaintext(&events, "openssl", nginx.port);
    let sent = bytes(&calls, Direction::Out);
    assert!(
        sent.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&sent)
    );
    // The path is not a secret: HPACK's Huffman code of it is still there, unmasked.
    assert!(contains(&sent, &huffman("/h2/orders")), "{sent:?}");
    let redactions: Vec<&str> = calls
        .iter()
        .filter_map(|e| e.payload.as_ref())
        .flat_map(|p| p.redactions.iter().map(|r| r.rule.as_str()))
        .collect();
    assert!(redactions.contains(&"http-header"), "{redactions:?}");
    assert!(contains(&bytes(&calls, Direction::In), BODY.as_bytes()));
}

#[test]
fn tls_both_keeps_the_ciphertext_and_off_records_no_plaintext() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_https(work.path(), BODY);
    let command = curl_with_secrets(&nginx, "/both");

    let both = Recording::read(&record(
        &work.path().join("both"),
        &["--tls", "both"],
        &command,
    ));
    let events = both.of_pid(both.first_target());
    let calls = plaintext(&events, "openssl", nginx.port);
    assert!(!calls.is_empty(), "plaintext recorded with --tls both");
    let kept: Vec<_> = events
        .iter()
        .filter(|e| e.fd == calls[0].fd && e.tls.is_none())
        .filter_map(|e| e.payload.as_ref())
        .filter(|p| p.tls_ciphertext)
        .collect();
    assert!(!kept.is_empty());
    assert!(kept
        .iter()
        .all(|p| p.omitted_bytes == 0 && p.data.len() as u64 == p.length));
    assert_eq!(both.trailer.unwrap().payload_bytes_omitted, 0);

    let off = Recording::read(&record(
        &work.path().join("off"),
        &["--tls", "off"],
        &command,
    ));
    assert!(off.events.iter().all(|e| e.tls.is_none()));
    assert!(off
        .events
        .iter()
        .filter_map(|e| e.payload.as_ref())
        .all(|p| !p.tls_ciphertext && p.omitted_bytes == 0));
    let limits = off.header.unwrap().limits.unwrap();
    assert_eq!(
        (limits.tls.as_str(), limits.tls_libraries.len()),
        ("off", 0)
    );
}

/// Runs curl (not recorded) and checks it got nginx's body. The body goes to a file rather
/// than to stderr, which carries curl's `-v` trace for the failure message (on 6.1 under
/// emulation curl once exited 0 having written no body, and nothing said why).
fn run_curl(command: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body");
    let args = command[1..].iter().map(|arg| match arg.as_str() {
        "/dev/stderr" => body_file.to_str().unwrap(),
        arg => arg,
    });
    let curl = Command::new(&command[0])
        .args(["-v", "--trace-time"])
        .args(args)
        .output()
        .unwrap();
    let trace = String::from_utf8_lossy(&curl.stderr);
    assert!(
        curl.status.success(),
        "curl failed: {:?}\n{trace}",
        curl.status
    );
    let body = std::fs::read_to_string(&body_file).unwrap_or_default();
    assert_eq!(body, BODY, "{trace}");
}

#[test]
fn nginx_recorded_by_pid_reads_plaintext_on_the_accepted_connection() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_https(work.path(), BODY);
    let output = work.path().join("recordings");
    let pid = nginx.pid().to_string();
    let recorder = Recorder::start(&["--output", output.to_str().unwrap(), "--pid", &pid]);
    run_curl(&curl_with_secrets(&nginx, "/server-side"));
    run_curl(&curl_over(&nginx, "/server-h2", "--http2"));
    let segment = recorder.stop();
    assert_no_secret(&segment);
    let recording = Recording::read(&segment);
    let events = recording.of_pid(nginx.pid());
    let calls = plaintext(&events, "openssl", nginx.port);
    let received = bytes(&calls, Direction::In);
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("POST /server-side HTTP/1.1\r\n"),
        "{text:?} in {events:#?}"
    );
    assert!(text.contains("Cookie: *"), "{text}");
    // Then the HTTP/2 connection: its preface, and its path in HPACK's Huffman code.
    let h2 = text.find("PRI * HTTP/2.0").expect("the HTTP/2 preface");
    assert!(
        contains(&received[h2..], &huffman("/server-h2")),
        "{text:?}"
    );
    let sent = String::from_utf8_lossy(&bytes(&calls, Direction::Out)).into_owned();
    assert_eq!(sent.matches(BODY).count(), 2, "{sent}");
    // On the connection nginx accepted.
    let accepted = events
        .iter()
        .find(|e| e.syscall.starts_with("accept") && e.ret == calls[0].fd)
        .unwrap_or_else(|| panic!("no accept returned fd {}", calls[0].fd));
    assert_eq!(accepted.pid, nginx.pid());
}

#[test]
fn python_and_gnutls_clients_are_recorded_on_the_right_descriptor() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_https(work.path(), BODY);
    let cert = nginx.cert.to_str().unwrap().to_owned();

    // python3's ssl module links the system's libssl.
    let script = format!(
        r#"
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile="{cert}")
c = http.client.HTTPSConnection("localhost", {port}, context=ctx)
c.request("POST", "/python", body='{{"password":"{PASSWORD}"}}',
          headers={{"Authorization": "Bearer {BEARER}"}})
print(c.getresponse().read().decode(), file=sys.stderr)
"#,
        port = nginx.port
    );
    let python = ["python3".to_owned(), "-c".to_owned(), script];
    let segment = record(&work.path().join("python"), &[], &python);
    assert_no_secret(&segment);
    let recording = Recording::read(&segment);
    let events = recording.of_pid(recording.first_target());
    let calls = plaintext(&events, "openssl", nginx.port);
    let sent = String::from_utf8(bytes(&calls, Direction::Out)).unwrap();
    assert!(
        sent.starts_with("POST /python HTTP/1.1\r\n"),
        "{sent:?} in {events:#?}"
    );
    assert!(String::from_utf8(bytes(&calls, Direction::In))
        .unwrap()
        .ends_with(BODY));
    // (getaddrinfo's own probes connect UDP sockets with port 0 on the same number first.)
    assert!(
        events.iter().any(|e| e.syscall == "connect"
            && e.fd == calls[0].fd
            && e.address.as_ref().unwrap().port == u32::from(nginx.port)),
        "the plaintext's descriptor is the one python connected to nginx"
    );

    // gnutls-cli sends what it reads on stdin: the shell gives it a request.
    let shell = format!(
        "printf 'GET /gnutls HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' | \
         gnutls-cli --x509cafile {cert} -p {} localhost >&2",
        nginx.port
    );
    let gnutls = ["sh".to_owned(), "-c".to_owned(), shell];
    let recording = Recording::read(&record(&work.path().join("gnutls"), &[], &gnutls));
    let events: Vec<&Event> = recording.events.iter().collect();
    let calls = plaintext(&events, "gnutls", nginx.port);
    assert!(
        calls.iter().any(|e| e.syscall == "gnutls_record_send"),
        "no gnutls_record_send on the connection: {events:#?}"
    );
    let sent = String::from_utf8(bytes(&calls, Direction::Out)).unwrap();
    assert!(sent.starts_with("GET /gnutls HTTP/1.0\r\n"), "{sent}");
    let received = String::from_utf8(bytes(&calls, Direction::In)).unwrap();
    assert!(received.ends_with(BODY), "{received}");
}

#[test]
fn tls_from_a_program_without_a_probed_library_is_marked_as_ciphertext() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_https(work.path(), BODY);
    // Python without its ssl module maps no TLS library: it sends a ClientHello by hand
    // and reads nginx's answer (an alert record: nginx takes none of what it offers).
    let script = format!(
        "import socket, sys; s = socket.create_connection(('127.0.0.1', {port})); \
         body = bytes.fromhex('0303') + bytes(32) + bytes.fromhex('000002002f0100'); \
         hello = bytes([1]) + len(body).to_bytes(3, 'big') + body; \
         s.sendall(bytes.fromhex('160301') + len(hello).to_bytes(2, 'big') + hello); \
         print(s.recv(100).hex(), file=sys.stderr)",
        port = nginx.port
    );
    let command = ["python3".to_owned(), "-c".to_owned(), script];
    let output = work.path().join("recordings");
    let mut args = vec!["--output", output.to_str().unwrap(), "--"];
    args.extend(command.iter().map(String::as_str));
    let mut recorder = Recorder::start(&args);
    let pid = recorder.spawned_pid();
    let line = recorder.wait_for_line("recorderd: 1 TLS connection was recorded as ciphertext");
    assert!(
        line.contains(&format!("pid {pid} has no OpenSSL/GnuTLS mapped")),
        "{line}"
    );
    let recording = Recording::read(&recorder.finish());
    let marked: Vec<_> = recording
        .events
        .iter()
        .filter_map(|e| e.payload.as_ref())
        .filter(|p| p.tls_not_decrypted)
        .collect();
    for direction in [Direction::Out, Direction::In] {
        assert!(
            marked.iter().any(|p| p.direction() == direction),
            "no {direction:?} payload marked: {:#?}",
            recording.events
        );
    }
}

#[test]
fn psql_with_sslmode_require_is_recorded_as_sql_without_its_password() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let certs = work.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let (cert, key) = make_certificate(&certs);
    let password = "Pg-tls-s3cret-77Kq";
    let pg_dir = work.path().join("pg");
    let settings = [
        "ssl=on".to_owned(),
        format!("ssl_cert_file={}", pg_dir.join("cert.pem").display()),
        format!("ssl_key_file={}", pg_dir.join("key.pem").display()),
    ];
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    let server = Postgres::start(
        work.path(),
        password,
        &settings,
        &[
            ("cert.pem", &std::fs::read(&cert).unwrap()),
            ("key.pem", &std::fs::read(&key).unwrap()),
        ],
    );
    let conninfo = format!("{} sslmode=require", server.conninfo());
    let sql = "SELECT 'tls-visible-sql' AS probe";
    let command = ["psql", &conninfo, "-Atc", sql].map(String::from);
    let output = work.path().join("recordings");
    let mut args = vec!["--output", output.to_str().unwrap(), "--"];
    args.extend(command.iter().map(String::as_str));
    let segment = Recorder::start_with_env(&args, &[("PGPASSWORD", password)]).finish();
    let port = server.port;
    drop(server);

    let raw = decompressed_segment(&segment);
    assert!(
        !contains(&raw, password.as_bytes()),
        "the password is recorded"
    );
    let recording = Recording::read(&segment);
    let events = recording.of_pid(recording.first_target());

    let calls = plaintext(&events, "openssl", port);
    let sent = bytes(&calls, Direction::Out);
    assert!(
        contains(&sent, sql.as_bytes()),
        "the SQL is in the plaintext: {:?}",
        String::from_utf8_lossy(&sent)
    );
    // The password crossed inside TLS, in a PasswordMessage, and was masked there.
    let masked_password = [
        &[b'p', 0, 0, 0, 4 + password.len() as u8 + 1][..],
        "*".repeat(password.len()).as_bytes(),
    ]
    .concat();
    assert!(
        contains(&sent, &masked_password),
        "{:?}",
        String::from_utf8_lossy(&sent)
    );
    // PostgreSQL's SSLRequest went before TLS, on the same descriptor, in the clear.
    assert!(events.iter().any(|e| e.fd == calls[0].fd
        && e.tls.is_none()
        && e.payload
            .as_ref()
            .is_some_and(|p| p.data == [0, 0, 0, 8, 4, 210, 22, 47])));
}

#[test]
fn a_private_copy_of_libssl_mapped_by_a_target_is_probed_at_attach() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_https(work.path(), BODY);
    // The program's own libssl, as a virtualenv or a bundle would have it: another file than
    // the system's, so the system's probes do not fire for it.
    let private = work.path().join("private-lib");
    std::fs::create_dir(&private).unwrap();
    let system = Path::new("/usr/lib/x86_64-linux-gnu/libssl.so.3");
    let copy = private.join("libssl.so.3");
    std::fs::copy(system, &copy).unwrap();
    // python loads libssl with its ssl module, says so, and waits for a line before it
    // makes its request: by then recorderd has attached by pid.
    let script = format!(
        "import http.client, ssl, sys; \
         ctx = ssl.create_default_context(cafile='{cert}'); \
         print('ready', flush=True); sys.stdin.readline(); \
         c = http.client.HTTPSConnection('localhost', {port}, context=ctx); \
         c.request('GET', '/private-copy'); print(c.getresponse().read().decode(), file=sys.stderr)",
        cert = nginx.cert.display(),
        port = nginx.port
    );
    let mut python = Command::new("python3")
        .args(["-c", &script])
        .env("LD_LIBRARY_PATH", &private)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(python.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", python.id())).unwrap();
    assert!(
        maps.contains(copy.to_str().unwrap()),
        "python maps the private copy"
    );
    let output = work.path().join("recordings");
    let pid = python.id().to_string();
    let recorder = Recorder::start(&["--output", output.to_str().unwrap(), "--pid", &pid]);
    std::io::Write::write_all(python.stdin.as_mut().unwrap(), b"go\n").unwrap();
    assert!(python.wait().unwrap().success());
    let recording = Recording::read(&recorder.finish());
    let limits = recording.header.as_ref().unwrap().limits.clone().unwrap();
    assert!(
        limits
            .tls_libraries
            .contains(&format!("openssl {}", copy.display())),
        "{:?}",
        limits.tls_libraries
    );
    let events = recording.of_pid(python.id());
    let calls = plaintext(&events, "openssl", nginx.port);
    let sent = String::from_utf8(bytes(&calls, Direction::Out)).unwrap();
    assert!(
        sent.starts_with("GET /private-copy HTTP/1.1\r\n"),
        "{events:#?}"
    );
}
