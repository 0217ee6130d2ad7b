//! HTTP/2 exchanges (h2c, or TLS plaintext) from a connection's two directions: each
//! direction's frames are walked on their own, with their own HPACK table, and what they
//! say is gathered per stream; each client-opened stream is one exchange.
//!
//! Decisions where the protocol leaves the recording's view open:
//! - An exchange is `incomplete` when either side neither ended (END_STREAM) nor was reset
//!   in the recording, when a header block of it could not be decoded (the direction's HPACK
//!   table was lost: every later block of that direction is unknown), or when fields were
//!   dropped past the per-block caps. So a request still unanswered at the recording's end
//!   is incomplete, as in HTTP/1.
//! - RST_STREAM from either side ends the exchange without making it incomplete; a reset
//!   from the server is its answer, so `response_ns` is the reset's time when no END_STREAM
//!   came first. A reset from the client leaves `response_ns` as it was.
//! - A response on a stream whose request is not in the recording (the client's direction
//!   stopped) is kept as an exchange with an empty method and target, timed from its first
//!   frame, and `incomplete`. Server-pushed streams are not exchanges.
//! - Trailers are read (to keep the table in step) but not kept. Interim (1xx) heads are
//!   skipped; `response_bytes` counts them.

mod frames;
mod hpack;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::exchange::{Body, Detail, Exchange, Http};
use crate::stream::Stream;

/// What an HTTP/2 client sends first.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The bytes begin with the HTTP/2 client preface, or are a prefix of it.
pub fn looks_like_h2(bytes: &[u8]) -> bool {
    let n = bytes.len().min(PREFACE.len());
    n > 0 && bytes[..n] == PREFACE[..n]
}

/// The exchanges of an HTTP/2 connection whose client stream starts with the preface.
pub fn parse(client: &Stream, server: &Stream) -> Vec<Exchange> {
    if !client.bytes().starts_with(PREFACE) {
        return Vec::new();
    }
    let mut streams = BTreeMap::new();
    frames::Walk::new(client, true).run(PREFACE.len(), &mut streams);
    frames::Walk::new(server, false).run(0, &mut streams);
    let mut exchanges: Vec<Exchange> = streams
        .into_iter()
        .filter_map(|(id, stream)| stream.exchange(id))
        .collect();
    exchanges.sort_by_key(|exchange| exchange.request_ns);
    exchanges
}

/// What one direction of a stream carried.
#[derive(Debug, Default)]
struct Half {
    /// When its first HEADERS frame's first byte moved.
    first_ns: Option<u64>,
    /// Its (final) head's fields, pseudo-headers included.
    head: Option<Vec<(String, String)>>,
    /// A head of it could not be decoded, or lost fields.
    unknown: bool,
    body: Body,
    /// Frame bytes of its HEADERS, CONTINUATION and DATA frames.
    bytes: u64,
    /// When the byte that ended it (END_STREAM) moved.
    ended_ns: Option<u64>,
}

impl Half {
    fn pseudo(&self, name: &str) -> Option<String> {
        self.head
            .as_deref()
            .and_then(|fields| pseudo(fields, name))
            .map(str::to_string)
    }

    /// The regular header fields, in order.
    fn headers(&self) -> Vec<(String, String)> {
        self.head
            .iter()
            .flatten()
            .filter(|(name, _)| !name.starts_with(':'))
            .cloned()
            .collect()
    }

    fn into_body(self) -> Body {
        Body {
            complete: self.ended_ns.is_some(),
            ..self.body
        }
    }
}

#[derive(Debug, Default)]
struct H2Stream {
    client: Half,
    server: Half,
    reset: bool,
    /// When the server reset the stream.
    reset_by_server_ns: Option<u64>,
}

impl H2Stream {
    fn exchange(self, id: u32) -> Option<Exchange> {
        let request_ns = self.client.first_ns.or(self.server.first_ns)?;
        let ended = |half: &Half| half.ended_ns.is_some() || self.reset;
        let incomplete = self.client.first_ns.is_none()
            || self.client.unknown
            || self.server.unknown
            || !ended(&self.client)
            || !ended(&self.server);
        let response_ns = self.server.ended_ns.or(self.reset_by_server_ns);
        let status = self
            .server
            .pseudo(":status")
            .and_then(|status| status.parse().ok());
        Some(Exchange {
            request_ns,
            response_ns,
            request_bytes: self.client.bytes,
            response_bytes: self.server.bytes,
            incomplete,
            detail: Detail::Http(Http {
                version: "HTTP/2".to_string(),
                stream_id: id,
                method: self.client.pseudo(":method").unwrap_or_default(),
                target: self.client.pseudo(":path").unwrap_or_default(),
                // A client may send Host instead of :authority (RFC 9113 8.3.1).
                authority: self
                    .client
                    .pseudo(":authority")
                    .or_else(|| self.client.pseudo("host")),
                request_headers: self.client.headers(),
                status,
                reason: String::new(),
                response_headers: self.server.headers(),
                request_end_ns: self.client.ended_ns.unwrap_or(request_ns),
                response_start_ns: self.server.first_ns,
                request_body: self.client.into_body(),
                response_body: self.server.into_body(),
            }),
        })
    }
}

/// The first value of a pseudo-header field.
fn pseudo<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.as_str())
}
