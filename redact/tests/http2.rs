//! HTTP/2 header blocks through the public API: HPACK-encoded with a real encoder
//! (httlib-hpack), Huffman-coded and literal, with the dynamic table in play. Every secret
//! here is fake.

use std::sync::Arc;

use httlib_hpack::Encoder;
use recorder_redact::{Config, Policy, Redacted, StreamRedactor};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const BEARER: &str = "Bearer h2-SECRET-token-9f8e7d6c5b4a";
const COOKIE: &str = "sid=h2-COOKIE-5d4c3b2a1908";
const QUERY_TOKEN: &str = "/v1/pay?access_token=h2QRYtok3n8812xyz";
/// Encoder flags: Huffman value, incremental indexing, Huffman name.
const HUFFMAN_VALUE: u8 = 0x2;
const INDEXING: u8 = 0x4;
const HUFFMAN_NAME: u8 = 0x1;

fn policy() -> Arc<Policy> {
    Arc::new(Policy::new(&Config::default()).unwrap())
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn settings() -> Vec<u8> {
    frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])
}

fn huffman(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    httlib_huffman::encode(text.as_bytes(), &mut out).unwrap();
    out
}

/// A client's connection: two requests whose header blocks carry secrets, Huffman-coded and
/// literal, the second reusing the first's table entries.
fn client_stream() -> Vec<u8> {
    let mut encoder = Encoder::default();
    let mut first = Vec::new();
    let fields: [(&str, &str, u8); 6] = [
        (":method", "POST", HUFFMAN_VALUE),
        (":path", QUERY_TOKEN, HUFFMAN_VALUE),
        ("authorization", BEARER, HUFFMAN_VALUE | INDEXING),
        ("cookie", COOKIE, INDEXING),
        (
            "x-request-id",
            "req-visible-42",
            HUFFMAN_VALUE | INDEXING | HUFFMAN_NAME,
        ),
        ("user-agent", "visible-agent/1.0", 0),
    ];
    for (name, value, flags) in fields {
        let field = (name.as_bytes().to_vec(), value.as_bytes().to_vec(), flags);
        encoder.encode(field, &mut first).unwrap();
    }
    // The second request: the whole authorization field from the table (index 62 + 2 is
    // the oldest of three entries), and a new cookie under the table's name.
    let mut second = vec![0x80 | 64];
    let cookie = (
        "cookie".as_bytes().to_vec(),
        b"sid=h2-SECOND-cookie-77aa".to_vec(),
        0x2 | 0x10,
    );
    encoder.encode(cookie, &mut second).unwrap();
    let mut stream = PREFACE.to_vec();
    stream.extend(settings());
    stream.extend(frame(0x1, 0x4 | 0x1, 1, &first));
    // The second block in two frames: HEADERS without END_HEADERS, then CONTINUATION.
    let (a, b) = second.split_at(1);
    stream.extend(frame(0x1, 0x1, 3, a));
    stream.extend(frame(0x9, 0x4, 3, b));
    stream.extend(frame(0x0, 0x1, 3, b"{\"visible\":\"body\"}\n"));
    stream
}

/// Pushes the stream in pieces of `piece` bytes; returns the redacted stream.
fn redact(stream: &[u8], piece: usize) -> (Vec<u8>, Vec<Redacted>) {
    let mut redactor = StreamRedactor::new(policy());
    let tickets: Vec<_> = stream.chunks(piece).map(|p| redactor.push(p, 0)).collect();
    redactor.close();
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    for ticket in tickets {
        let taken = redactor.take(ticket).expect("decided once closed");
        out.extend_from_slice(&taken.bytes);
        pieces.push(taken);
    }
    assert_eq!(out.len(), stream.len(), "lengths are kept");
    (out, pieces)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_secret(out: &[u8]) {
    for secret in [BEARER, COOKIE, QUERY_TOKEN, "sid=h2-SECOND-cookie-77aa"] {
        assert!(!contains(out, secret.as_bytes()), "{secret} in plain");
        assert!(!contains(out, &huffman(secret)), "{secret} Huffman-coded");
    }
    for fragment in ["h2-SECRET-token", "h2-COOKIE", "h2QRYtok3n", "h2-SECOND"] {
        assert!(!contains(out, fragment.as_bytes()), "{fragment} in plain");
    }
}

#[test]
fn secret_header_values_are_masked_huffman_coded_or_literal() {
    let stream = client_stream();
    assert!(
        contains(&stream, &huffman(BEARER)),
        "the test encodes with Huffman"
    );
    let (out, pieces) = redact(&stream, stream.len());
    assert_no_secret(&out);
    // What is not secret is left: the literal user agent, the Huffman-coded request id,
    // the body.
    assert!(contains(&out, b"visible-agent/1.0"));
    assert!(contains(&out, &huffman("req-visible-42")));
    assert!(contains(&out, b"{\"visible\":\"body\"}"));
    let rules: Vec<&str> = pieces
        .iter()
        .flat_map(|p| p.redactions.iter().map(|r| &*r.rule))
        .collect();
    assert!(rules.contains(&"http-header"), "{rules:?}");
}

#[test]
fn split_at_every_byte_nothing_leaks() {
    let stream = client_stream();
    for piece in [1, 2, 3, 7, 16, 64] {
        let (out, _) = redact(&stream, piece);
        assert_no_secret(&out);
    }
}

#[test]
fn a_server_stream_is_recognised_by_its_settings_frame() {
    let mut encoder = Encoder::default();
    let mut block = Vec::new();
    for (name, value) in [(":status", "200"), ("set-cookie", COOKIE)] {
        let field = (
            name.as_bytes().to_vec(),
            value.as_bytes().to_vec(),
            HUFFMAN_VALUE,
        );
        encoder.encode(field, &mut block).unwrap();
    }
    let mut stream = settings();
    stream.extend(frame(0x1, 0x4, 1, &block));
    let (out, _) = redact(&stream, stream.len());
    assert!(!contains(&out, &huffman(COOKIE)));
    assert!(contains(&out, &settings()), "frames themselves are left");
}

#[test]
fn after_lost_bytes_or_joined_midway_header_blocks_are_masked_fail_closed() {
    let stream = client_stream();
    // Joined mid-connection: the stream starts at the first HEADERS frame.
    let start = PREFACE.len() + settings().len();
    let (out, pieces) = redact(&stream[start..], stream.len());
    assert_no_secret(&out);
    let rules: Vec<&str> = pieces
        .iter()
        .flat_map(|p| p.redactions.iter().map(|r| &*r.rule))
        .collect();
    assert!(rules.contains(&"fail-closed"), "{rules:?}");
    assert!(
        !contains(&out, b"visible-agent/1.0"),
        "the whole block is masked"
    );

    // Bytes lost after the preface: nothing after the hole can be trusted.
    let mut redactor = StreamRedactor::new(policy());
    let first = redactor.push(&stream[..PREFACE.len()], 0);
    redactor.gap(9, 0);
    let rest = redactor.push(&stream[start..], 0);
    redactor.close();
    assert_eq!(redactor.take(first).unwrap().bytes, PREFACE);
    let rest = redactor.take(rest).unwrap();
    assert!(rest.bytes.iter().all(|&b| b == b'*'), "masked whole");
}

/// A field whose name is longer than 256 bytes has its value masked fail-closed instead of
/// scanned, whether the name is spelled out or taken from the table; a short name's value
/// is scanned as before.
#[test]
fn values_under_very_long_names_are_masked_fail_closed() {
    let long = "x".repeat(300);
    let mut encoder = Encoder::default();
    let mut block = Vec::new();
    for (name, value, flags) in [
        (long.as_str(), "first-visible", INDEXING),
        ("x-short", "short-visible", INDEXING),
    ] {
        let field = (name.as_bytes().to_vec(), value.as_bytes().to_vec(), flags);
        encoder.encode(field, &mut block).unwrap();
    }
    // Literal without indexing (0x0f, then 63 - 15 = 48): the long name, now entry 63
    // (the short one, added after it, is 62); then the short name's, 62 (0x0f 0x2f).
    block.extend([0x0f, 0x30, 12]);
    block.extend(b"from-table-1");
    block.extend([0x0f, 0x2f, 12]);
    block.extend(b"from-table-2");
    // Literal with indexing (0x7f, then 63 - 63 = 0): the long name again, added to the
    // table as entry 62 with its value; then a field under that new entry's name.
    block.extend([0x7f, 0x00, 12]);
    block.extend(b"via-indexing");
    block.extend([0x0f, 0x2f, 14]);
    block.extend(b"from-new-entry");
    let mut stream = PREFACE.to_vec();
    stream.extend(settings());
    stream.extend(frame(0x1, 0x4 | 0x1, 1, &block));
    let (out, pieces) = redact(&stream, stream.len());
    assert!(!contains(&out, b"first-visible"));
    assert!(!contains(&out, b"from-table-1"));
    assert!(contains(&out, b"short-visible"));
    assert!(contains(&out, b"from-table-2"));
    assert!(!contains(&out, b"via-indexing"));
    assert!(!contains(&out, b"from-new-entry"));
    let rules: Vec<&str> = pieces
        .iter()
        .flat_map(|p| p.redactions.iter().map(|r| &*r.rule))
        .collect();
    assert_eq!(rules, ["fail-closed"; 4]);
}

/// `gets` fields `:method GET` (one byte each, from the static table), then an
/// `authorization` field, literal with a new name, whose value is `value`.
fn bearer_block(gets: usize, value: &[u8]) -> Vec<u8> {
    let mut block = vec![0x82; gets];
    block.extend([0x00, 13]);
    block.extend(b"authorization");
    block.push(0x80 | value.len() as u8);
    block.extend(value);
    block
}

/// Pushes `stream` in pieces of every size from 1 to its length; asserts the bearer
/// token, Huffman-coded, is never in the output.
fn bearer_never_survives(stream: &[u8]) {
    for piece in 1..=stream.len() {
        let (out, _) = redact(stream, piece);
        assert!(!contains(&out, &huffman(BEARER)), "piece {piece}");
    }
}

/// CONTINUATION defines no PADDED flag: a frame that sets it anyway (receivers ignore
/// undefined flags) carries no pad length, and its fields are followed as any others.
#[test]
fn a_continuation_frame_with_the_padded_bit_is_not_padded() {
    for gets in [1, 110] {
        let mut stream = PREFACE.to_vec();
        stream.extend(settings());
        stream.extend(frame(0x1, 0x0, 1, &[]));
        stream.extend(frame(
            0x9,
            0x4 | 0x8,
            1,
            &bearer_block(gets, &huffman(BEARER)),
        ));
        bearer_never_survives(&stream);
    }
}

/// A pad length past the frame's end is malformed; the fragment before it is masked, and
/// everything after it.
#[test]
fn padding_longer_than_its_frame_masks_the_frame() {
    let mut payload = vec![250];
    payload.extend(bearer_block(1, &huffman(BEARER)));
    let mut stream = PREFACE.to_vec();
    stream.extend(settings());
    stream.extend(frame(0x1, 0x4 | 0x8, 1, &payload));
    bearer_never_survives(&stream);
}

/// A Huffman-coded value that does not decode (here: padding longer than 7 bits) cannot be
/// judged, so it is masked.
#[test]
fn a_value_that_does_not_decode_is_masked() {
    let mut value = huffman(BEARER);
    value.push(0xff);
    let mut stream = PREFACE.to_vec();
    stream.extend(settings());
    stream.extend(frame(0x1, 0x4 | 0x1, 1, &bearer_block(1, &value)));
    bearer_never_survives(&stream);
}

/// Bytes lost inside the client preface: the stream is still HTTP/2, and what follows the
/// hole is masked.
#[test]
fn a_hole_in_the_preface_masks_what_follows() {
    let mut rest = PREFACE[12..].to_vec();
    rest.extend(settings());
    rest.extend(frame(0x1, 0x4 | 0x1, 1, &bearer_block(1, &huffman(BEARER))));
    let mut redactor = StreamRedactor::new(policy());
    let first = redactor.push(&PREFACE[..10], 0);
    redactor.gap(2, 0);
    let rest = redactor.push(&rest, 0);
    redactor.close();
    assert!(redactor.take(first).is_some());
    let rest = redactor.take(rest).unwrap();
    assert!(!contains(&rest.bytes, &huffman(BEARER)));
    assert!(rest.bytes.iter().all(|&b| b == b'*'), "masked whole");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever follows a preface or a server's first frame, split anywhere: no panic, and
    /// every piece keeps its length.
    #[test]
    fn arbitrary_frames_never_panic(
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
        client in proptest::bool::ANY,
        piece in 1usize..64,
    ) {
        let mut stream = if client { PREFACE.to_vec() } else { settings() };
        stream.extend(&body);
        redact(&stream, piece);
    }

    /// Header blocks of arbitrary fields, Huffman-coded or not, indexed or not: decoded in
    /// step with the encoder, so a deny-listed value never survives.
    #[test]
    fn encoded_authorization_values_never_survive(
        fields in proptest::collection::vec(("[a-z-]{1,12}", "[ -~]{0,40}", 0u8..16), 0..8),
        secret in "[A-Za-z0-9]{24,40}",
    ) {
        let mut encoder = Encoder::default();
        let mut block = Vec::new();
        for (name, value, flags) in fields {
            encoder.encode((name.into_bytes(), value.into_bytes(), flags & 0xf), &mut block).unwrap();
        }
        let field = (b"authorization".to_vec(), secret.clone().into_bytes(), HUFFMAN_VALUE | INDEXING);
        encoder.encode(field, &mut block).unwrap();
        let mut stream = PREFACE.to_vec();
        stream.extend(frame(0x1, 0x4, 1, &block));
        let (out, _) = redact(&stream, stream.len());
        proptest::prop_assert!(!contains(&out, &huffman(&secret)));
        proptest::prop_assert!(!contains(&out, secret.as_bytes()));
    }
}
