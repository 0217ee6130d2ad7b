use recorder_proto::v1::{payload::Direction, Resource};

use super::*;

#[test]
fn renders_an_open_and_a_write() {
    let clock = Clock::new(Some(&ClockBase {
        monotonic_ns: 1_000,
        realtime_ns: 3_600_000_000_000,
    }));
    let open = Event {
        mono_ns: 1_000,
        pid: 5,
        tid: 6,
        syscall: "openat".into(),
        args: vec![(-100i64) as u64, 0, (libc::O_WRONLY | libc::O_CREAT) as u64],
        path: "/tmp/a".into(),
        ret: 3,
        fd: 3,
        ..Event::default()
    };
    assert_eq!(
        event(&clock, &open),
        "01:00:00.000000  5/6  openat    \"/tmp/a\" O_WRONLY|O_CREAT → fd 3"
    );
    let write = Event {
        mono_ns: 2_001_000,
        pid: 5,
        tid: 6,
        syscall: "write".into(),
        fd: 3,
        ret: 6,
        resource: Some(Box::new(Resource {
            kind: Kind::File.into(),
            name: "/tmp/a".into(),
            ..Resource::default()
        })),
        payload: Some(Payload {
            direction: Direction::Out.into(),
            data: b"hi\n\x00\"!".to_vec(),
            length: 6,
            ..Payload::default()
        }),
        ..Event::default()
    };
    assert_eq!(
        event(&clock, &write),
        "01:00:00.002000  5/6  write     fd 3 (/tmp/a) → 6  [6 B] \"hi\\n\\x00\\\"!\""
    );
}

#[test]
fn paths_socket_types_and_chosen_ports_are_shown() {
    let unlink = Event {
        syscall: "unlink".into(),
        fd: -1,
        path: "/tmp/gone".into(),
        ..Event::default()
    };
    assert!(event(&Clock::default(), &unlink).ends_with("unlink    \"/tmp/gone\" → 0"));
    let rename = Event {
        syscall: "rename".into(),
        fd: -1,
        path: "a".into(),
        new_path: "b".into(),
        ..Event::default()
    };
    assert!(event(&Clock::default(), &rename).ends_with("\"a\" → \"b\" → 0"));
    let socket = Event {
        syscall: "socket".into(),
        args: vec![
            libc::AF_INET as u64,
            (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as u64,
            0,
        ],
        fd: 3,
        ret: 3,
        ..Event::default()
    };
    assert!(event(&Clock::default(), &socket)
        .ends_with("socket    AF_INET SOCK_STREAM|SOCK_CLOEXEC → fd 3"));
    let any_port = recorder_proto::v1::SocketAddress {
        family: libc::AF_INET as u32,
        ip: vec![127, 0, 0, 1],
        ..Default::default()
    };
    let bind = Event {
        syscall: "bind".into(),
        fd: 3,
        address: Some(any_port.clone()),
        resource: Some(Box::new(Resource {
            kind: Kind::Socket.into(),
            local: Some(recorder_proto::v1::SocketAddress {
                port: 41234,
                ..any_port
            }),
            ..Resource::default()
        })),
        ..Event::default()
    };
    assert!(event(&Clock::default(), &bind)
        .ends_with("fd 3 127.0.0.1:0 (port 41234 chosen by the kernel) → 0"));
}

#[test]
fn errors_show_their_errno_name() {
    let failed = Event {
        syscall: "read".into(),
        fd: 9,
        ret: -9,
        ..Event::default()
    };
    assert!(event(&Clock::default(), &failed).ends_with("fd 9 → -EBADF"));
}

#[test]
fn a_tls_call_says_so_and_its_ciphertext_says_it_was_left_out() {
    let ssl_read = Event {
        syscall: "SSL_read".into(),
        fd: 5,
        ret: -1,
        tls: Some(recorder_proto::v1::Tls {
            library: "openssl".into(),
        }),
        ..Event::default()
    };
    // A library's result, not an errno (-1 is not EPERM here).
    assert!(
        event(&Clock::default(), &ssl_read).ends_with("SSL_read  tls openssl fd 5 → -1 (no bytes)")
    );
    let ciphertext = Payload {
        length: 517,
        omitted_bytes: 517,
        tls_ciphertext: true,
        ..Payload::default()
    };
    assert_eq!(
        payload_preview(&ciphertext),
        "[517 B] \"\" (TLS ciphertext, not kept: its plaintext is recorded)"
    );
    let foreign = Payload {
        data: b"\x16\x03\x01".to_vec(),
        length: 3,
        tls_not_decrypted: true,
        ..Payload::default()
    };
    assert!(payload_preview(&foreign)
        .ends_with("(TLS ciphertext, not decrypted: no probed TLS library moved it)"));
}
