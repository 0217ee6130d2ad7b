//! `recorder export --format pcapng` read by tshark: an HTTP exchange recorded as payloads
//! must come out as a TCP stream that tshark follows, dissects and finds clean. Needs
//! tshark (CI installs it); fails, never skips, without it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use recorder_proto::v1::{
    frame::Body, payload::Direction, resource::Kind, Event, Payload, Resource, SocketAddress,
};
use recorder_reader::{command::export::pcapng, connections::Connections};

const REQUEST: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n";
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n";

fn tshark() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("tshark"))
        .chain([PathBuf::from("/usr/bin/tshark")])
        .find(|candidate| candidate.is_file());
    found.expect("tshark is not installed: this test needs it (apt-get install tshark)")
}

fn address(ip: [u8; 4], port: u32) -> SocketAddress {
    SocketAddress {
        family: libc::AF_INET as u32,
        ip: ip.to_vec(),
        port,
        ..Default::default()
    }
}

fn event(syscall: &str, mono_ns: u64, payload: Option<(Direction, &[u8])>) -> Event {
    Event {
        mono_ns,
        pid: 42,
        tid: 43,
        syscall: syscall.into(),
        fd: 5,
        resource: Some(Box::new(Resource {
            kind: Kind::Socket.into(),
            socket_family: libc::AF_INET as u32,
            socket_type: libc::SOCK_STREAM as u32,
            local: Some(address([192, 168, 1, 10], 51234)),
            peer: Some(address([93, 184, 216, 34], 80)),
            ..Resource::default()
        })),
        payload: payload.map(|(direction, data)| Payload {
            direction: direction.into(),
            data: data.to_vec(),
            length: data.len() as u64,
            ..Payload::default()
        }),
        ..Event::default()
    }
}

fn run(tshark: &Path, args: &[&str]) -> String {
    let output = Command::new(tshark)
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        output.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn tshark_follows_and_dissects_a_pcapng_export_of_http() {
    let tshark = tshark();
    let mut connections = Connections::default();
    for event in [
        event("socket", 1_000_000, None),
        event("connect", 2_000_000, None),
        event("write", 3_000_000, Some((Direction::Out, REQUEST))),
        event("read", 9_000_000, Some((Direction::In, RESPONSE))),
        event("close", 10_000_000, None),
    ] {
        connections.visit(&Body::Event(Box::new(event)));
    }
    let connections = connections.finish();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("export.pcapng");
    let mut file = Vec::new();
    let written = pcapng::write(
        &connections,
        Some((0, 1_767_225_600_000_000_000)),
        "rec-1",
        &mut file,
    )
    .expect("written");
    assert_eq!(written.connections, 1);
    std::fs::write(&path, &file).expect("file written");
    let file = path.to_str().expect("a UTF-8 path");

    let ascii = run(&tshark, &["-r", file, "-q", "-z", "follow,tcp,ascii,0"]);
    for line in [
        "GET /index.html?q=1 HTTP/1.1",
        "Host: example.com",
        "hello world",
    ] {
        assert!(
            ascii.contains(line),
            "{line:?} not in the followed stream:\n{ascii}"
        );
    }
    let raw = run(&tshark, &["-r", file, "-q", "-z", "follow,tcp,raw,0"]);
    let raw: String = raw.split_whitespace().collect();
    for bytes in [REQUEST, RESPONSE] {
        assert!(
            raw.contains(&hex(bytes)),
            "exact bytes not in the stream:\n{raw}"
        );
    }

    let uris = run(
        &tshark,
        &[
            "-r",
            file,
            "-Y",
            "http.request",
            "-T",
            "fields",
            "-e",
            "http.request.uri",
        ],
    );
    assert_eq!(uris.trim(), "/index.html?q=1");

    let flagged = run(
        &tshark,
        &[
            "-r",
            file,
            "-Y",
            "tcp.analysis.flags or tcp.checksum.status == 0",
        ],
    );
    assert!(
        flagged.trim().is_empty(),
        "tshark flags packets:\n{flagged}"
    );
}
