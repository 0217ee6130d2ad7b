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
    /// The trackers that have given up on this stream (`OFF_*` bits), read before their
    /// own state: most streams are none of these protocols, and a tracker that is off
    /// then costs a bit test, not a call that loads its state.
    off: u8,
    pg: pg::Pg,
    pg_backend: pg_backend::Backend,
    redis: redis::Resp,
    http: http::Http,
    http2: http2::Http2,
}

const OFF_PG: u8 = 1;
const OFF_PG_BACKEND: u8 = 2;
const OFF_REDIS: u8 = 4;
const OFF_HTTP2: u8 = 8;

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
        if self.off & OFF_PG == 0 && policy.detector_on(Detector::PostgresPassword) {
            self.pg.feed(bytes, base, masks, cuts);
            self.set_off(OFF_PG, self.pg.off());
        }
        if self.off & OFF_PG_BACKEND == 0 {
            self.pg_backend.feed(bytes, base, cuts);
            self.set_off(OFF_PG_BACKEND, self.pg_backend.off());
        }
        if self.off & OFF_REDIS == 0 && policy.detector_on(Detector::RedisAuth) {
            self.redis.feed(bytes, base, masks, cuts);
            self.set_off(OFF_REDIS, self.redis.off());
        }
        let compressed = policy.detector_on(Detector::CompressedBody);
        self.http.feed(bytes, base, compressed, masks, cuts);
        if self.off & OFF_HTTP2 == 0 && policy.detector_on(Detector::HttpHeader) {
            self.http2.feed(policy, bytes, base, masks, cuts);
            self.set_off(OFF_HTTP2, self.http2.off());
        }
    }

    /// `len` bytes of the stream were lost.
    pub(crate) fn gap(&mut self, len: u64) {
        if self.off & OFF_PG == 0 {
            self.pg.gap(len);
            self.set_off(OFF_PG, self.pg.off());
        }
        if self.off & OFF_PG_BACKEND == 0 {
            self.pg_backend.gap(len);
            self.set_off(OFF_PG_BACKEND, self.pg_backend.off());
        }
        if self.off & OFF_REDIS == 0 {
            self.redis.gap(len);
            self.set_off(OFF_REDIS, self.redis.off());
        }
        self.http.gap(len);
        if self.off & OFF_HTTP2 == 0 {
            self.http2.gap(len);
            self.set_off(OFF_HTTP2, self.http2.off());
        }
    }

    /// A tracker that is off stays off (each one's `off`), so its bit is never cleared.
    fn set_off(&mut self, bit: u8, off: bool) {
        if off {
            self.off |= bit;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::*;
    use crate::config::Config;

    static POLICY: LazyLock<Policy> =
        LazyLock::new(|| Policy::new(&Config::default()).expect("default policy"));

    #[test]
    fn a_stream_of_none_of_these_protocols_turns_every_tracker_but_http_off() {
        let mut framing = Framing::default();
        let (mut masks, mut cuts) = (Vec::new(), Vec::new());
        let line = br#"{"order":8841,"sku":"A-1177","qty":3}"#;
        framing.feed(&POLICY, line, 0, &mut masks, &mut cuts);
        assert_eq!(framing.off, OFF_PG | OFF_PG_BACKEND | OFF_REDIS | OFF_HTTP2);
        assert!(masks.is_empty() && cuts.is_empty());
    }

    /// What a tracker does with one piece of a stream.
    #[derive(Clone, Debug)]
    enum Step {
        Bytes(Vec<u8>),
        Gap(u64),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        let bytes = proptest::collection::vec(
            prop_oneof![
                3 => proptest::sample::select(b"*$\r\n0123PRI HTTP/2.0SM\x00\x04\x08R".to_vec()),
                1 => any::<u8>(),
            ],
            0..40,
        );
        proptest::collection::vec(
            prop_oneof![
                6 => bytes.prop_map(Step::Bytes),
                1 => (1..20u64).prop_map(Step::Gap),
            ],
            0..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// `Framing` stops feeding a tracker once it is off, which is right only if off is
        /// for good: a tracker that is off stays off and masks and cuts nothing more,
        /// whatever bytes and gaps follow.
        #[test]
        fn a_tracker_that_is_off_stays_off_and_does_nothing(steps in steps()) {
            let policy = &*POLICY;
            let mut framing = Framing::default();
            let mut base = 0;
            for step in steps {
                let before = [
                    framing.pg.off(),
                    framing.pg_backend.off(),
                    framing.redis.off(),
                    framing.http2.off(),
                ];
                let (mut masks, mut cuts) = (Vec::<Mask>::new(), Vec::new());
                // Each tracker on its own, so what an off one does is seen.
                let mut did = [false; 4];
                match &step {
                    Step::Bytes(bytes) => {
                        let acted = |masks: &mut Vec<Mask>, cuts: &mut Vec<u64>| {
                            let acted = !masks.is_empty() || !cuts.is_empty();
                            masks.clear();
                            cuts.clear();
                            acted
                        };
                        framing.pg.feed(bytes, base, &mut masks, &mut cuts);
                        did[0] = acted(&mut masks, &mut cuts);
                        framing.pg_backend.feed(bytes, base, &mut cuts);
                        did[1] = acted(&mut masks, &mut cuts);
                        framing.redis.feed(bytes, base, &mut masks, &mut cuts);
                        did[2] = acted(&mut masks, &mut cuts);
                        framing.http2.feed(policy, bytes, base, &mut masks, &mut cuts);
                        did[3] = acted(&mut masks, &mut cuts);
                        base += bytes.len() as u64;
                    }
                    Step::Gap(len) => {
                        framing.gap(*len);
                        base += len;
                    }
                }
                let after = [
                    framing.pg.off(),
                    framing.pg_backend.off(),
                    framing.redis.off(),
                    framing.http2.off(),
                ];
                for t in 0..4 {
                    if before[t] {
                        prop_assert!(after[t], "tracker {} came back on", t);
                        prop_assert!(!did[t], "tracker {} acted while off", t);
                    }
                }
            }
        }
    }
}
