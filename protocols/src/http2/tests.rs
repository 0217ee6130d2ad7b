use httlib_hpack::Encoder;

use super::*;
use crate::stream::GapReason;

const HEADERS: u8 = 0x1;
const DATA: u8 = 0x0;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

fn frame(kind: u8, flags: u8, id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A header block as a real encoder writes it: Huffman values, indexed where it can.
fn block(encoder: &mut Encoder<'_>, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        let flags = Encoder::HUFFMAN_VALUE | Encoder::WITH_INDEXING | Encoder::BEST_FORMAT;
        encoder
            .encode(
                (name.as_bytes().to_vec(), value.as_bytes().to_vec(), flags),
                &mut out,
            )
            .expect("encodes");
    }
    out
}

/// A client stream: the preface and an empty SETTINGS, moved at `t`.
fn client_start(t: u64) -> Stream {
    let mut stream = Stream::default();
    stream.push(t, &[PREFACE, &frame(SETTINGS, 0, 0, &[])].concat());
    stream
}

fn http(exchange: &Exchange) -> &Http {
    match &exchange.detail {
        Detail::Http(http) => http,
        other => panic!("not HTTP: {other:?}"),
    }
}

const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "example.com"),
    ("user-agent", "curl/8.5.0"),
    ("accept", "*/*"),
];

#[test]
fn detects_the_preface_and_its_prefixes() {
    assert!(looks_like_h2(PREFACE));
    assert!(looks_like_h2(b"PRI * HT"));
    assert!(looks_like_h2(&[PREFACE, b"\0\0\0\x04"].concat()));
    assert!(!looks_like_h2(b""));
    assert!(!looks_like_h2(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_h2(b"PRI * HTTP/1.1"));
}

#[test]
fn get_fills_every_field() {
    let (mut to_server, mut to_client) = (Encoder::default(), Encoder::default());
    let mut client = client_start(100);
    let request = frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &block(&mut to_server, GET),
    );
    client.push(110, &request);
    let mut server = Stream::default();
    server.push(120, &frame(SETTINGS, 0, 0, &[]));
    let head = frame(
        HEADERS,
        END_HEADERS,
        1,
        &block(
            &mut to_client,
            &[(":status", "200"), ("content-type", "text/plain")],
        ),
    );
    let data = frame(DATA, END_STREAM, 1, b"hello");
    server.push(130, &head);
    server.push(140, &data);
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    let exchange = &exchanges[0];
    assert_eq!(exchange.request_ns, 110);
    assert_eq!(exchange.response_ns, Some(140));
    assert_eq!(exchange.request_bytes, request.len() as u64);
    assert_eq!(exchange.response_bytes, (head.len() + data.len()) as u64);
    assert!(!exchange.incomplete);
    assert_eq!(exchange.protocol(), crate::Protocol::Http2);
    let http = http(exchange);
    assert_eq!(http.version, "HTTP/2");
    assert_eq!(http.stream_id, 1);
    assert_eq!(
        (http.method.as_str(), http.target.as_str()),
        ("GET", "/index.html")
    );
    assert_eq!(http.authority.as_deref(), Some("example.com"));
    assert_eq!(
        http.request_headers,
        vec![
            ("user-agent".into(), "curl/8.5.0".into()),
            ("accept".into(), "*/*".into())
        ]
    );
    assert_eq!(
        http.request_body,
        Body {
            bytes: vec![],
            length: 0,
            complete: true
        }
    );
    assert_eq!(http.status, Some(200));
    assert_eq!(
        http.response_headers,
        vec![("content-type".into(), "text/plain".into())]
    );
    assert_eq!(
        http.response_body,
        Body {
            bytes: b"hello".to_vec(),
            length: 5,
            complete: true
        }
    );
}

#[test]
fn post_with_padding_priority_continuation_and_data() {
    let (mut to_server, mut to_client) = (Encoder::default(), Encoder::default());
    let fields = block(
        &mut to_server,
        &[
            (":method", "POST"),
            (":path", "/api"),
            ("content-type", "application/json"),
        ],
    );
    let (first, rest) = fields.split_at(4);
    // HEADERS padded with 3 bytes and carrying a priority, then a CONTINUATION.
    let mut payload = vec![3, 0, 0, 0, 0, 16];
    payload.extend_from_slice(first);
    payload.extend_from_slice(&[0, 0, 0]);
    let mut client = client_start(0);
    client.push(10, &frame(HEADERS, PADDED | PRIORITY, 1, &payload));
    client.push(11, &frame(CONTINUATION, END_HEADERS, 1, rest));
    client.push(12, &frame(DATA, PADDED, 1, b"\x02{\"a\":xx"));
    client.push(13, &frame(DATA, END_STREAM, 1, b"1}"));
    let mut server = Stream::default();
    let head = block(&mut to_client, &[(":status", "201")]);
    server.push(20, &frame(HEADERS, END_HEADERS | END_STREAM, 1, &head));
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    let http = http(&exchanges[0]);
    assert_eq!(http.method, "POST");
    assert_eq!(
        http.request_headers,
        vec![("content-type".into(), "application/json".into())]
    );
    assert_eq!(http.request_body.bytes, b"{\"a\":1}");
    assert_eq!(http.request_body.length, 7);
    assert_eq!(http.status, Some(201));
    assert_eq!(exchanges[0].request_ns, 10);
    assert_eq!(exchanges[0].response_ns, Some(20));
    assert!(!exchanges[0].incomplete);
}

#[test]
fn interleaved_streams_share_the_dynamic_table() {
    let (mut to_server, mut to_client) = (Encoder::default(), Encoder::default());
    let mut client = client_start(0);
    client.push(
        10,
        &frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &block(&mut to_server, GET),
        ),
    );
    let second: Vec<_> = GET
        .iter()
        .map(|&(n, v)| if n == ":path" { (n, "/two") } else { (n, v) })
        .collect();
    client.push(
        11,
        &frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            3,
            &block(&mut to_server, &second),
        ),
    );
    let mut server = Stream::default();
    let ok = [(":status", "200"), ("server", "test")];
    server.push(
        20,
        &frame(HEADERS, END_HEADERS, 3, &block(&mut to_client, &ok)),
    );
    server.push(
        21,
        &frame(
            HEADERS,
            END_HEADERS,
            1,
            &block(&mut to_client, &[(":status", "404"), ("server", "test")]),
        ),
    );
    server.push(22, &frame(DATA, 0, 1, b"not "));
    server.push(23, &frame(DATA, END_STREAM, 3, b"two"));
    server.push(24, &frame(DATA, END_STREAM, 1, b"found"));
    let exchanges = parse(&client, &server);
    let got: Vec<_> = exchanges
        .iter()
        .map(|e| {
            (
                http(e).stream_id,
                http(e).target.as_str(),
                http(e).status,
                http(e).response_body.bytes.as_slice(),
                e.response_ns,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "/index.html", Some(404), &b"not found"[..], Some(24)),
            (3, "/two", Some(200), &b"two"[..], Some(23)),
        ]
    );
    assert!(exchanges.iter().all(|e| !e.incomplete));
    assert_eq!(
        http(&exchanges[1]).response_headers,
        vec![("server".into(), "test".into())]
    );
}

#[test]
fn reset_ends_the_exchange() {
    let mut to_server = Encoder::default();
    let mut client = client_start(0);
    let post = [(":method", "POST"), (":path", "/big")];
    client.push(
        10,
        &frame(HEADERS, END_HEADERS, 1, &block(&mut to_server, &post)),
    );
    client.push(11, &frame(DATA, 0, 1, b"partial"));
    let mut server = Stream::default();
    server.push(20, &frame(RST_STREAM, 0, 1, &[0, 0, 0, 7]));
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    assert!(!exchanges[0].incomplete);
    assert_eq!(exchanges[0].response_ns, Some(20));
    assert_eq!(http(&exchanges[0]).status, None);
    assert!(!http(&exchanges[0]).request_body.complete);
}

#[test]
fn interim_heads_are_skipped() {
    let (mut to_server, mut to_client) = (Encoder::default(), Encoder::default());
    let mut client = client_start(0);
    client.push(
        10,
        &frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &block(&mut to_server, GET),
        ),
    );
    let mut server = Stream::default();
    server.push(
        20,
        &frame(
            HEADERS,
            END_HEADERS,
            1,
            &block(&mut to_client, &[(":status", "103"), ("link", "</s.css>")]),
        ),
    );
    server.push(
        30,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &block(&mut to_client, &[(":status", "204")]),
        ),
    );
    let exchanges = parse(&client, &server);
    assert_eq!(http(&exchanges[0]).status, Some(204));
    assert!(http(&exchanges[0]).response_headers.is_empty());
    assert_eq!(exchanges[0].response_ns, Some(30));
    assert!(!exchanges[0].incomplete);
}

#[test]
fn a_gap_stops_its_direction() {
    let (mut to_server, mut to_client) = (Encoder::default(), Encoder::default());
    let mut client = client_start(0);
    client.push(
        10,
        &frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            1,
            &block(&mut to_server, GET),
        ),
    );
    client.push_gap(11, 0, GapReason::Lost);
    client.push(
        12,
        &frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            3,
            &block(&mut to_server, GET),
        ),
    );
    let mut server = Stream::default();
    server.push(
        20,
        &frame(
            HEADERS,
            END_HEADERS,
            1,
            &block(&mut to_client, &[(":status", "200")]),
        ),
    );
    server.push(21, &frame(DATA, 0, 1, b"part"));
    server.push_gap(22, 100, GapReason::Capped);
    server.push(
        23,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            3,
            &block(&mut to_client, &[(":status", "200")]),
        ),
    );
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1, "stream 3 is past both gaps");
    assert!(exchanges[0].incomplete);
    assert_eq!(exchanges[0].response_ns, None);
    assert_eq!(http(&exchanges[0]).status, Some(200));
    assert_eq!(http(&exchanges[0]).response_body.bytes, b"part");
    assert!(!http(&exchanges[0]).response_body.complete);
}

#[test]
fn response_without_its_request_is_kept_incomplete() {
    let mut to_client = Encoder::default();
    let mut client = client_start(0);
    client.push_gap(5, 0, GapReason::Lost);
    let mut server = Stream::default();
    server.push(
        20,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            5,
            &block(&mut to_client, &[(":status", "500")]),
        ),
    );
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    assert!(exchanges[0].incomplete);
    assert_eq!(exchanges[0].request_ns, 20);
    assert_eq!(http(&exchanges[0]).method, "");
    assert_eq!(http(&exchanges[0]).status, Some(500));
}

#[test]
fn a_lost_table_makes_later_heads_unknown() {
    let mut to_server = Encoder::default();
    let mut client = client_start(0);
    // Index 70 is past the (empty) dynamic table.
    client.push(
        10,
        &frame(HEADERS, END_STREAM | END_HEADERS, 1, &[0x80 | 70]),
    );
    client.push(
        11,
        &frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            3,
            &block(&mut to_server, GET),
        ),
    );
    let exchanges = parse(&client, &Stream::default());
    assert_eq!(exchanges.len(), 2);
    assert!(exchanges
        .iter()
        .all(|e| e.incomplete && http(e).method.is_empty()));
}

#[test]
fn masked_huffman_value_and_garbage_do_not_panic() {
    let mut to_server = Encoder::default();
    let mut fields = block(
        &mut to_server,
        &[
            (":method", "GET"),
            (":path", "/"),
            ("authorization", "Bearer secret-token"),
        ],
    );
    let n = fields.len();
    for byte in &mut fields[n - 10..] {
        *byte = b'*';
    }
    let mut client = client_start(0);
    client.push(10, &frame(HEADERS, END_STREAM | END_HEADERS, 1, &fields));
    client.push(11, &frame(DATA, PADDED, 1, &[200, 1, 2]));
    let mut to_client = Encoder::default();
    let mut server = Stream::default();
    server.push(
        20,
        &frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &block(&mut to_client, &[(":status", "200")]),
        ),
    );
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    let http = http(&exchanges[0]);
    // The fields before the masked value decode; the masked one may or may not.
    assert_eq!((http.method.as_str(), http.target.as_str()), ("GET", "/"));
    let masked = http.request_headers.first().map(|(name, _)| name.as_str());
    assert!(exchanges[0].incomplete || masked == Some("authorization"));
    let mut garbage = Stream::default();
    garbage.push(0, &[PREFACE, &[0xff; 40]].concat());
    assert!(parse(&garbage, &garbage).is_empty());
    assert!(parse(&Stream::default(), &Stream::default()).is_empty());
}
