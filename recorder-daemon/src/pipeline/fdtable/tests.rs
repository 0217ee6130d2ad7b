use super::*;

fn event(syscall: &str, fd: i64, ret: i64) -> Event {
    Event {
        pid: 1,
        syscall: syscall.to_owned(),
        syscall_nr: recorder_syscalls::by_name(syscall).map_or(u32::MAX, |row| row.nr as u32),
        fd,
        ret,
        ..Event::default()
    }
}

#[test]
fn open_names_the_fd_until_close() {
    let mut table = FdTable::default();
    let mut open = Event {
        path: "/tmp/a".into(),
        ..event("openat", 3, 3)
    };
    table.apply(&mut open, &mut Spare::default());
    let mut write = event("write", 3, 5);
    table.apply(&mut write, &mut Spare::default());
    assert_eq!(write.resource.unwrap().name, "/tmp/a");
    let mut close = event("close", 3, 0);
    table.apply(&mut close, &mut Spare::default());
    assert_eq!(close.resource.unwrap().name, "/tmp/a");
    let mut stale = event("read", 3, -9);
    table.apply(&mut stale, &mut Spare::default());
    assert_eq!(stale.resource.unwrap().kind(), Kind::Unknown);
}

/// `event`, begun at `entered_ns` and ended at `ended_ns` by thread `tid`.
fn timed(event: Event, tid: u32, entered_ns: u64, ended_ns: u64) -> Event {
    Event {
        tid,
        mono_ns: ended_ns,
        duration_ns: ended_ns - entered_ns,
        ..event
    }
}

/// Thread 2 closes a socket on fd 4 from t=20 to t=40; thread 1 opens a file as fd 4 at
/// t=25..30 and writes to it. The close's event comes last, as it ended last.
#[test]
fn a_close_seen_after_the_number_was_reused_closes_what_it_began_on() {
    let mut table = FdTable::default();
    let mut apply = |event: Event| {
        let mut event = event;
        table.apply(&mut event, &mut Spare::default());
        event.resource.unwrap().name
    };
    let file = |event: Event| Event {
        path: "/tmp/a".into(),
        ..event
    };
    assert_eq!(apply(timed(event("socket", 4, 4), 2, 1, 2)), "socket");
    // Thread 2's read began before the close and ended after the reuse.
    let blocked_read = timed(event("read", 4, 0), 2, 15, 35);
    assert_eq!(
        apply(timed(file(event("openat", 4, 4)), 1, 25, 30)),
        "/tmp/a"
    );
    assert_eq!(apply(timed(event("write", 4, 5), 1, 31, 32)), "/tmp/a");
    assert_eq!(apply(blocked_read), "socket");
    assert_eq!(apply(timed(event("close", 4, 0), 2, 20, 40)), "socket");
    assert_eq!(apply(timed(event("write", 4, 5), 1, 41, 42)), "/tmp/a");
    assert_eq!(apply(timed(event("close", 4, 0), 1, 43, 44)), "/tmp/a");
    assert_eq!(apply(timed(event("write", 4, -9), 1, 45, 46)), "");
}

#[test]
fn connect_sets_the_peer_and_seed_reads_proc() {
    let mut table = FdTable::default();
    let peer = SocketAddress {
        family: 2,
        ip: vec![127, 0, 0, 1],
        port: 80,
        ..Default::default()
    };
    let mut connect = Event {
        address: Some(peer.clone()),
        ..event("connect", 4, 0)
    };
    table.apply(&mut connect, &mut Spare::default());
    assert_eq!(connect.resource.unwrap().peer, Some(peer));

    let file = tempfile::tempfile().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    table.seed(std::process::id());
    let mut read = Event {
        pid: std::process::id(),
        ..event("read", fd.into(), 0)
    };
    table.apply(&mut read, &mut Spare::default());
    assert_eq!(read.resource.unwrap().kind(), Kind::File);
}

fn loopback(port: u16) -> SocketAddress {
    SocketAddress {
        family: libc::AF_INET as u32,
        ip: vec![127, 0, 0, 1],
        port: port.into(),
        ..Default::default()
    }
}

#[test]
fn bind_to_port_zero_and_connect_learn_the_port_the_kernel_chose() {
    use std::os::fd::AsRawFd;
    let mut table = FdTable::default();
    let pid = std::process::id();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut bind = Event {
        pid,
        address: Some(loopback(0)),
        ..event("bind", listener.as_raw_fd().into(), 0)
    };
    table.apply(&mut bind, &mut Spare::default());
    let chosen = listener.local_addr().unwrap().port();
    assert_eq!(bind.resource.unwrap().local, Some(loopback(chosen)));

    let client = std::net::TcpStream::connect(("127.0.0.1", chosen)).unwrap();
    let mut connect = Event {
        pid,
        address: Some(loopback(chosen)),
        ..event("connect", client.as_raw_fd().into(), 0)
    };
    table.apply(&mut connect, &mut Spare::default());
    let resource = connect.resource.unwrap();
    assert_eq!(resource.peer, Some(loopback(chosen)));
    let local_port = client.local_addr().unwrap().port();
    assert_eq!(resource.local, Some(loopback(local_port)));
}

#[test]
fn a_bound_socket_not_yet_listening_names_its_port_and_a_reused_fd_is_not_guessed() {
    use rustix::net::{bind, getsockname, socket, AddressFamily, SocketType};
    use std::os::fd::AsRawFd;
    let bound = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&bound, &std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let port = std::net::SocketAddr::try_from(getsockname(&bound).unwrap())
        .unwrap()
        .port();
    let pid = std::process::id();
    let fd = i64::from(bound.as_raw_fd());
    let mut table = FdTable::default();
    let mut bind_event = Event {
        pid,
        address: Some(loopback(0)),
        ..event("bind", fd, 0)
    };
    table.apply(&mut bind_event, &mut Spare::default());
    assert_eq!(bind_event.resource.unwrap().local, Some(loopback(port)));

    // The event says 127.0.0.2, the descriptor now holds a socket bound elsewhere.
    let elsewhere = SocketAddress {
        ip: vec![127, 0, 0, 2],
        ..loopback(0)
    };
    let mut stale = Event {
        pid,
        address: Some(elsewhere.clone()),
        ..event("bind", fd, 0)
    };
    table.apply(&mut stale, &mut Spare::default());
    assert_eq!(stale.resource.unwrap().local, Some(elsewhere));
}
