//! Protocol views of a recording, offline: each connection's two directions reassembled
//! from the recorded payloads (gaps kept), then parsed into exchanges by protocol.
//!
//! Parsers take arbitrary bytes (truncated, malicious, redacted) and never panic: they stop
//! at what they cannot read and mark what they found incomplete.

/// One direction's bytes, times and gaps.
pub mod stream;
/// What the parsers produce.
pub mod exchange;
/// HTTP/1.x: pipelining, chunked bodies, keep-alive.
pub mod http1;
/// HTTP/2: frames and HPACK, cleartext (h2c) or TLS plaintext.
pub mod http2;
/// PostgreSQL's wire protocol: simple and extended query.
pub mod postgres;
/// Redis RESP2 and RESP3.
pub mod redis;
/// DNS messages over UDP.
pub mod dns;

pub use exchange::{Detail, Exchange, Protocol};
pub use stream::{Gap, GapReason, Run, Stream};
