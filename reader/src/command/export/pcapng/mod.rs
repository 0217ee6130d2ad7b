//! `--format pcapng`: every recorded TCP connection and UDP socket as synthesised
//! Ethernet/IP/TCP-or-UDP packets that Wireshark and tshark read, with the recorded addresses,
//! ports and bytes. The recording has payloads, not packets: handshakes, acknowledgements
//! and teardowns are made up so that TCP analysis is clean, and bytes that moved but are not
//! in the recording show as sequence jumps ("previous segment not captured") with a packet
//! comment saying why. Unix and unknown-family sockets have no IP form and are only counted.

mod synth;
#[cfg(test)]
mod tests;

use std::{borrow::Cow, io, io::Write, process::ExitCode, time::Duration};

use etherparse::PacketBuilder;
use pcap_file::{
    pcapng::{
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            section_header::{SectionHeaderBlock, SectionHeaderOption},
        },
        PcapNgWriter,
    },
    DataLink, Endianness, PcapError,
};
use recorder_store::{catalog::RecordingSummary, Keyring};

use crate::connections::{Connection, Transport};

use super::super::CommandError;

/// Locally administered MAC addresses: the recording knows no link layer.
const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Large enough for the biggest synthesised frame (an IP packet is at most 64 KiB).
const SNAPLEN: u32 = 262_144;
/// Comments longer than this are cut (a pcapng option holds at most 64 KiB).
const MAX_COMMENT: usize = 4096;

/// What [`write`] put in the file and what it left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub packets: usize,
    /// TCP connections and UDP sockets exported.
    pub connections: usize,
    pub unix: usize,
    /// Sockets of unknown or another family.
    pub other: usize,
    /// TCP sockets that moved nothing and had no peer (listening), UDP sockets that moved
    /// nothing.
    pub idle: usize,
}

pub fn run(
    recording: &RecordingSummary,
    keyring: &Keyring,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    let super::super::Reassembled {
        code,
        connections,
        lost_syscalls,
        ..
    } = super::super::connections_of(recording, keyring)?;
    let mut about = recording.id.clone();
    if lost_syscalls > 0 {
        about.push_str(&format!(
            "; {lost_syscalls} syscall records were lost in this recording: their bytes are in no packet and no sequence jump shows them"
        ));
    }
    let clock_base = recording
        .header()
        .clock
        .as_ref()
        .map(|c| (c.monotonic_ns, c.realtime_ns));
    write(&connections, clock_base, &about, out)?;
    Ok(code)
}

/// Writes `connections` as one pcapng section. `clock_base` is the recording's (monotonic
/// ns, wall-clock ns) pair; without it packet times are the monotonic clock (since boot).
/// `recording_id` opens the section's comment (with what the recording lost, if anything).
pub fn write(
    connections: &[Connection],
    clock_base: Option<(u64, i64)>,
    recording_id: &str,
    out: &mut impl Write,
) -> io::Result<Written> {
    let mut written = Written::default();
    let mut packets = Vec::new();
    for connection in connections {
        // Nothing to show: a UDP socket that moved nothing, a listening TCP socket.
        let idle = connection.moves.is_empty()
            && (connection.peer.is_none() || connection.transport == Transport::Udp);
        match connection.transport {
            Transport::Unix => written.unix += 1,
            Transport::Other => written.other += 1,
            Transport::Tcp | Transport::Udp if idle => written.idle += 1,
            Transport::Tcp => {
                written.connections += 1;
                packets.extend(synth::tcp(connection));
            }
            Transport::Udp => {
                written.connections += 1;
                packets.extend(synth::udp(connection));
            }
        }
    }
    // Stable: each connection's packets are already in order with non-decreasing times.
    packets.sort_by_key(|p| p.at_ns);
    written.packets = packets.len();

    let times = if clock_base.is_some() {
        "packet times are wall clock"
    } else {
        "packet times are since boot (the recording has no clock base)"
    };
    let comment = format!(
        "recording {recording_id}; {} unix-socket connections and {} sockets of unknown \
         family not included; {} listening or unused sockets not included; handshakes, \
         acknowledgements and teardowns are synthesised; {times}",
        written.unix, written.other, written.idle
    );
    let section = SectionHeaderBlock {
        endianness: Endianness::native(),
        options: vec![
            SectionHeaderOption::Comment(Cow::Owned(comment)),
            SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "recorder {}",
                env!("CARGO_PKG_VERSION")
            ))),
        ],
        ..SectionHeaderBlock::default()
    };
    let mut writer = PcapNgWriter::with_section_header(&mut *out, section).map_err(io_error)?;
    let interface = InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: SNAPLEN,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed("recorderd")),
            // pcap-file writes EPB timestamps in nanoseconds.
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    };
    writer.write_pcapng_block(interface).map_err(io_error)?;
    for packet in &packets {
        let data = frame(packet)?;
        let options = packet
            .comment
            .as_ref()
            .map(|c| EnhancedPacketOption::Comment(Cow::Owned(cut(c))))
            .into_iter()
            .collect();
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(wall_ns(clock_base, packet.at_ns)),
            original_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
            data: Cow::Owned(data),
            options,
        };
        writer.write_pcapng_block(block).map_err(io_error)?;
    }
    Ok(written)
}

/// The two ends' IP addresses, both of one family: (local, peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ips {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

/// A packet's endpoints, seen from the recorded process.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ends {
    pub ips: Ips,
    pub local_port: u16,
    pub peer_port: u16,
}

pub(super) const SYN: u8 = 1;
pub(super) const FIN: u8 = 2;
pub(super) const PSH: u8 = 4;
pub(super) const ACK: u8 = 8;

#[derive(Clone, Copy, Debug)]
pub(super) struct Tcp {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
}

/// One synthesised packet, its payload borrowed from the connection's stream.
#[derive(Clone, Debug)]
pub(super) struct Packet<'a> {
    /// CLOCK_MONOTONIC ns.
    pub at_ns: u64,
    pub ends: Ends,
    pub from_local: bool,
    /// `None` for a UDP datagram.
    pub tcp: Option<Tcp>,
    pub payload: &'a [u8],
    pub comment: Option<String>,
}

/// The packet's Ethernet frame, with IP and TCP/UDP checksums computed.
fn frame(packet: &Packet) -> io::Result<Vec<u8>> {
    let (ends, local) = (packet.ends, packet.from_local);
    let (src_mac, dst_mac) = if local {
        (LOCAL_MAC, PEER_MAC)
    } else {
        (PEER_MAC, LOCAL_MAC)
    };
    let link = PacketBuilder::ethernet2(src_mac, dst_mac);
    let ip = match ends.ips {
        Ips::V4(l, p) if local => link.ipv4(l, p, 64),
        Ips::V4(l, p) => link.ipv4(p, l, 64),
        Ips::V6(l, p) if local => link.ipv6(l, p, 64),
        Ips::V6(l, p) => link.ipv6(p, l, 64),
    };
    let (src_port, dst_port) = if local {
        (ends.local_port, ends.peer_port)
    } else {
        (ends.peer_port, ends.local_port)
    };
    let mut data = Vec::with_capacity(packet.payload.len() + 80);
    let built = match packet.tcp {
        Some(tcp) => {
            let mut builder = ip.tcp(src_port, dst_port, tcp.seq, u16::MAX);
            if tcp.flags & SYN != 0 {
                builder = builder.syn();
            }
            if tcp.flags & FIN != 0 {
                builder = builder.fin();
            }
            if tcp.flags & PSH != 0 {
                builder = builder.psh();
            }
            if tcp.flags & ACK != 0 {
                builder = builder.ack(tcp.ack);
            }
            builder.write(&mut data, packet.payload)
        }
        None => ip.udp(src_port, dst_port).write(&mut data, packet.payload),
    };
    built.map_err(io::Error::other)?;
    Ok(data)
}

/// Wall-clock ns of a monotonic time, clamped to the representable range.
fn wall_ns(clock_base: Option<(u64, i64)>, mono_ns: u64) -> u64 {
    let Some((mono_base, real_base)) = clock_base else {
        return mono_ns;
    };
    let real = i128::from(real_base) + i128::from(mono_ns) - i128::from(mono_base);
    u64::try_from(real.max(0)).unwrap_or(u64::MAX)
}

fn cut(comment: &str) -> String {
    let mut end = comment.len().min(MAX_COMMENT);
    while !comment.is_char_boundary(end) {
        end -= 1;
    }
    comment[..end].to_string()
}

fn io_error(error: PcapError) -> io::Error {
    match error {
        PcapError::IoError(error) => error,
        other => io::Error::other(other.to_string()),
    }
}
