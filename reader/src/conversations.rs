//! Which protocol a connection speaks, and its exchanges: the bridge from
//! [`crate::connections`] to recorder-protocols' parsers.

use recorder_protocols::{dns, http1, http2, postgres, redis, Exchange, Protocol};

use crate::connections::{Connection, Opened, Tls, Transport};

/// A connection with its protocol and exchanges.
pub struct Conversation<'a> {
    pub connection: &'a Connection,
    /// `None` when no parser recognised it.
    pub protocol: Option<Protocol>,
    pub exchanges: Vec<Exchange>,
}

/// Recognises a connection's protocol from its first bytes (and well-known ports when the
/// recording began mid-connection) and parses its exchanges.
pub fn analyse(connection: &Connection) -> Conversation<'_> {
    let detected = detect(connection);
    let exchanges = match detected {
        Some((Protocol::Dns, _)) => dns::parse(&connection.datagrams()),
        Some((protocol, process_is_client)) => {
            let (client, server) = if process_is_client {
                (&connection.out, &connection.incoming)
            } else {
                (&connection.incoming, &connection.out)
            };
            match protocol {
                Protocol::Http1 => http1::parse(client, server),
                Protocol::Http2 => http2::parse(client, server),
                Protocol::Postgres => postgres::parse(client, server),
                Protocol::Redis => redis::parse(client, server),
                Protocol::Dns => Vec::new(),
            }
        }
        None => Vec::new(),
    };
    Conversation {
        connection,
        protocol: detected.map(|(protocol, _)| protocol),
        exchanges,
    }
}

/// The protocol, and whether the recorded process is its client.
fn detect(connection: &Connection) -> Option<(Protocol, bool)> {
    if connection.tls == Tls::NotDecrypted {
        return None;
    }
    if connection.transport == Transport::Udp {
        let port_53 = [&connection.peer, &connection.local]
            .into_iter()
            .flatten()
            .any(|a| a.port == 53);
        let dns = port_53
            || connection
                .datagrams()
                .iter()
                .any(|d| dns::looks_like_dns(d.bytes));
        return dns.then_some((Protocol::Dns, true));
    }
    // The side that spoke first in the recording is tried first as the client.
    let out_first = match connection.opened {
        Opened::Connected => true,
        Opened::Accepted => false,
        Opened::Created | Opened::Existing => {
            connection.out.first_ns().unwrap_or(u64::MAX)
                <= connection.incoming.first_ns().unwrap_or(u64::MAX)
        }
    };
    let sides = if out_first {
        [(&connection.out, true), (&connection.incoming, false)]
    } else {
        [(&connection.incoming, false), (&connection.out, true)]
    };
    for (stream, process_is_client) in sides {
        let bytes = stream.bytes();
        if bytes.is_empty() {
            continue;
        }
        let protocol = if http2::looks_like_h2(bytes) {
            Protocol::Http2
        } else if http1::looks_like_request(bytes) {
            Protocol::Http1
        } else if postgres::looks_like_startup(bytes) {
            Protocol::Postgres
        } else if redis::looks_like_command(bytes) {
            Protocol::Redis
        } else {
            continue;
        };
        return Some((protocol, process_is_client));
    }
    by_port(connection)
}

/// A connection whose start was not recorded: the server's well-known port says the
/// protocol, and which side is the client.
fn by_port(connection: &Connection) -> Option<(Protocol, bool)> {
    let port_of = |address: &Option<recorder_proto::v1::SocketAddress>| {
        address.as_ref().map_or(0, |a| a.port)
    };
    let known = |port: u32| match port {
        5432 => Some(Protocol::Postgres),
        6379 => Some(Protocol::Redis),
        _ => None,
    };
    if let Some(protocol) = known(port_of(&connection.peer)) {
        return Some((protocol, true));
    }
    known(port_of(&connection.local)).map(|protocol| (protocol, false))
}
