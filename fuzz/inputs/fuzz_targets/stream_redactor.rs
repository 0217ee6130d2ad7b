//! The stream redactor on a fuzzed stream with a planted secret: text around it, cut into
//! pieces of fuzzed sizes, optionally with the hold-back time bound forced in the middle, and
//! ended by the stream closing or by the recording finishing. No panic, output as long as the
//! input, and every byte of the planted secret masked, wherever the cuts fall.
//!
//! The input: byte 0 picks the secret, byte 1 the flags (bit 0: force the time bound after
//! the piece byte 2 names; bit 1: `finish` instead of `close`), then the text. The text is
//! mapped onto letters, digits, spaces, line ends and `=:,.-_/`, so the fuzzer builds text
//! rather than noise, and it also gives the piece sizes. The secret's line stands alone:
//! a line end before and after it.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use recorder_redact::{Config, Policy, StreamRedactor};

/// (text before the secret on its line, the secret, text after it): fake secrets, each of a
/// kind a detector is there for.
const PLANTED: [(&str, &str, &str); 4] = [
    (
        "Authorization: Bearer ",
        "fuzzTokenQ7fK2mX9pL4vR8sT1wY6zB3n",
        "",
    ),
    ("password=", "Pw-fuzz-4g8Hq2Lz9Xv", "&next=1"),
    ("aws_access_key_id ", "AKIAFUZZ7Q2L9XV4TBNM", ""),
    (
        "token: ",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmdXp6In0.c2lnbmF0dXJlLWZ1enotdGVzdA",
        "",
    ),
];

const ALPHABET: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789  \n=:,.-_/";

fn policy() -> &'static Arc<Policy> {
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    POLICY.get_or_init(|| Arc::new(Policy::new(&Config::default()).expect("the default policy")))
}

fuzz_target!(|data: &[u8]| {
    let [pick, flags, force_after, text @ ..] = data else {
        return;
    };
    let (before, secret, after) = PLANTED[usize::from(*pick) % PLANTED.len()];
    let text: Vec<u8> = text
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
        .collect();
    let half = text.len() / 2;
    let mut stream = text[..half].to_vec();
    stream.push(b'\n');
    stream.extend_from_slice(before.as_bytes());
    let start = stream.len();
    stream.extend_from_slice(secret.as_bytes());
    let end = stream.len();
    stream.extend_from_slice(after.as_bytes());
    stream.push(b'\n');
    stream.extend_from_slice(&text[half..]);

    let mut redactor = StreamRedactor::new(policy().clone());
    let mut tickets = Vec::new();
    let (mut at, mut piece) = (0, 0usize);
    while at < stream.len() {
        let size = 1 + usize::from(data[(3 + piece) % data.len()] % 64);
        let cut = (at + size).min(stream.len());
        tickets.push(redactor.push(&stream[at..cut], 0));
        if flags & 1 != 0 && piece == usize::from(*force_after) {
            redactor.expire(u64::MAX);
        }
        at = cut;
        piece += 1;
    }
    if flags & 2 != 0 {
        redactor.finish();
    } else {
        redactor.close();
    }
    let mut out = Vec::with_capacity(stream.len());
    for ticket in tickets {
        let piece = redactor
            .take(ticket)
            .expect("every piece is decided at the end");
        out.extend_from_slice(&piece.bytes);
    }
    assert_eq!(out.len(), stream.len());
    assert!(
        out[start..end].iter().all(|&b| b == b'*'),
        "the planted secret leaked: {:?}",
        String::from_utf8_lossy(&out)
    );
});
