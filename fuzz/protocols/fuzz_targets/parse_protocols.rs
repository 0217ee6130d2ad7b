//! Feeds arbitrary conversations to the protocol parsers (HTTP/1, HTTP/2, PostgreSQL, Redis,
//! DNS). None may panic or use memory out of proportion to the input, whatever it claims.
//!
//! The input is read as records: a control byte, a length byte, then up to that many bytes.
//! Control bit 0 picks the direction (client or server); bit 1 makes the record a gap instead
//! of a payload, with bits 2-3 the reason and bits 4-7 the missing count (in 8-byte units,
//! 0 = unknown). Every payload is also a datagram for the DNS parser, outgoing when it is the
//! client's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recorder_protocols::dns::{self, Datagram};
use recorder_protocols::{http1, http2, postgres, redis, GapReason, Stream};

fuzz_target!(|data: &[u8]| {
    let mut streams = [Stream::default(), Stream::default()];
    let mut datagrams = Vec::new();
    let mut rest = data;
    let mut now = 1u64;
    while let [control, len, tail @ ..] = rest {
        let (chunk, after) = tail.split_at((*len as usize).min(tail.len()));
        rest = after;
        now += 1;
        let side = usize::from(control & 1);
        if control & 2 != 0 {
            let reason = match (control >> 2) & 3 {
                0 => GapReason::Lost,
                1 => GapReason::Capped,
                _ => GapReason::Withheld,
            };
            streams[side].push_gap(now, u64::from(control >> 4) * 8, reason);
        } else {
            streams[side].push(now, chunk);
            datagrams.push(Datagram {
                at_ns: now,
                outgoing: side == 0,
                bytes: chunk,
            });
        }
    }
    let [client, server] = &streams;
    let bytes = client.bytes();
    let _ = std::hint::black_box((
        postgres::looks_like_startup(bytes),
        redis::looks_like_command(bytes),
        dns::looks_like_dns(bytes),
    ));
    std::hint::black_box(http1::parse(client, server));
    std::hint::black_box(http2::parse(client, server));
    std::hint::black_box(postgres::parse(client, server));
    std::hint::black_box(redis::parse(client, server));
    std::hint::black_box(dns::parse(&datagrams));
});
