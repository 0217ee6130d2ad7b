//! Recorded payloads as packets: TCP segments with consistent sequence and acknowledgement
//! numbers, UDP datagrams one per payload.

use recorder_proto::v1::SocketAddress;
use recorder_protocols::{GapReason, Stream};

use crate::connections::{Connection, Move, Opened, Tls};

use super::{Ends, Ips, Packet, Tcp, ACK, FIN, PSH, SYN};

/// Payload bytes per TCP segment: an IPv4 packet holds at most 65535 bytes, and the other
/// side acknowledges each segment so that none overruns the 65535-byte window.
const SEGMENT: usize = 65_000;
/// The largest UDP payload an IPv4 packet holds.
const MAX_DATAGRAM: usize = 65_507;
/// Initial sequence numbers (fixed: the recording has none; tshark shows them relative).
const LOCAL_ISN: u32 = 1_000_000;
const PEER_ISN: u32 = 3_000_000;

/// The handshake (unless the connection was open before the recording), every payload with
/// an acknowledgement from the other side, and the teardown when close was recorded.
pub(super) fn tcp(connection: &Connection) -> Vec<Packet<'_>> {
    let ends = ends(connection, connection.peer.as_ref());
    let mut tcp = TcpSynth {
        ends,
        // [local, peer]: the next sequence number each side sends.
        next: [LOCAL_ISN, PEER_ISN],
        at_ns: connection.open_ns,
        packets: Vec::new(),
    };
    if connection.opened != Opened::Existing {
        // The process is the client unless it accepted the connection.
        let client = connection.opened != Opened::Accepted;
        tcp.push(client, SYN, &[], None);
        tcp.push(!client, SYN | ACK, &[], None);
        tcp.push(client, ACK, &[], None);
    }
    for m in &connection.moves {
        tcp.at_ns = tcp.at_ns.max(m.at_ns);
        let stream = stream_of(connection, m);
        let mut note = Some(move_note(connection, m));
        // On the acknowledgement of the unseen bytes, which tshark flags next to the jump.
        let mut gap = gap_note(m, stream).map(|gap| format!("{} {gap}", move_note(connection, m)));
        let chunks: Vec<&[u8]> = captured(stream, m, usize::MAX).chunks(SEGMENT).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let flags = if last { ACK | PSH } else { ACK };
            tcp.push(m.outgoing, flags, chunk, note.take());
            if last {
                tcp.skip(m.outgoing, m.missing);
            }
            let gap = if last { gap.take() } else { None };
            tcp.push(!m.outgoing, ACK, &[], gap);
        }
        if chunks.is_empty() && gap.is_some() {
            // Nothing recorded: only the acknowledgement of the unseen bytes shows them.
            tcp.skip(m.outgoing, m.missing);
            tcp.push(!m.outgoing, ACK, &[], gap.take());
        }
    }
    if let Some(close_ns) = connection.close_ns {
        tcp.at_ns = tcp.at_ns.max(close_ns);
        let note = format!("pid {} closed the socket", connection.pid);
        tcp.push(true, FIN | ACK, &[], Some(note));
        tcp.push(false, FIN | ACK, &[], None);
        tcp.push(true, ACK, &[], None);
    }
    let mut packets = tcp.packets;
    if let Some(first) = packets.first_mut() {
        first.comment = Some(join(intro(connection, &ends), first.comment.take()));
    }
    packets
}

/// One datagram per payload, to or from the payload's address when the event names one.
pub(super) fn udp(connection: &Connection) -> Vec<Packet<'_>> {
    let mut packets = Vec::with_capacity(connection.moves.len());
    let mut at_ns = connection.open_ns;
    for m in &connection.moves {
        at_ns = at_ns.max(m.at_ns);
        let stream = stream_of(connection, m);
        let payload = captured(stream, m, MAX_DATAGRAM);
        let mut note = move_note(connection, m);
        if let Some(gap) = gap_note(m, stream) {
            note.push_str(&format!(" {gap}"));
        }
        if payload.len() < m.captured {
            note.push_str(&format!(
                "; {} recorded bytes past the largest UDP payload left out",
                m.captured - payload.len()
            ));
        }
        let peer = m.address.as_ref().or(connection.peer.as_ref());
        packets.push(Packet {
            at_ns,
            ends: ends(connection, peer),
            from_local: m.outgoing,
            tcp: None,
            payload,
            comment: Some(note),
        });
    }
    if let Some(first) = packets.first_mut() {
        let ends = first.ends;
        first.comment = Some(join(intro(connection, &ends), first.comment.take()));
    }
    packets
}

/// Builds one TCP connection's packets in order.
struct TcpSynth<'a> {
    ends: Ends,
    next: [u32; 2],
    at_ns: u64,
    packets: Vec<Packet<'a>>,
}

impl<'a> TcpSynth<'a> {
    fn push(&mut self, from_local: bool, flags: u8, payload: &'a [u8], comment: Option<String>) {
        let (me, other) = if from_local { (0, 1) } else { (1, 0) };
        let seq = self.next[me];
        // A SYN or FIN takes one sequence number; the segment's bytes one each.
        let length = payload.len() as u64 + u64::from(flags & (SYN | FIN) != 0);
        self.skip(from_local, length);
        self.packets.push(Packet {
            at_ns: self.at_ns,
            ends: self.ends,
            from_local,
            tcp: Some(Tcp {
                seq,
                ack: if flags & ACK != 0 {
                    self.next[other]
                } else {
                    0
                },
                flags,
            }),
            payload,
            comment,
        });
    }

    /// Advances a side's sequence number (modulo 2^32, as TCP does).
    fn skip(&mut self, from_local: bool, bytes: u64) {
        let side = usize::from(!from_local);
        self.next[side] = self.next[side].wrapping_add(bytes as u32);
    }
}

fn stream_of<'a>(connection: &'a Connection, m: &Move) -> &'a Stream {
    if m.outgoing {
        &connection.out
    } else {
        &connection.incoming
    }
}

/// The move's recorded bytes (at most `limit`); empty if the stream does not hold them.
fn captured<'a>(stream: &'a Stream, m: &Move, limit: usize) -> &'a [u8] {
    let end = m.offset.saturating_add(m.captured.min(limit));
    stream.bytes().get(m.offset..end).unwrap_or_default()
}

/// Who moved a payload, and how.
fn move_note(connection: &Connection, m: &Move) -> String {
    format!("pid {} tid {} {}", connection.pid, m.tid, m.syscall)
}

/// What of a payload is not in the recording, and why; `None` when all of it is.
fn gap_note(m: &Move, stream: &Stream) -> Option<String> {
    let end = m.offset.saturating_add(m.captured);
    let gap = stream
        .gaps()
        .iter()
        .find(|g| g.offset == end && g.at_ns == m.at_ns && g.missing == m.missing);
    let why = match gap.map(|g| g.reason) {
        Some(GapReason::Capped) => "past the capture cap (--max-payload)",
        Some(GapReason::Withheld) => "withheld whole by the redactor",
        Some(GapReason::Lost) | None => "lost (not captured)",
    };
    match (m.missing, gap) {
        (0, None) => None,
        (0, Some(_)) => Some(format!(
            "moved an unknown number of bytes that are not in the recording: {why}"
        )),
        (missing, _) => Some(format!(
            "moved {missing} bytes that are not in the recording: {why}"
        )),
    }
}

/// The first packet's comment: which connection this is, and what is synthesised.
fn intro(connection: &Connection, ends: &Ends) -> String {
    let opened = match connection.opened {
        Opened::Connected => "connected",
        Opened::Accepted => "accepted",
        Opened::Created => "created",
        Opened::Existing => "open before the recording (no handshake)",
    };
    let mut intro = format!(
        "connection {} (pid {} fd {}): {opened}",
        connection.index, connection.pid, connection.fd
    );
    match &connection.tls {
        Tls::Plaintext(library) => intro.push_str(&format!("; TLS plaintext from {library}")),
        Tls::NotDecrypted => {
            intro.push_str("; TLS not decrypted: the bytes are not in the recording")
        }
        Tls::None => {}
    }
    if known_port(connection.local.as_ref()).is_none() {
        intro.push_str(&format!(
            "; local port unknown: {} is synthesised",
            ends.local_port
        ));
    }
    if ip_of(connection.local.as_ref()).is_none() {
        intro.push_str("; local address unknown: the unspecified address stands in");
    }
    if connection.peer.is_none() && connection.moves.iter().all(|m| m.address.is_none()) {
        intro.push_str("; peer address and port unknown: the unspecified address and 0 stand in");
    }
    intro
}

fn join(first: String, rest: Option<String>) -> String {
    match rest {
        Some(rest) => format!("{first}; {rest}"),
        None => first,
    }
}

/// The endpoints of a packet between the connection's local end and `peer`. An unknown
/// local port becomes 40000 + the connection's index (stable across exports); an unknown
/// address the unspecified one (0.0.0.0 or ::).
fn ends(connection: &Connection, peer: Option<&SocketAddress>) -> Ends {
    let synthetic_port = 40_000 + (connection.index % 25_536) as u16;
    Ends {
        ips: ips(ip_of(connection.local.as_ref()), ip_of(peer)),
        local_port: known_port(connection.local.as_ref()).unwrap_or(synthetic_port),
        peer_port: known_port(peer).unwrap_or(0),
    }
}

fn known_port(address: Option<&SocketAddress>) -> Option<u16> {
    address
        .and_then(|a| u16::try_from(a.port).ok())
        .filter(|&p| p != 0)
}

fn ip_of(address: Option<&SocketAddress>) -> Option<[u8; 16]> {
    let ip = &address?.ip;
    if let Ok(v4) = <[u8; 4]>::try_from(ip.as_slice()) {
        return Some(mapped(v4));
    }
    <[u8; 16]>::try_from(ip.as_slice()).ok()
}

/// IPv4 when both ends are IPv4 (or IPv4-mapped, or unknown); IPv6 otherwise.
fn ips(local: Option<[u8; 16]>, peer: Option<[u8; 16]>) -> Ips {
    let v4 = |ip: Option<[u8; 16]>| match ip {
        None => Some([0; 4]),
        Some(ip) if ip[..12] == mapped([0; 4])[..12] => Some([ip[12], ip[13], ip[14], ip[15]]),
        Some(_) => None,
    };
    match (v4(local), v4(peer)) {
        (Some(l), Some(p)) => Ips::V4(l, p),
        _ => Ips::V6(local.unwrap_or_default(), peer.unwrap_or_default()),
    }
}

/// `::ffff:a.b.c.d`.
fn mapped(v4: [u8; 4]) -> [u8; 16] {
    let mut ip = [0; 16];
    ip[10] = 0xff;
    ip[11] = 0xff;
    ip[12..].copy_from_slice(&v4);
    ip
}
