//! A recording's sockets as connections: each descriptor's life from socket, connect or
//! accept to close, with the bytes it moved each way reassembled in recording order, the
//! gaps where bytes moved but are not in the recording, and every payload that moved them
//! (for exports that show them one by one). TLS connections carry their plaintext (the
//! library calls' events), not the ciphertext their syscalls moved.

use std::collections::HashMap;

use recorder_proto::v1::{
    frame::Body, payload::Direction, resource::Kind, Event, Loss, Payload, SocketAddress,
};
use recorder_protocols::{GapReason, Stream};

/// What a connection's socket is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    /// AF_UNIX stream or datagram socket (PostgreSQL's and Docker's default).
    Unix,
    /// A socket whose family the recording does not say (opened before the attach, and /proc
    /// did not know it), or another family.
    Other,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Unix => "unix",
            Transport::Other => "socket",
        }
    }
}

/// How the recording saw the connection begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The process called connect (it is the client).
    Connected,
    /// The process accepted it (it is the server).
    Accepted,
    /// socket() was recorded but neither connect nor accept (a UDP socket that sends to
    /// addresses, or a socket used before either).
    Created,
    /// Already open when the recording began, or handed over by another process.
    Existing,
}

/// The TLS state of a connection, as the recording says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    None,
    /// Plaintext recorded from this library's calls.
    Plaintext(String),
    /// TLS records that no probed library moved: the plaintext is not in the recording.
    NotDecrypted,
}

/// One payload's move, in order: where its bytes sit in its direction's stream.
#[derive(Clone, Debug)]
pub struct Move {
    pub at_ns: u64,
    pub tid: u32,
    /// The syscall or TLS function that moved it.
    pub syscall: String,
    pub outgoing: bool,
    /// Offset and length of its captured bytes in `Connection::out`/`incoming`.
    pub offset: usize,
    pub captured: usize,
    /// Bytes it moved that are not in the recording (lost, past the cap, withheld).
    pub missing: u64,
    /// The datagram's address (sendto/recvfrom) when the event names one.
    pub address: Option<SocketAddress>,
}

/// A socket's life in one process.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Order of first appearance in the recording, from 0.
    pub index: usize,
    pub pid: u32,
    pub fd: i64,
    pub transport: Transport,
    /// SOCK_STREAM or SOCK_DGRAM (0 when unknown).
    pub socket_type: u32,
    pub local: Option<SocketAddress>,
    pub peer: Option<SocketAddress>,
    pub opened: Opened,
    pub open_ns: u64,
    /// When close was recorded; `None` when the socket was still open at the end.
    pub close_ns: Option<u64>,
    pub tls: Tls,
    /// What the process sent and received.
    pub out: Stream,
    pub incoming: Stream,
    pub moves: Vec<Move>,
}

impl Connection {
    fn new(index: usize, event: &Event, opened: Opened) -> Self {
        let mut connection = Connection {
            index,
            pid: event.pid,
            fd: event.fd,
            transport: Transport::Other,
            socket_type: 0,
            local: None,
            peer: None,
            opened,
            open_ns: event.mono_ns,
            close_ns: None,
            tls: Tls::None,
            out: Stream::default(),
            incoming: Stream::default(),
            moves: Vec::new(),
        };
        connection.learn(event);
        connection
    }

    /// Takes what the event's resource knows of the socket (addresses can arrive late:
    /// a local port once bound, a peer once connected).
    fn learn(&mut self, event: &Event) {
        let Some(resource) = event.resource.as_ref().filter(|r| r.kind() == Kind::Socket) else {
            return;
        };
        if resource.socket_type != 0 {
            self.socket_type = resource.socket_type;
        }
        let family = Some(resource.socket_family)
            .filter(|&f| f != 0)
            .or_else(|| resource.peer.as_ref().map(|a| a.family))
            .or_else(|| resource.local.as_ref().map(|a| a.family));
        self.transport = match (family.map(|f| f as i32), self.socket_type as i32) {
            (Some(libc::AF_UNIX), _) => Transport::Unix,
            (Some(libc::AF_INET | libc::AF_INET6), libc::SOCK_DGRAM) => Transport::Udp,
            (Some(libc::AF_INET | libc::AF_INET6), _) => Transport::Tcp,
            _ => self.transport,
        };
        if resource.peer.is_some() {
            self.peer = resource.peer.clone();
        }
        if resource
            .local
            .as_ref()
            .is_some_and(|a| a.port != 0 || !a.unix_path.is_empty())
        {
            self.local = resource.local.clone();
        }
    }

    /// Bytes the process sent and received, as recorded and as moved.
    pub fn bytes(&self) -> (u64, u64) {
        let moved = |outgoing: bool| {
            self.moves
                .iter()
                .filter(|m| m.outgoing == outgoing)
                // Saturating: a damaged recording's counts can be anything.
                .map(|m| (m.captured as u64).saturating_add(m.missing))
                .fold(0, u64::saturating_add)
        };
        (moved(true), moved(false))
    }

    /// Datagrams in order (UDP): each payload is one.
    pub fn datagrams(&self) -> Vec<recorder_protocols::dns::Datagram<'_>> {
        self.moves
            .iter()
            .map(|m| {
                let stream = if m.outgoing {
                    &self.out
                } else {
                    &self.incoming
                };
                recorder_protocols::dns::Datagram {
                    at_ns: m.at_ns,
                    outgoing: m.outgoing,
                    bytes: &stream.bytes()[m.offset..m.offset + m.captured],
                }
            })
            .collect()
    }
}

/// Builds the connections of a recording from its frames, in order.
#[derive(Default)]
pub struct Connections {
    done: Vec<Connection>,
    /// Open connections by (pid, fd).
    open: HashMap<(u32, i64), Connection>,
    count: usize,
    /// Loss frames: a loss may have hidden a connection's bytes.
    pub losses: Vec<Loss>,
    /// TLS plaintext whose descriptor the recording does not know.
    pub unplaced_tls_events: u64,
}

impl Connections {
    pub fn visit(&mut self, body: &Body) {
        match body {
            Body::Event(event) => self.event(event),
            Body::Loss(loss) => self.losses.push(**loss),
            Body::Process(process) => {
                if process.kind() == recorder_proto::v1::process::Kind::Exit {
                    self.close_all_of(process.pid, process.mono_ns);
                }
            }
            Body::Header(_) | Body::Trailer(_) | Body::Stack(_) => {}
        }
    }

    /// Every connection, in order of first appearance.
    pub fn finish(mut self) -> Vec<Connection> {
        self.done.extend(self.open.into_values());
        self.done.sort_by_key(|c| c.index);
        self.done
    }

    fn event(&mut self, event: &Event) {
        if event.tls.is_some() && event.fd < 0 {
            self.unplaced_tls_events += u64::from(event.payload.is_some());
            return;
        }
        let is_socket = event
            .resource
            .as_ref()
            .is_some_and(|r| r.kind() == Kind::Socket);
        if !is_socket && event.tls.is_none() {
            return;
        }
        let key = (event.pid, event.fd);
        let begins = match event.syscall.as_str() {
            "socket" if event.ret >= 0 => Some(Opened::Created),
            "accept" | "accept4" if event.ret >= 0 => Some(Opened::Accepted),
            _ => None,
        };
        if let Some(opened) = begins {
            self.close(key, event.mono_ns);
            self.start(event, opened);
            return;
        }
        if event.syscall == "close" {
            // A close that began before the connection on its fd was opened closed an
            // earlier descriptor with that number: another thread's close, whose event came
            // after the reuse (docs/CAPTURE.md, "Resources"); that one ended when the number
            // was reused. A close is not a connection of its own either.
            let began_ns = event.mono_ns.saturating_sub(event.duration_ns);
            if self.open.get(&key).is_none_or(|c| began_ns < c.open_ns) {
                return;
            }
        }
        if !self.open.contains_key(&key) {
            self.start(event, Opened::Existing);
        }
        let Some(connection) = self.open.get_mut(&key) else {
            return;
        };
        connection.learn(event);
        if event.syscall == "connect" && connection.opened != Opened::Accepted {
            connection.opened = Opened::Connected;
        }
        if let Some(payload) = &event.payload {
            add_payload(connection, event, payload);
        }
        if event.syscall == "close" {
            self.close(key, event.mono_ns);
        }
    }

    fn start(&mut self, event: &Event, opened: Opened) {
        let connection = Connection::new(self.count, event, opened);
        self.count += 1;
        self.open.insert((event.pid, event.fd), connection);
    }

    fn close(&mut self, key: (u32, i64), at_ns: u64) {
        if let Some(mut connection) = self.open.remove(&key) {
            connection.close_ns = Some(at_ns);
            self.done.push(connection);
        }
    }

    fn close_all_of(&mut self, pid: u32, at_ns: u64) {
        let keys: Vec<_> = self.open.keys().filter(|k| k.0 == pid).copied().collect();
        for key in keys {
            self.close(key, at_ns);
        }
    }
}

fn add_payload(connection: &mut Connection, event: &Event, payload: &Payload) {
    if payload.tls_not_decrypted {
        connection.tls = Tls::NotDecrypted;
    }
    if let Some(tls) = &event.tls {
        if connection.tls != Tls::NotDecrypted {
            connection.tls = Tls::Plaintext(tls.library.clone());
        }
    } else if payload.tls_ciphertext {
        // The plaintext of these bytes is in the library call's event.
        return;
    }
    let outgoing = payload.direction() == Direction::Out;
    let stream = if outgoing {
        &mut connection.out
    } else {
        &mut connection.incoming
    };
    let offset = stream.bytes().len();
    stream.push(event.mono_ns, &payload.data);
    let withheld: u64 = if payload.data.is_empty() {
        payload.redactions.iter().map(|r| u64::from(r.length)).sum()
    } else {
        0
    };
    let missing = payload
        .length
        .saturating_sub((payload.data.len() as u64).saturating_add(payload.omitted_bytes));
    if missing > 0 || payload.incomplete {
        let reason = if withheld > 0 && payload.lost_bytes == 0 {
            GapReason::Withheld
        } else if payload.capped_bytes > 0 && payload.lost_bytes == 0 {
            GapReason::Capped
        } else {
            GapReason::Lost
        };
        stream.push_gap(event.mono_ns, missing, reason);
    }
    connection.moves.push(Move {
        at_ns: event.mono_ns,
        tid: event.tid,
        syscall: event.syscall.clone(),
        outgoing,
        offset,
        captured: payload.data.len(),
        missing,
        address: event.address.clone(),
    });
}

#[cfg(test)]
mod tests {
    use recorder_proto::v1::Resource;

    use super::*;

    fn socket_event(syscall: &str, mono_ns: u64, fd: i64, ret: i64) -> Event {
        Event {
            mono_ns,
            pid: 7,
            tid: 7,
            syscall: syscall.into(),
            fd,
            ret,
            resource: Some(Box::new(Resource {
                kind: Kind::Socket.into(),
                socket_family: libc::AF_INET as u32,
                socket_type: libc::SOCK_STREAM as u32,
                peer: Some(SocketAddress {
                    family: libc::AF_INET as u32,
                    ip: vec![127, 0, 0, 1],
                    port: 8000,
                    ..Default::default()
                }),
                ..Resource::default()
            })),
            ..Event::default()
        }
    }

    fn with_payload(mut event: Event, direction: Direction, data: &[u8], length: u64) -> Event {
        event.payload = Some(Payload {
            direction: direction.into(),
            data: data.to_vec(),
            length,
            incomplete: length > data.len() as u64,
            lost_bytes: length - data.len() as u64,
            ..Payload::default()
        });
        event
    }

    #[test]
    fn a_connection_collects_both_directions_until_close_and_marks_gaps() {
        let mut connections = Connections::default();
        let frames = [
            socket_event("socket", 1, 3, 3),
            socket_event("connect", 2, 3, 0),
            with_payload(socket_event("write", 3, 3, 5), Direction::Out, b"GET /", 5),
            with_payload(socket_event("read", 4, 3, 9), Direction::In, b"HTTP", 9),
            socket_event("close", 5, 3, 0),
            with_payload(socket_event("write", 6, 3, 2), Direction::Out, b"hi", 2),
        ];
        for event in frames {
            connections.visit(&Body::Event(Box::new(event)));
        }
        let all = connections.finish();
        assert_eq!(all.len(), 2, "a write after close is another connection");
        let first = &all[0];
        assert_eq!(
            (first.opened, first.transport),
            (Opened::Connected, Transport::Tcp)
        );
        assert_eq!(first.out.bytes(), b"GET /");
        assert_eq!(first.incoming.bytes(), b"HTTP");
        assert_eq!(first.incoming.gaps()[0].missing, 5);
        assert_eq!(first.close_ns, Some(5));
        assert_eq!(first.bytes(), (5, 9));
        assert_eq!(all[1].opened, Opened::Existing);
    }

    /// A damaged recording's payload counts can be anything; reading them saturates.
    #[test]
    fn counts_from_a_damaged_recording_saturate_rather_than_panic() {
        let mut connections = Connections::default();
        for mono_ns in [1, 2] {
            let mut event = socket_event("write", mono_ns, 3, 2);
            event.payload = Some(Payload {
                direction: Direction::Out.into(),
                data: b"hi".to_vec(),
                length: u64::MAX,
                omitted_bytes: u64::MAX,
                lost_bytes: u64::MAX,
                ..Payload::default()
            });
            connections.visit(&Body::Event(Box::new(event)));
            let mut lost = socket_event("write", mono_ns, 3, 2);
            lost.payload = Some(Payload {
                direction: Direction::Out.into(),
                length: u64::MAX,
                lost_bytes: u64::MAX,
                ..Payload::default()
            });
            connections.visit(&Body::Event(Box::new(lost)));
        }
        let all = connections.finish();
        assert_eq!(all[0].bytes(), (u64::MAX, 0));
    }

    /// Another thread's close of fd 3 runs from t=20 to t=40; fd 3 is made again at t=30 and
    /// used before that close's event comes: it neither ends the new connection nor starts one.
    #[test]
    fn a_close_seen_after_its_fd_was_reused_ends_neither_connection() {
        let mut connections = Connections::default();
        let late_close = Event {
            duration_ns: 20,
            ..socket_event("close", 40, 3, 0)
        };
        let frames = [
            socket_event("socket", 1, 3, 3),
            with_payload(socket_event("write", 2, 3, 1), Direction::Out, b"A", 1),
            socket_event("socket", 30, 3, 3),
            with_payload(socket_event("write", 31, 3, 1), Direction::Out, b"B", 1),
            late_close,
            with_payload(socket_event("write", 41, 3, 1), Direction::Out, b"C", 1),
            socket_event("close", 50, 3, 0),
            socket_event("close", 60, 4, 0),
        ];
        for event in frames {
            connections.visit(&Body::Event(Box::new(event)));
        }
        let all = connections.finish();
        let outs: Vec<&[u8]> = all.iter().map(|c| c.out.bytes()).collect();
        assert_eq!(outs, [&b"A"[..], b"BC"]);
        assert_eq!((all[0].close_ns, all[1].close_ns), (Some(30), Some(50)));
    }

    #[test]
    fn tls_ciphertext_is_left_out_and_plaintext_kept() {
        let mut connections = Connections::default();
        let mut ciphertext = socket_event("write", 1, 3, 30);
        ciphertext.payload = Some(Payload {
            direction: Direction::Out.into(),
            length: 30,
            omitted_bytes: 30,
            tls_ciphertext: true,
            ..Payload::default()
        });
        let mut plaintext = with_payload(
            socket_event("SSL_write", 2, 3, 5),
            Direction::Out,
            b"GET /",
            5,
        );
        plaintext.tls = Some(recorder_proto::v1::Tls {
            library: "openssl".into(),
        });
        connections.visit(&Body::Event(Box::new(ciphertext)));
        connections.visit(&Body::Event(Box::new(plaintext)));
        let all = connections.finish();
        assert_eq!(all[0].out.bytes(), b"GET /");
        assert!(all[0].out.gaps().is_empty());
        assert_eq!(all[0].tls, Tls::Plaintext("openssl".into()));
    }
}
