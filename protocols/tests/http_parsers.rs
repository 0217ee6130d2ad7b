//! Properties of the HTTP parsers: no input makes them panic, and how a valid HTTP/1.1
//! conversation was cut into payloads does not change what is parsed from it.

use proptest::prelude::*;
use recorder_protocols::exchange::Http;
use recorder_protocols::{http1, http2, Detail, Exchange, GapReason, Stream};

/// A piece of a recorded direction.
#[derive(Clone, Debug)]
enum Piece {
    Bytes(Vec<u8>),
    Gap(u64, GapReason),
}

/// Fragments that steer arbitrary input into the parsers' deeper paths.
const WORDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\n",
    b"HEAD /x HTTP/1.0\r\n",
    b"POST /p HTTP/1.1\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 101 Switching\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 99999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: h\r\n",
    b"\r\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"ffffffffffffffff\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    // HEADERS END_STREAM|END_HEADERS on stream 1: :method GET, :path /.
    b"\x00\x00\x02\x01\x05\x00\x00\x00\x01\x82\x84",
    // HEADERS :status 200, DATA END_STREAM, RST_STREAM, CONTINUATION, PADDED DATA.
    b"\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88",
    b"\x00\x00\x02\x00\x01\x00\x00\x00\x01hi",
    b"\x00\x00\x04\x03\x00\x00\x00\x00\x01\x00\x00\x00\x08",
    b"\x00\x00\x01\x09\x04\x00\x00\x00\x01\x82",
    b"\x00\x00\x03\x00\x09\x00\x00\x00\x01\x01x\x00",
    b"\xff\xff\xff\x01\x00\x00\x00\x00\x01",
];

fn piece() -> impl Strategy<Value = Piece> {
    let reason = prop_oneof![
        Just(GapReason::Lost),
        Just(GapReason::Capped),
        Just(GapReason::Withheld)
    ];
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..48).prop_map(Piece::Bytes),
        4 => proptest::sample::select(WORDS).prop_map(|w| Piece::Bytes(w.to_vec())),
        1 => (0u64..64, reason).prop_map(|(n, r)| Piece::Gap(n, r)),
    ]
}

fn record(pieces: &[Piece], t0: u64) -> Stream {
    let mut stream = Stream::default();
    for (i, piece) in pieces.iter().enumerate() {
        let at = t0 + 10 * i as u64;
        match piece {
            Piece::Bytes(bytes) => stream.push(at, bytes),
            Piece::Gap(missing, reason) => stream.push_gap(at, *missing, *reason),
        }
    }
    stream
}

fn http(exchange: &Exchange) -> &Http {
    match &exchange.detail {
        Detail::Http(http) => http,
        other => panic!("not HTTP: {other:?}"),
    }
}

/// One generated request and its response.
#[derive(Clone, Debug)]
struct Pair {
    method: &'static str,
    target: String,
    request_body: Option<(Vec<u8>, bool)>,
    status: u16,
    response_body: Vec<u8>,
    chunked: bool,
}

fn pair() -> impl Strategy<Value = Pair> {
    (
        proptest::sample::select(&["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"][..]),
        "/[a-z0-9/._-]{0,20}(\\?[a-z]=[0-9]{1,3})?",
        proptest::option::of((proptest::collection::vec(any::<u8>(), 0..64), any::<bool>())),
        proptest::sample::select(&[200u16, 201, 204, 301, 304, 404, 500][..]),
        proptest::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(
            |(method, target, request_body, status, response_body, chunked)| Pair {
                method,
                target,
                request_body,
                status,
                response_body,
                chunked,
            },
        )
}

/// A body on the wire: chunked (in chunks of up to 7 bytes) or with a length.
fn body(head: &mut Vec<u8>, body: &[u8], chunked: bool) {
    if chunked {
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in body.chunks(7) {
            head.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            head.extend_from_slice(chunk);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"0\r\n\r\n");
    } else {
        head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        head.extend_from_slice(body);
    }
}

impl Pair {
    fn no_response_body(&self) -> bool {
        self.method == "HEAD" || self.status == 204 || self.status == 304
    }

    fn request(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: example.com\r\n",
            self.method, self.target
        )
        .into_bytes();
        match &self.request_body {
            Some((bytes, chunked)) => body(&mut out, bytes, *chunked),
            None => out.extend_from_slice(b"\r\n"),
        }
        out
    }

    fn response(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} Some Reason\r\nServer: t\r\n", self.status).into_bytes();
        if self.no_response_body() {
            out.extend_from_slice(b"\r\n");
        } else {
            body(&mut out, &self.response_body, self.chunked);
        }
        out
    }
}

/// `bytes` cut at the given points (taken modulo its length), one payload per piece.
fn cut(bytes: &[u8], cuts: &[usize], t0: u64) -> Stream {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    let mut stream = Stream::default();
    for (i, window) in points.windows(2).enumerate() {
        stream.push(t0 + i as u64, &bytes[window[0]..window[1]]);
    }
    stream
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_input_never_panics(
        client in proptest::collection::vec(piece(), 0..24),
        server in proptest::collection::vec(piece(), 0..24),
    ) {
        let (client, server) = (record(&client, 1), record(&server, 5));
        let _ = http1::looks_like_request(client.bytes());
        let _ = http2::looks_like_h2(client.bytes());
        for exchange in http1::parse(&client, &server) {
            prop_assert_eq!(exchange.protocol(), recorder_protocols::Protocol::Http1);
        }
        let _ = http1::parse(&server, &client);
        let mut h2 = Stream::default();
        h2.push(0, http2::PREFACE);
        h2.push(1, client.bytes());
        let _ = http2::parse(&h2, &server);
        let _ = http2::parse(&client, &server);
    }

    #[test]
    fn payload_boundaries_do_not_change_what_is_parsed(
        pairs in proptest::collection::vec(pair(), 1..6),
        client_cuts in proptest::collection::vec(any::<usize>(), 0..12),
        server_cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let requests: Vec<u8> = pairs.iter().flat_map(Pair::request).collect();
        let responses: Vec<u8> = pairs.iter().flat_map(Pair::response).collect();
        let client = cut(&requests, &client_cuts, 0);
        let server = cut(&responses, &server_cuts, 1_000);
        let exchanges = http1::parse(&client, &server);
        prop_assert_eq!(exchanges.len(), pairs.len());
        for (exchange, pair) in exchanges.iter().zip(&pairs) {
            let http = http(exchange);
            prop_assert!(!exchange.incomplete);
            prop_assert_eq!(http.method.as_str(), pair.method);
            prop_assert_eq!(&http.target, &pair.target);
            prop_assert_eq!(http.authority.as_deref(), Some("example.com"));
            prop_assert_eq!(http.status, Some(pair.status));
            let request_body = pair.request_body.as_ref().map_or(&[][..], |(b, _)| b.as_slice());
            prop_assert_eq!(&http.request_body.bytes[..], request_body);
            let response_body: &[u8] =
                if pair.no_response_body() { &[] } else { &pair.response_body };
            prop_assert_eq!(&http.response_body.bytes[..], response_body);
            prop_assert!(http.response_body.complete);
        }
        let wire: u64 = exchanges.iter().map(|e| e.request_bytes).sum();
        prop_assert_eq!(wire, requests.len() as u64);
        let wire: u64 = exchanges.iter().map(|e| e.response_bytes).sum();
        prop_assert_eq!(wire, responses.len() as u64);
    }
}
