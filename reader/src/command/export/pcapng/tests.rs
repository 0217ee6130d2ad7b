use std::{net::IpAddr, time::Duration};

use etherparse::{NetHeaders, PacketHeaders, TcpHeader, TransportHeader};
use pcap_file::pcapng::{
    blocks::{enhanced_packet::EnhancedPacketOption, section_header::SectionHeaderOption},
    Block, PcapNgReader,
};
use recorder_proto::v1::{
    frame::Body, payload::Direction, resource::Kind, Event, Payload, Resource, SocketAddress,
};

use crate::connections::{Connection, Connections};

use super::write;

fn v4(ip: [u8; 4], port: u32) -> SocketAddress {
    SocketAddress {
        family: libc::AF_INET as u32,
        ip: ip.to_vec(),
        port,
        ..Default::default()
    }
}

fn event(syscall: &str, mono_ns: u64, fd: i64, family: i32, socket_type: i32) -> Event {
    let inet = family == libc::AF_INET;
    Event {
        mono_ns,
        pid: 7,
        tid: 8,
        syscall: syscall.into(),
        fd,
        ret: 0,
        resource: Some(Box::new(Resource {
            kind: Kind::Socket.into(),
            socket_family: family as u32,
            socket_type: socket_type as u32,
            local: inet.then(|| v4([10, 0, 0, 1], 5555)),
            peer: inet.then(|| v4([10, 0, 0, 2], 80)),
            ..Resource::default()
        })),
        ..Event::default()
    }
}

fn tcp(syscall: &str, mono_ns: u64) -> Event {
    event(syscall, mono_ns, 3, libc::AF_INET, libc::SOCK_STREAM)
}

fn with(mut event: Event, outgoing: bool, data: &[u8], length: u64, capped: bool) -> Event {
    let missing = length - data.len() as u64;
    let direction = if outgoing {
        Direction::Out
    } else {
        Direction::In
    };
    event.payload = Some(Payload {
        direction: direction.into(),
        data: data.to_vec(),
        length,
        incomplete: missing > 0,
        lost_bytes: if capped { 0 } else { missing },
        capped_bytes: if capped { missing } else { 0 },
        ..Payload::default()
    });
    event
}

fn connections(events: Vec<Event>) -> Vec<Connection> {
    let mut connections = Connections::default();
    for event in events {
        connections.visit(&Body::Event(Box::new(event)));
    }
    connections.finish()
}

/// A packet read back from the file.
#[derive(Debug)]
struct Seen {
    at: Duration,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    tcp: Option<TcpHeader>,
    payload: Vec<u8>,
    comment: String,
}

/// Reads the file back: the section comment and every packet, checking checksums.
fn read_back(file: &[u8]) -> (String, Vec<Seen>) {
    let mut reader = PcapNgReader::new(file).expect("a pcapng section");
    let mut packets = Vec::new();
    while let Some(block) = reader.next_block() {
        let Block::EnhancedPacket(epb) = block.expect("a block") else {
            continue;
        };
        let headers = PacketHeaders::from_ethernet_slice(&epb.data).expect("a frame");
        let payload = headers.payload.slice().to_vec();
        let (src, dst) = match headers.net.expect("an IP header") {
            NetHeaders::Ipv4(ip, _) => {
                assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                match headers.transport.as_ref().expect("a transport header") {
                    TransportHeader::Tcp(t) => {
                        assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, &payload).unwrap())
                    }
                    TransportHeader::Udp(u) => {
                        assert_eq!(u.checksum, u.calc_checksum_ipv4(&ip, &payload).unwrap())
                    }
                    other => panic!("unexpected {other:?}"),
                }
                (IpAddr::from(ip.source), IpAddr::from(ip.destination))
            }
            NetHeaders::Ipv6(ip, _) => (IpAddr::from(ip.source), IpAddr::from(ip.destination)),
            other => panic!("unexpected {other:?}"),
        };
        let (ports, tcp) = match headers.transport.expect("a transport header") {
            TransportHeader::Tcp(t) => ((t.source_port, t.destination_port), Some(t)),
            TransportHeader::Udp(u) => ((u.source_port, u.destination_port), None),
            other => panic!("unexpected {other:?}"),
        };
        let comment = epb
            .options
            .iter()
            .filter_map(|o| match o {
                EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                _ => None,
            })
            .collect();
        packets.push(Seen {
            at: epb.timestamp,
            src: (src, ports.0),
            dst: (dst, ports.1),
            tcp,
            payload,
            comment,
        });
    }
    let section = reader
        .section()
        .options
        .iter()
        .find_map(|o| match o {
            SectionHeaderOption::Comment(c) => Some(c.to_string()),
            _ => None,
        })
        .expect("a section comment");
    (section, packets)
}

fn export(connections: &[Connection]) -> (String, Vec<Seen>) {
    let mut file = Vec::new();
    write(
        connections,
        Some((0, 1_700_000_000_000_000_000)),
        "r1",
        &mut file,
    )
    .expect("written");
    read_back(&file)
}

/// Asserts each side's sequence numbers continue from its previous segment and every ACK
/// acknowledges all the other side sent. `jumps` are (packet index, from local, bytes): bytes
/// the side sent unseen before that packet.
fn assert_continuous(packets: &[Seen], local: (IpAddr, u16), jumps: &[(usize, bool, u32)]) {
    let mut next: [Option<u32>; 2] = [None, None];
    for (i, p) in packets.iter().enumerate() {
        for &(_, from_local, bytes) in jumps.iter().filter(|j| j.0 == i) {
            let side = &mut next[usize::from(!from_local)];
            *side = side.map(|n| n.wrapping_add(bytes));
        }
        let t = p.tcp.as_ref().expect("tcp");
        let (me, other) = if p.src == local { (0, 1) } else { (1, 0) };
        if let Some(expected) = next[me] {
            assert_eq!(t.sequence_number, expected, "seq of packet {i}");
        }
        if let (true, Some(expected)) = (t.ack, next[other]) {
            assert_eq!(t.acknowledgment_number, expected, "ack of packet {i}");
        }
        let length = p.payload.len() as u32 + u32::from(t.syn || t.fin);
        next[me] = Some(t.sequence_number.wrapping_add(length));
    }
}

#[test]
fn a_tcp_connection_has_handshake_payloads_acks_and_teardown() {
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let all = connections(vec![
        tcp("socket", 1_000),
        tcp("connect", 2_000),
        with(
            tcp("write", 3_000),
            true,
            request,
            request.len() as u64,
            false,
        ),
        with(
            tcp("read", 4_000),
            false,
            response,
            response.len() as u64,
            false,
        ),
        tcp("close", 5_000),
    ]);
    let (section, packets) = export(&all);
    assert!(section.starts_with("recording r1; 0 unix-socket connections and 0 sockets"));
    let local = (IpAddr::from([10, 0, 0, 1]), 5555);
    let peer = (IpAddr::from([10, 0, 0, 2]), 80);
    let shape: Vec<_> = packets
        .iter()
        .map(|p| {
            let t = p.tcp.as_ref().unwrap();
            (p.src == local, t.syn, t.ack, t.fin, p.payload.len())
        })
        .collect();
    assert_eq!(
        shape,
        [
            (true, true, false, false, 0),
            (false, true, true, false, 0),
            (true, false, true, false, 0),
            (true, false, true, false, request.len()),
            (false, false, true, false, 0),
            (false, false, true, false, response.len()),
            (true, false, true, false, 0),
            (true, false, true, true, 0),
            (false, false, true, true, 0),
            (true, false, true, false, 0),
        ]
    );
    for p in &packets {
        let expected = if p.src == local { peer } else { local };
        assert_eq!(p.dst, expected);
    }
    assert_continuous(&packets, local, &[]);
    assert_eq!(packets[3].payload, request);
    assert_eq!(packets[5].payload, response);
    assert!(packets[3].tcp.as_ref().unwrap().psh);
    assert!(packets[0]
        .comment
        .starts_with("connection 0 (pid 7 fd 3): connected"));
    assert_eq!(packets[3].comment, "pid 7 tid 8 write");
    assert_eq!(
        packets[0].at,
        Duration::from_nanos(1_700_000_000_000_001_000)
    );
    assert_eq!(
        packets[3].at,
        Duration::from_nanos(1_700_000_000_000_003_000)
    );
    assert_eq!(
        packets[9].at,
        Duration::from_nanos(1_700_000_000_000_005_000)
    );
}

#[test]
fn missing_bytes_jump_the_sequence_and_say_why() {
    let all = connections(vec![
        with(tcp("write", 1), true, b"abc", 10, true),
        with(tcp("write", 2), true, b"def", 3, false),
        with(tcp("read", 3), false, b"", 5, false),
        with(tcp("read", 4), false, b"ok", 2, false),
    ]);
    let (_, packets) = export(&all);
    let local = (IpAddr::from([10, 0, 0, 1]), 5555);
    assert!(
        packets[0].tcp.as_ref().is_some_and(|t| !t.syn),
        "open before: no handshake"
    );
    assert!(packets[0].comment.contains("open before the recording"));
    assert!(packets[0].comment.ends_with("pid 7 tid 8 write"));
    assert_eq!(
        packets[1].comment,
        "pid 7 tid 8 write moved 7 bytes that are not in the recording: past the capture cap \
         (--max-payload)"
    );
    // abc, its ACK (of the 7 unseen bytes too), def after a 7-byte jump, its ACK, an ACK of
    // the 5 read bytes that were lost, ok and its ACK.
    assert_continuous(&packets, local, &[(1, true, 7), (4, false, 5)]);
    let seq = |i: usize| packets[i].tcp.as_ref().map_or(0, |t| t.sequence_number);
    assert_eq!(
        seq(2).wrapping_sub(seq(0)),
        3 + 7,
        "the sequence skips the 7 capped bytes"
    );
    assert_eq!(packets[2].payload, b"def");
    assert!(packets[4].payload.is_empty() && packets[4].src == local);
    assert!(packets[4]
        .comment
        .contains("read moved 5 bytes that are not in the recording: lost"));
    assert_eq!(packets[5].payload, b"ok");
    assert_eq!(packets.len(), 7);
}

#[test]
fn an_accepted_connection_begins_with_the_peers_syn_and_idle_sockets_are_counted() {
    let mut listening = tcp("socket", 1);
    listening.fd = 9;
    if let Some(resource) = listening.resource.as_mut() {
        resource.peer = None;
    }
    let all = connections(vec![
        listening,
        tcp("accept4", 2),
        with(tcp("read", 3), false, b"hi", 2, false),
    ]);
    let (section, packets) = export(&all);
    assert!(
        section.contains("; 1 listening or unused sockets not included"),
        "{section}"
    );
    let local = (IpAddr::from([10, 0, 0, 1]), 5555);
    let first = packets[0].tcp.as_ref().unwrap();
    assert!(packets[0].src != local && first.syn && !first.ack);
    assert!(packets[0].comment.contains("accepted"));
    assert_continuous(&packets, local, &[]);
    assert_eq!(
        packets.len(),
        5,
        "handshake, the read and its ACK; no close recorded"
    );
}

#[test]
fn unix_sockets_are_left_out_and_counted() {
    let all = connections(vec![
        with(
            event("write", 1, 4, libc::AF_UNIX, libc::SOCK_STREAM),
            true,
            b"x",
            1,
            false,
        ),
        with(tcp("write", 2), true, b"y", 1, false),
    ]);
    let (section, packets) = export(&all);
    assert!(
        section.starts_with(
            "recording r1; 1 unix-socket connections and 0 sockets of unknown family not included"
        ),
        "{section}"
    );
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[0].payload, b"y");
}

#[test]
fn a_udp_datagram_goes_to_its_address_from_a_synthesised_port() {
    let mut send = event("sendto", 1, 5, libc::AF_INET, libc::SOCK_DGRAM);
    if let Some(resource) = send.resource.as_mut() {
        resource.local = None;
        resource.peer = None;
    }
    send.address = Some(v4([8, 8, 8, 8], 53));
    let mut receive = send.clone();
    receive.syscall = "recvfrom".into();
    receive.mono_ns = 2;
    let all = connections(vec![
        with(send, true, b"query", 5, false),
        with(receive, false, b"answer", 6, false),
    ]);
    let (_, packets) = export(&all);
    let local = (IpAddr::from([0, 0, 0, 0]), 40_000);
    let server = (IpAddr::from([8, 8, 8, 8]), 53);
    assert_eq!(packets.len(), 2);
    assert_eq!((packets[0].src, packets[0].dst), (local, server));
    assert_eq!((packets[1].src, packets[1].dst), (server, local));
    assert!(packets.iter().all(|p| p.tcp.is_none()));
    assert_eq!(packets[0].payload, b"query");
    assert_eq!(packets[1].payload, b"answer");
    assert!(packets[0]
        .comment
        .contains("local port unknown: 40000 is synthesised"));
    assert!(packets[1].comment.ends_with("pid 7 tid 8 recvfrom"));
}

#[test]
fn ipv6_and_payloads_past_a_segment_are_split() {
    let big = vec![b'z'; 70_000];
    let mut write = with(tcp("write", 1), true, &big, big.len() as u64, false);
    if let Some(resource) = write.resource.as_mut() {
        resource.socket_family = libc::AF_INET6 as u32;
        resource.local = None;
        let mut peer = v4([0; 4], 443);
        peer.family = libc::AF_INET6 as u32;
        peer.ip = vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        resource.peer = Some(peer);
    }
    let (_, packets) = export(&connections(vec![write]));
    let local = (IpAddr::from([0u8; 16]), 40_000);
    assert_eq!(packets.len(), 4, "two segments, each acknowledged");
    assert_eq!(packets[0].payload.len() + packets[2].payload.len(), 70_000);
    assert!(matches!(packets[0].dst.0, IpAddr::V6(_)));
    assert_continuous(&packets, local, &[]);
}
