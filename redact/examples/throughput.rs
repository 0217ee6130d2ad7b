//! Throughput of `StreamRedactor` on the false-positive corpus (ordinary traffic) plus a
//! share of planted secrets, pushed in pieces of a given size.
//!
//! `cargo run --release -p recorder-redact --example throughput [-- PIECE_BYTES [MIB]]`

use std::sync::Arc;
use std::time::Instant;

use recorder_redact::{Config, Policy, StreamRedactor};

fn main() {
    let mut args = std::env::args().skip(1);
    let piece: usize = args
        .next()
        .map_or(4096, |a| a.parse().expect("PIECE_BYTES"));
    let mib: usize = args.next().map_or(64, |a| a.parse().expect("MIB"));
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut sample = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        sample.extend(std::fs::read(path).unwrap());
    }
    sample.extend_from_slice(
        b"POST /login HTTP/1.1\r\nAuthorization: Bearer FAKEtok3n.abc\r\nContent-Length: 33\r\n\r\n{\"user\":\"a\",\"password\":\"FakePw\"}",
    );
    let mut data = Vec::with_capacity(mib << 20);
    while data.len() < mib << 20 {
        data.extend_from_slice(&sample);
    }
    let policy = Arc::new(Policy::new(&Config::default()).expect("default policy"));
    let mut stream = StreamRedactor::new(policy);
    let start = Instant::now();
    let mut masked = 0usize;
    let mut pending = std::collections::VecDeque::new();
    for (i, chunk) in data.chunks(piece).enumerate() {
        pending.push_back(stream.push(chunk, i as u64));
        // Take in push order, as far as pieces are decided.
        while let Some(r) = pending.front().and_then(|&t| stream.take(t)) {
            masked += r.redactions.len();
            pending.pop_front();
        }
    }
    stream.close();
    for t in pending {
        masked += stream.take(t).expect("decided at close").redactions.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} MiB in {piece}-byte pieces: {:.3} s, {:.1} MiB/s ({masked} redactions)",
        data.len() >> 20,
        secs,
        data.len() as f64 / secs / (1 << 20) as f64
    );
}
