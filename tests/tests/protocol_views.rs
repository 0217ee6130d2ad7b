//! HTTP as protocol views of real recordings: curl against python3's http.server and HTTPS
//! nginx. The conversations view lists each exchange; the HAR export is read by a HAR library
//! (haralyzer) and the pcapng export by tshark, and both say what the recording holds. The
//! timeline shows what each event holds. See: issue #15.

use std::{path::Path, process::Command};

use recorder_proto::v1::{payload::Direction, Event};
use recorder_tests::{
    binary, payload_bytes, require_privileges,
    servers::{free_port, start_server, Nginx},
    unhex,
    views::{conversations, exchanges, export, record, recorder, text_of, tshark},
    Recorder, Recording,
};
use serde_json::Value;

/// Reads a HAR file with haralyzer (installed by `cargo xtask setup` into target/python):
/// one line per entry: method, url, status, the request's HTTP version, response body.
fn haralyzer_entries(har: &Path) -> Vec<Vec<String>> {
    let packages = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/python");
    assert!(
        packages.join("haralyzer").is_dir(),
        "haralyzer is not in {}: run `cargo xtask setup`",
        packages.display()
    );
    let script = "import json, sys\n\
        from haralyzer import HarParser\n\
        parser = HarParser(json.load(open(sys.argv[1])))\n\
        for page in parser.pages:\n\
        \x20   for entry in page.entries:\n\
        \x20       print(json.dumps([entry.request.method, entry.request.url,\n\
        \x20           str(entry.response.status), entry.request.raw_entry['httpVersion'],\n\
        \x20           entry.response.text]))\n";
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(har)
        .env("PYTHONPATH", packages)
        .output()
        .unwrap();
    text_of(&output, "haralyzer")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The bytes of TCP stream 0 each way, from `tshark -z follow,tcp,raw,0` (the server's
/// lines are indented by a tab).
fn followed(pcapng: &Path) -> (Vec<u8>, Vec<u8>) {
    let text = tshark(pcapng, &["-q", "-z", "follow,tcp,raw,0"]);
    let (mut client, mut server) = (Vec::new(), Vec::new());
    let data = text
        .lines()
        .skip_while(|l| !l.starts_with("Node 1:"))
        .skip(1)
        .take_while(|l| !l.starts_with("===="));
    for line in data {
        match line.strip_prefix('\t') {
            Some(hex) => server.extend(unhex(hex.trim())),
            None if !line.trim().is_empty() => client.extend(unhex(line.trim())),
            None => {}
        }
    }
    (client, server)
}

/// Bytes one way on `fd` of the process.
fn stream(events: &[&Event], fd: i64, direction: Direction) -> Vec<u8> {
    payload_bytes(events.iter().copied().filter(|e| e.fd == fd), direction)
}

struct HttpServer {
    child: std::process::Child,
    port: u16,
}

impl HttpServer {
    /// Serves `page()` as /page.txt from a site directory made in `work`.
    fn serving_page(work: &Path) -> HttpServer {
        let site = work.join("site");
        std::fs::create_dir(&site).unwrap();
        std::fs::write(site.join("page.txt"), page()).unwrap();
        HttpServer::start(&site)
    }

    /// python3's http.server on a loopback port, serving `site`.
    fn start(site: &Path) -> HttpServer {
        let port = free_port();
        let child = start_server(
            Command::new("python3")
                .args(["-u", "-m", "http.server", "--bind", "127.0.0.1"])
                .arg(port.to_string())
                .current_dir(site),
            "Serving HTTP",
        );
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn page() -> Vec<u8> {
    (0..6_000u32)
        .map(|i| b"recorderd protocol page\n"[(i % 24) as usize])
        .collect()
}

#[test]
fn http_exchanges_are_listed_exported_to_har_and_followed_by_tshark() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let server = HttpServer::serving_page(work.path());
    let base = format!("http://127.0.0.1:{}", server.port);
    // The GET is answered; http.server refuses the POST with 501. Bodies go to stderr:
    // recorderd's stdout names the recording.
    let script = format!(
        "curl -sS -o /dev/stderr '{base}/page.txt?lang=en' && \
         curl -sS -o /dev/stderr -d 'name=ann' '{base}/submit'"
    );
    let segment = record(&work.path().join("rec"), &[], &["sh", "-c", &script], &[]);

    let text = recorder(&["conversations", segment.to_str().unwrap()]);
    assert!(text.contains("GET /page.txt?lang=en → 200 OK"), "{text}");
    assert!(text.contains("POST /submit → 501"), "{text}");
    let connections = conversations(&segment, &["--proto", "http"]);
    assert_eq!(
        connections.len(),
        2,
        "one connection per curl: {connections:#?}"
    );
    let all = exchanges(&connections);
    let get = &all[0]["http1"];
    assert_eq!(
        (get["method"].as_str(), get["status"].as_u64()),
        (Some("GET"), Some(200))
    );
    assert_eq!(
        get["response_body"]["length"].as_u64(),
        Some(page().len() as u64)
    );
    assert!(all[0]["latency_ns"].as_u64().unwrap() > 0);
    let errors = exchanges(&conversations(&segment, &["--errors"]));
    assert_eq!(errors.len(), 1, "only the POST failed: {errors:#?}");
    assert_eq!(errors[0]["http1"]["status"].as_u64(), Some(501));

    let stats: Value =
        serde_json::from_str(&recorder(&["stats", "--json", segment.to_str().unwrap()])).unwrap();
    let http1 = &stats["protocols"][0];
    assert_eq!(
        (
            http1["protocol"].as_str(),
            http1["exchanges"].as_u64(),
            http1["errors"].as_u64()
        ),
        (Some("http1"), Some(2), Some(1))
    );
    assert!(
        http1["latency"]["p50_ns"].as_u64().is_some_and(|ns| ns > 0),
        "{http1}"
    );
    let peer = format!("127.0.0.1:{}", server.port);
    assert!(
        stats["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer"] == peer.as_str() && p["connections"] == 2),
        "{stats}"
    );

    let har = work.path().join("rec.har");
    export(&segment, "har", &har);
    let entries = haralyzer_entries(&har);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(
        entries[0][..4],
        [
            "GET",
            &format!("{base}/page.txt?lang=en"),
            "200",
            "HTTP/1.1"
        ]
    );
    assert_eq!(entries[0][4].as_bytes(), page(), "the body, as served");
    assert_eq!(entries[1][..3], ["POST", &format!("{base}/submit"), "501"]);

    let pcapng = work.path().join("rec.pcapng");
    export(&segment, "pcapng", &pcapng);
    let recording = Recording::read(&segment);
    let curl = recording
        .events
        .iter()
        .find(|e| {
            e.syscall == "connect"
                && e.address
                    .as_ref()
                    .is_some_and(|a| a.port == u32::from(server.port))
        })
        .expect("curl's connect");
    let events = recording.of_pid(curl.pid);
    let (sent, received) = followed(&pcapng);
    assert_eq!(
        sent,
        stream(&events, curl.fd, Direction::Out),
        "the request, byte for byte"
    );
    assert_eq!(
        received,
        stream(&events, curl.fd, Direction::In),
        "the response, byte for byte"
    );
    // curl asked for its local port (getsockname): the export's packets carry the real one.
    let local = connections[0]["local"]
        .as_str()
        .expect("curl's local address");
    let syn_port = tshark(
        &pcapng,
        &[
            "-Y",
            "tcp.flags.syn == 1 && tcp.flags.ack == 0",
            "-T",
            "fields",
            "-e",
            "tcp.srcport",
        ],
    );
    assert_eq!(
        Some(syn_port.lines().next().unwrap()),
        local.rsplit(':').next(),
        "{local}"
    );
    let decode = format!("tcp.port=={},http", server.port);
    let requests = tshark(
        &pcapng,
        &[
            "-d",
            &decode,
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.method",
            "-e",
            "http.request.uri",
        ],
    );
    assert_eq!(
        requests.lines().collect::<Vec<_>>(),
        ["GET\t/page.txt?lang=en", "POST\t/submit"],
        "every request, as tshark dissects it"
    );
}

#[test]
fn a_capped_recording_exports_with_its_gaps_visible() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let server = HttpServer::serving_page(work.path());
    let url = format!("http://127.0.0.1:{}/page.txt", server.port);
    // Reads past 1 KiB keep their first KiB only: the body has holes.
    let segment = record(
        &work.path().join("rec"),
        &["--max-payload", "1024"],
        &["curl", "-sS", "-o", "/dev/stderr", &url],
        &[],
    );
    let text = recorder(&["conversations", segment.to_str().unwrap()]);
    assert!(text.contains("GET /page.txt → 200 OK"), "{text}");
    assert!(
        text.contains("(incomplete: bytes missing from the recording)"),
        "{text}"
    );
    assert!(
        text.contains("gap(s) where bytes are not in the recording"),
        "{text}"
    );

    let pcapng = work.path().join("rec.pcapng");
    export(&segment, "pcapng", &pcapng);
    let jumps = tshark(
        &pcapng,
        &[
            "-Y",
            "tcp.analysis.lost_segment",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
    );
    assert!(
        !jumps.trim().is_empty(),
        "tshark sees the sequence jump of the missing bytes"
    );
    let comments = tshark(
        &pcapng,
        &["-Y", "frame.comment", "-T", "fields", "-e", "frame.comment"],
    );
    assert!(comments.contains("not in the recording"), "{comments}");
    let (sent, _) = followed(&pcapng);
    assert!(
        sent.starts_with(b"GET /page.txt HTTP/1.1\r\n"),
        "the request still reads"
    );
}

#[test]
fn http2_over_tls_is_exported_to_har_with_its_plaintext() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let nginx = Nginx::start_https(work.path(), "recorderd-h2-body");
    let url = nginx.url("/h2?x=1");
    let segment = record(
        &work.path().join("rec"),
        &[],
        &[
            "curl",
            "-sS",
            "-o",
            "/dev/stderr",
            "--http2",
            "--cacert",
            nginx.cert.to_str().unwrap(),
            &url,
        ],
        &[],
    );
    let connections = conversations(&segment, &["--proto", "http2"]);
    assert_eq!(connections.len(), 1, "{connections:#?}");
    assert_eq!(connections[0]["tls"]["decrypted"], Value::Bool(true));
    let har = work.path().join("rec.har");
    export(&segment, "har", &har);
    let entries = haralyzer_entries(&har);
    assert_eq!(
        entries,
        [["GET", &url, "200", "h2", "recorderd-h2-body"]
            .map(String::from)
            .to_vec()]
    );
}
#[test]
fn the_timeline_shows_paths_socket_types_and_the_port_the_kernel_chose() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (port_file, doomed, gate) = (
        work.path().join("port"),
        work.path().join("doomed.txt"),
        work.path().join("gate"),
    );
    let made = Command::new("mkfifo").arg(&gate).status().unwrap();
    assert!(made.success());
    // Bound, never listening: only the socket itself knows its port. The program holds it
    // until the test has seen the bind recorded (the kernel's choice is read while the
    // socket lives).
    let script = format!(
        "import socket, os\n\
         open('{doomed}', 'w').close()\n\
         os.unlink('{doomed}')\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         s.bind(('127.0.0.1', 0))\n\
         open('{port}', 'w').write(str(s.getsockname()[1]))\n\
         open('{gate}').read()\n",
        doomed = doomed.display(),
        port = port_file.display(),
        gate = gate.display()
    );
    let output = work.path().join("rec");
    let recorder_process = Recorder::start(&[
        "--output",
        output.to_str().unwrap(),
        "--",
        "python3",
        "-c",
        &script,
    ]);
    let started = std::time::Instant::now();
    let timeline = loop {
        assert!(
            started.elapsed() < *recorder_tests::STEP_TIMEOUT,
            "the bind was never recorded"
        );
        let segments = if output.is_dir() {
            recorder_tests::segment_files(&output)
        } else {
            Vec::new()
        };
        if let Some(segment) = segments.first() {
            // The segment is still being written: inspect says so (exit 3) and prints what is there.
            let shown = Command::new(binary("recorder"))
                .arg("inspect")
                .arg(segment)
                .output()
                .unwrap();
            let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
            if shown.lines().any(|l| l.contains("  bind  ")) {
                break shown;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    std::fs::write(&gate, "go").unwrap();
    let segment = recorder_process.finish();
    let chosen = std::fs::read_to_string(&port_file).unwrap();
    let line_of = |syscall: &str, needle: &str| {
        timeline
            .lines()
            .find(|l| l.contains(syscall) && l.contains(needle))
            .unwrap_or_else(|| panic!("no {syscall} line with {needle:?} in:\n{timeline}"))
            .to_owned()
    };
    line_of("unlink", &format!("{:?}", doomed.display().to_string()));
    line_of("socket", "AF_INET SOCK_STREAM");
    line_of(
        "bind",
        &format!("127.0.0.1:0 (port {chosen} chosen by the kernel)"),
    );
    let export = recorder(&["export", segment.to_str().unwrap()]);
    let bind: Value = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["syscall"] == "bind")
        .expect("a bind event");
    assert_eq!(
        bind["resource"]["local"],
        format!("127.0.0.1:{chosen}").as_str()
    );
    assert_eq!(bind["resource"]["socket_family_name"], "AF_INET");
    assert_eq!(bind["resource"]["socket_type_name"], "SOCK_STREAM");
}
