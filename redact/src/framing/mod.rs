//! Protocol framing recognised from a stream's first bytes and followed byte by byte
//! (PostgreSQL both ways, Redis, HTTP/1 and HTTP/2).
//! Each tracker reports masks it can decide at once (a PostgreSQL password message's
//! body, a Redis AUTH argument: the framing before them says what they are) and cuts
//! where a message is complete, so text scanning can decide it without waiting for a
//! line end. Trackers never hold bytes back.

mod http;
mod hpack;
mod http2;
mod pg;
mod pg_backend;
mod redis;

use crate::detector::{Detector, Rule};
use crate::policy::Policy;

/// A mask over stream offsets `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mask {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) rule: Rule,
}

#[derive(Debug, Default)]
pub(crate) struct Framing {
    pg: pg::Pg,
    pg_backend: pg_backend::Backend,
    redis: redis::Resp,
    http: http::Http,
    http2: http2::Http2,
}

impl Framing {
    /// Follows `bytes`, which start at stream offset `base`.
    pub(crate) fn feed(
        &mut self,
        policy: &Policy,
        bytes: &[u8],
        base: u64,
        masks: &mut Vec<Mask>,
        cuts: &mut Vec<u64>,
    ) {
        if policy.detector_on(Detector::PostgresPassword) {
            self.pg.feed(bytes, base, masks, cuts);
        }
        self.pg_backend.feed(bytes, base, cuts);
        if policy.detector_on(Detector::RedisAuth) {
            self.redis.feed(bytes, base, masks, cuts);
        }
        let compressed = policy.detector_on(Detector::CompressedBody);
        self.http.feed(bytes, base, compressed, masks, cuts);
        if policy.detector_on(Detector::HttpHeader) {
            self.http2.feed(policy, bytes, base, masks, cuts);
        }
    }

    /// `len` bytes of the stream were lost.
    pub(crate) fn gap(&mut self, len: u64) {
        self.pg.gap(len);
        self.pg_backend.gap(len);
        self.redis.gap(len);
        self.http.gap(len);
        self.http2.gap(len);
    }
}
