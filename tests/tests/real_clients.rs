//! A real client against a real server: curl fetching a page from python3's http.server on
//! loopback. The request curl sent and the response it got appear byte for byte in the
//! recording, on the right connection. See: issue #3.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Command, Stdio},
};

use recorder_proto::v1::{payload::Direction, Event};
use recorder_tests::{
    patient_redaction_config, payload_bytes, require_privileges, Recorder, Recording,
};

/// Bytes of one direction on one fd, in recorded order.
fn stream(events: &[&Event], fd: i64, direction: Direction) -> Vec<u8> {
    payload_bytes(events.iter().copied().filter(|e| e.fd == fd), direction)
}

#[test]
fn curl_against_python_http_server() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let site = work.path().join("site");
    std::fs::create_dir(&site).unwrap();
    let page: Vec<u8> = (0..20_000u32)
        .map(|i| b"recorderd page\n"[(i % 15) as usize])
        .collect();
    std::fs::write(site.join("page.txt"), &page).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&site)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 (cargo xtask setup installs it)");
    let mut ready = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("Serving HTTP"), "{ready}");

    let saved = work.path().join("saved.txt");
    let url = format!("http://127.0.0.1:{port}/page.txt");
    let recordings = work.path().join("recordings");
    // The body arrives in pieces that end mid-line; each is decided when the next arrives,
    // which emulated came after the default 200 ms bound. This test is about the bytes.
    let config = patient_redaction_config(work.path());
    let recorder = Recorder::start(&[
        "--config",
        config.to_str().unwrap(),
        "--output",
        recordings.to_str().unwrap(),
        "--",
        "curl",
        "-sS",
        "-o",
        saved.to_str().unwrap(),
        &url,
    ]);
    let recording = Recording::read(&recorder.finish());
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        page,
        "curl fetched the page"
    );

    let curl_pid = recording.first_target();
    let events = recording.of_pid(curl_pid);
    let connect = events
        .iter()
        .find(|e| {
            e.syscall == "connect"
                && e.address
                    .as_ref()
                    .is_some_and(|a| a.port == u32::from(port))
        })
        .unwrap_or_else(|| panic!("no connect to port {port}"));
    let fd = connect.fd;
    let sent = stream(&events, fd, Direction::Out);
    let request = String::from_utf8_lossy(&sent);
    assert!(
        request.starts_with("GET /page.txt HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("Host: 127.0.0.1:{port}\r\n")) && request.ends_with("\r\n\r\n"),
        "{request}"
    );

    let received = stream(&events, fd, Direction::In);
    let split = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of response headers")
        + 4;
    let (head, body) = received.split_at(split);
    let head = String::from_utf8_lossy(head);
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", page.len())),
        "{head}"
    );
    assert_eq!(
        body,
        page.as_slice(),
        "the body curl saved, byte for byte, on the connection's fd"
    );
    for event in events.iter().filter(|e| e.fd == fd && e.payload.is_some()) {
        assert_eq!(
            event.resource.as_ref().unwrap().peer,
            connect.address,
            "attributed to the right connection"
        );
    }
}
