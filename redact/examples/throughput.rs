//! Throughput of `StreamRedactor`, pushed in pieces of a given size, on one of these
//! inputs:
//!
//! - `mixed` (the default, what `cargo xtask bench` runs): the false-positive corpus
//!   (ordinary traffic) plus one request with two secrets per pass over it;
//! - `ordinary`: the false-positive corpus only;
//! - `dense`: secret-dense traffic, a planted secret every few dozen bytes (headers,
//!   JSON and form passwords, vendor tokens, JWTs, AWS keys, cards, private keys);
//! - `json`: the JSON lines `recorder-bench-load` writes in the capacity table's rows;
//! - `syscalls`: what `recorder-bench-load syscalls` writes in each call, in every piece:
//!   PIECE_BYTES of `json`'s line from its start, cycled; below the line's 77 bytes (the
//!   64-byte loop) no piece ends a line;
//! - `http`: the request the bench's HTTP row sends (a bearer token and a JSON body),
//!   one request per piece whatever PIECE_BYTES says, as the server reads them;
//! - `response`: the response nginx sends back in that row, one per piece likewise: its
//!   JSON body has no final line break, so each response's status line ends the line the
//!   body before it began (the HTTP tracker's case of a body run into the next message);
//! - `runs`: lines of 64 KiB of `eyJ-eyJ-…`, a JWT begun at every fourth byte and never
//!   finished, a worst case a traced program could write on purpose;
//! - `pem`: lines of 64 KiB of `-----BEGIN PRIVATE KEY`, a PEM block begun every 22
//!   bytes and never ended, another;
//! - `h2names`: an HTTP/2 connection whose first field adds a 4000-byte name to the table,
//!   then 1 MiB of 4-byte fields that each refer to it (run with MIB 1), a third;
//! - `resync`: a Redis stream of `AUTH` commands whose argument breaks the framing, so
//!   the tracker masks the rest of each 4000-byte line;
//! - `digits`: lines of 64 KiB of `4111 `, one digit chain as long as the line, every
//!   stretch of which the card-number detector tries.
//!
//! `cargo run --release -p recorder-redact --example throughput [-- PIECE_BYTES [MIB [MODE]]]`
//!
//! The output line's format is parsed by `xtask` (`bench.rs`): keep it.

use std::sync::Arc;
use std::time::Instant;

use recorder_redact::{Config, Policy, StreamRedactor};

fn corpus() -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .flat_map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// Fake secrets of every common kind, varied by `i` so no two records are the same.
fn dense_record(i: u32) -> String {
    let h = |k: u32| {
        let x = (i.wrapping_mul(2_654_435_761) ^ k.wrapping_mul(40_503)).rotate_left(k % 31);
        format!("{x:08x}")
    };
    let mixed = |k: u32| {
        h(k).bytes()
            .zip("QwErTyUiOpAsDfGh".bytes())
            .map(|(a, b)| {
                if a.is_ascii_digit() {
                    b as char
                } else {
                    a as char
                }
            })
            .collect::<String>()
            + &h(k + 1)
    };
    let card = match i % 3 {
        0 => "4111 1111 1111 1111",
        1 => "5500-0000-0000-0004",
        _ => "378282246310005",
    };
    format!(
        "POST /v1/session HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer {b}\r\n\
         Cookie: sid={c}; theme=dark\r\nContent-Length: 60\r\n\r\n\
         {{\"user\":\"ann\",\"password\":\"Pw{c}!\",\"api_key\":\"{b}\"}}\n\
         export AWS_ACCESS_KEY_ID=AKIA{u}\nexport AWS_SECRET_ACCESS_KEY={s40}\n\
         token=ghp_{t36}&next=/home\njwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi{c}.{b}\n\
         card {card} ssn 123-45-6789 key sk_live_{t24} glpat-{t20}\n\
         postgres://app:{c}@db.internal:5432/app\nmysql --password {c} -h db\n\
         -----BEGIN PRIVATE KEY-----\nMIIE{s40}\n-----END PRIVATE KEY-----\n",
        b = mixed(1),
        c = h(2),
        u = h(3).to_ascii_uppercase() + &h(4).to_ascii_uppercase(),
        s40 = mixed(5) + &mixed(7) + &h(9),
        t36 = mixed(10) + &mixed(12) + &h(14)[..4],
        t24 = mixed(15) + &h(17),
        t20 = mixed(18) + &h(20)[..4],
    )
}

/// The request `cargo xtask bench`'s HTTP row sends with wrk (`xtask/profile-http.sh`).
fn http_request() -> Vec<u8> {
    let body = concat!(
        r#"{"customer":{"id":"cus_4411","email":"ada@example.com"},"items":[{"sku":"A-1177","qty":3,"#,
        r#""price":"19.90"},{"sku":"B-2044","qty":1,"price":"4.50"}],"shipping":{"street":"1 Loop Road","#,
        r#""city":"Localhost","zip":"12700"},"note":"leave at the door"}"#
    );
    format!(
        "POST /orders HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n\
         Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The response the bench's HTTP row gets from nginx (`xtask/profile-http.sh`): a JSON body
/// without a final line break, so the next response's status line ends its last line.
fn http_response() -> Vec<u8> {
    let body = concat!(
        r#"{"id":"ord_7f3a91c2","status":"created","items":[{"sku":"A-1177","qty":3,"price":"19.90"},"#,
        r#"{"sku":"B-2044","qty":1,"price":"4.50"}],"total":"64.20","currency":"EUR"}"#
    );
    format!(
        "HTTP/1.1 201 Created\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 15:11:20 GMT\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// HEADERS frames (END_HEADERS) on streams 1, 3, 5, ...: first a field that adds a name of
/// 4000 bytes to the table, then fields of 4 bytes, each a literal not indexed whose name is
/// that entry (index 62) and whose value is `a`.
fn h2_long_names() -> Vec<u8> {
    let frame = |stream: u32, block: &[u8]| {
        let len = (block.len() as u32).to_be_bytes();
        [&len[1..], &[0x1, 0x4], &stream.to_be_bytes(), block].concat()
    };
    // Literal with indexing, new name: 4000 as a 7-bit-prefix integer is 0x7f 0xa1 0x1e.
    let first = [&[0x40, 0x7f, 0xa1, 0x1e][..], &[b'x'; 4000], &[1, b'v']].concat();
    let mut out = [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], &frame(1, &first)].concat();
    for i in 1..=64 {
        out.extend(frame(1 + 2 * i, &[0x0f, 0x2f, 1, b'a'].repeat(4096)));
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut piece: usize = args
        .next()
        .map_or(4096, |a| a.parse().expect("PIECE_BYTES"));
    let mib: usize = args.next().map_or(64, |a| a.parse().expect("MIB"));
    let mode = args.next().unwrap_or_else(|| "mixed".to_string());
    let sample = match mode.as_str() {
        "mixed" => {
            let mut s = corpus();
            s.extend_from_slice(
                b"POST /login HTTP/1.1\r\nAuthorization: Bearer FAKEtok3n.abc\r\nContent-Length: 33\r\n\r\n{\"user\":\"a\",\"password\":\"FakePw\"}",
            );
            s
        }
        "ordinary" => corpus(),
        "json" => br#"{"order":8841,"sku":"A-1177","qty":3,"price":"19.90","note":"leave at door"}
"#
        .repeat(64),
        "syscalls" => {
            let line =
                br#"{"order":8841,"sku":"A-1177","qty":3,"price":"19.90","note":"leave at door"}
"#;
            line.iter().copied().cycle().take(piece).collect()
        }
        "dense" => (0..64).flat_map(|i| dense_record(i).into_bytes()).collect(),
        "http" => {
            let request = http_request();
            piece = request.len();
            request
        }
        "response" => {
            let response = http_response();
            piece = response.len();
            response
        }
        "runs" => [b"eyJ-".repeat(16 << 10), b"\n".to_vec()].concat(),
        "h2names" => h2_long_names(),
        "pem" => [b"-----BEGIN PRIVATE KEY".repeat(3 << 10), b"\n".to_vec()].concat(),
        "resync" => [&b"*2\r\n$4\r\nAUTH\r\n"[..], &[b'x'; 4000], b"\n"].concat(),
        "digits" => [b"4111 ".repeat(13107), b"\n".to_vec()].concat(),
        other => panic!(
            "MODE is mixed, ordinary, json, syscalls, dense, http, response, runs, pem, h2names, \
             resync or digits, not {other}"
        ),
    };
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
