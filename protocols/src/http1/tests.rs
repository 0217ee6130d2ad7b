use super::*;
use crate::stream::GapReason;

/// A stream of payloads, each moved 10 ns after the one before, starting at `t0`.
fn stream(t0: u64, payloads: &[&[u8]]) -> Stream {
    let mut stream = Stream::default();
    for (i, payload) in payloads.iter().enumerate() {
        stream.push(t0 + 10 * i as u64, payload);
    }
    stream
}

fn http(exchange: &Exchange) -> &Http {
    match &exchange.detail {
        Detail::Http(http) => http,
        other => panic!("not HTTP: {other:?}"),
    }
}

const CURL_GET: &[u8] =
    b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
const OK_HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn detects_request_lines_and_their_prefixes() {
    assert!(looks_like_request(CURL_GET));
    assert!(looks_like_request(b"GET "));
    assert!(looks_like_request(b"POST /upl"));
    assert!(looks_like_request(b"OPTIONS * HTTP/1."));
    assert!(looks_like_request(b"DELETE /x HTTP/1.0\n"));
    assert!(!looks_like_request(b"GET"));
    assert!(!looks_like_request(b"GETX / HTTP/1.1\r\n"));
    assert!(!looks_like_request(b"GET  / HTTP/1.1\r\n"));
    assert!(!looks_like_request(b"GET / HTTP/2.0\r\n"));
    assert!(!looks_like_request(b"GET / HTTP/1.1 junk\r\n"));
    assert!(!looks_like_request(b"GET /\r\n"));
    assert!(!looks_like_request(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    assert!(!looks_like_request(b"HTTP/1.1 200 OK\r\n"));
    assert!(!looks_like_request(b""));
}

#[test]
fn curl_get_fills_every_field() {
    let client = stream(100, &[CURL_GET]);
    let server = stream(200, &[&OK_HELLO[..20], &OK_HELLO[20..]]);
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    let exchange = &exchanges[0];
    assert_eq!(exchange.request_ns, 100);
    assert_eq!(exchange.response_ns, Some(210));
    assert_eq!(exchange.request_bytes, CURL_GET.len() as u64);
    assert_eq!(exchange.response_bytes, OK_HELLO.len() as u64);
    assert!(!exchange.incomplete);
    let http = http(exchange);
    assert_eq!(http.version, "HTTP/1.1");
    assert_eq!(http.stream_id, 0);
    assert_eq!(http.method, "GET");
    assert_eq!(http.target, "/index.html?q=1");
    assert_eq!(http.authority.as_deref(), Some("example.com"));
    assert_eq!(http.request_headers.len(), 3);
    assert_eq!(
        http.request_headers[1],
        ("User-Agent".into(), "curl/8.5.0".into())
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
    assert_eq!(http.reason, "OK");
    assert_eq!(
        http.response_headers[0],
        ("Content-Type".into(), "text/plain".into())
    );
    assert_eq!(http.response_body.bytes, b"hello");
    assert_eq!(http.response_body.length, 5);
    assert!(http.response_body.complete);
}

#[test]
fn post_with_content_length_split_over_payloads() {
    let request: &[u8] =
        b"POST /api/items HTTP/1.0\r\nHost: api\r\nContent-Length: 11\r\n\r\n{\"id\":\"**\"}";
    let client = stream(0, &[&request[..30], &request[30..55], &request[55..]]);
    let server = stream(100, &[b"HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n"]);
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    let http = http(&exchanges[0]);
    assert_eq!(http.version, "HTTP/1.0");
    assert_eq!(http.method, "POST");
    assert_eq!(http.request_body.bytes, b"{\"id\":\"**\"}");
    assert!(http.request_body.complete);
    assert_eq!(http.status, Some(201));
    assert_eq!(http.reason, "Created");
    assert_eq!(exchanges[0].request_bytes, request.len() as u64);
    assert!(!exchanges[0].incomplete);
}

#[test]
fn chunked_response_is_decoded_with_extensions_and_trailers() {
    let client = stream(0, &[CURL_GET]);
    let response: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Checksum: abc\r\n\r\n";
    let server = stream(50, &[&response[..60], &response[60..]]);
    let exchanges = parse(&client, &server);
    let http = http(&exchanges[0]);
    assert_eq!(http.response_body.bytes, b"hello, world");
    assert_eq!(http.response_body.length, 12);
    assert!(http.response_body.complete);
    assert_eq!(exchanges[0].response_bytes, response.len() as u64);
    assert_eq!(exchanges[0].response_ns, Some(60));
    assert!(!exchanges[0].incomplete);
}

#[test]
fn pipelined_requests_pair_in_order() {
    let requests = [
        &b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"PUT /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
    ]
    .concat();
    let client = stream(0, &[&requests]);
    let server = stream(
        100,
        &[
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nB",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ],
    );
    let exchanges = parse(&client, &server);
    let got: Vec<_> = exchanges
        .iter()
        .map(|e| (http(e).target.as_str(), http(e).status, e.response_ns))
        .collect();
    assert_eq!(
        got,
        vec![
            ("/a", Some(200), Some(100)),
            ("/b", Some(404), Some(110)),
            ("/c", Some(204), Some(120))
        ]
    );
    assert!(exchanges.iter().all(|e| !e.incomplete));
    assert!(exchanges[1].is_error());
}

#[test]
fn head_response_has_no_body_despite_its_length() {
    let client = stream(0, &[b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", CURL_GET]);
    let server = stream(
        100,
        &[b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", OK_HELLO],
    );
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 2);
    assert_eq!(http(&exchanges[0]).response_body.bytes, b"");
    assert_eq!(http(&exchanges[0]).method, "HEAD");
    assert_eq!(http(&exchanges[1]).response_body.bytes, b"hello");
    assert!(exchanges.iter().all(|e| !e.incomplete));
}

#[test]
fn continue_is_skipped_and_counted_in_the_answer() {
    let client = stream(
        0,
        &[
            b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
            b"data",
        ],
    );
    let interim: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let last: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let server = stream(5, &[interim, last]);
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    let http = http(&exchanges[0]);
    assert_eq!(http.status, Some(200));
    assert_eq!(http.request_body.bytes, b"data");
    assert_eq!(
        exchanges[0].response_bytes,
        (interim.len() + last.len()) as u64
    );
    assert_eq!(exchanges[0].response_ns, Some(15));
}

#[test]
fn gap_mid_body_marks_incomplete_and_parsing_resumes_at_the_next_request() {
    let mut client = Stream::default();
    client.push(
        0,
        b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nfirst",
    );
    client.push_gap(10, 0, GapReason::Lost);
    client.push(
        20,
        b"tail of the body\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    let server = stream(
        30,
        &[b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", OK_HELLO],
    );
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 2);
    assert!(exchanges[0].incomplete);
    let first = http(&exchanges[0]);
    assert_eq!(first.request_body.bytes, b"first");
    assert_eq!(first.request_body.length, 100);
    assert!(!first.request_body.complete);
    assert_eq!(first.status, Some(500));
    assert_eq!(http(&exchanges[1]).target, "/next");
    assert_eq!(http(&exchanges[1]).status, Some(200));
    assert!(!exchanges[1].incomplete);
}

#[test]
fn gap_of_known_size_inside_a_body_keeps_the_framing() {
    let mut server = Stream::default();
    server.push(10, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123");
    server.push_gap(11, 4, GapReason::Capped);
    server.push(12, b"89");
    server.push(13, OK_HELLO);
    let client = stream(0, &[CURL_GET, CURL_GET]);
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 2);
    assert!(exchanges[0].incomplete);
    let body = &http(&exchanges[0]).response_body;
    assert_eq!(
        (body.bytes.as_slice(), body.length, body.complete),
        (&b"012389"[..], 10, false)
    );
    assert!(!exchanges[1].incomplete);
    assert_eq!(http(&exchanges[1]).response_body.bytes, b"hello");
}

#[test]
fn lost_response_pairs_by_time_after_the_gap() {
    // Not pipelined: each request moves after the previous answer.
    let mut client = Stream::default();
    let mut server = Stream::default();
    client.push(0, b"GET /1 HTTP/1.1\r\n\r\n");
    server.push(5, OK_HELLO);
    client.push(10, b"GET /2 HTTP/1.1\r\n\r\n");
    server.push_gap(15, 0, GapReason::Lost);
    client.push(20, b"GET /3 HTTP/1.1\r\n\r\n");
    server.push(25, b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    let exchanges = parse(&client, &server);
    let got: Vec<_> = exchanges
        .iter()
        .map(|e| (http(e).target.as_str(), http(e).status))
        .collect();
    assert_eq!(
        got,
        vec![("/1", Some(200)), ("/2", None), ("/3", Some(202))]
    );
    assert!(exchanges[1].incomplete);
    assert!(!exchanges[2].incomplete);
}

#[test]
fn response_without_length_runs_to_the_end() {
    let client = stream(0, &[b"GET /old HTTP/1.0\r\n\r\n"]);
    let server = stream(10, &[b"HTTP/1.0 200 OK\r\n\r\nall", b" of it"]);
    let exchanges = parse(&client, &server);
    let http = http(&exchanges[0]);
    assert_eq!(http.response_body.bytes, b"all of it");
    assert!(http.response_body.complete);
    assert!(!exchanges[0].incomplete);
    assert_eq!(exchanges[0].response_ns, Some(20));
}

#[test]
fn unanswered_and_cut_requests_are_incomplete() {
    let client = stream(
        0,
        &[
            CURL_GET,
            b"POST /x HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc",
        ],
    );
    let server = stream(10, &[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"]);
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 2);
    assert!(
        exchanges[0].incomplete,
        "response cut by the recording's end"
    );
    assert_eq!(http(&exchanges[0]).response_body.bytes, b"hel");
    assert!(exchanges[1].incomplete);
    assert_eq!(exchanges[1].response_ns, None);
    assert_eq!(http(&exchanges[1]).status, None);
    assert_eq!(http(&exchanges[1]).request_body.bytes, b"abc");
}

#[test]
fn upgrade_ends_http1_parsing() {
    let client = stream(
        0,
        &[
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET /not-http HTTP/1.1\r\n\r\n",
        ],
    );
    let server = stream(
        10,
        &[b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"],
    );
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    assert_eq!(http(&exchanges[0]).status, Some(101));
    assert!(!exchanges[0].incomplete);
}

#[test]
fn garbage_and_empty_streams_do_not_panic() {
    assert!(parse(&Stream::default(), &Stream::default()).is_empty());
    let client = stream(0, &[b"\x16\x03\x01garbage\r\nGET / HTTP/1.1\r\n\r\n"]);
    let server = stream(5, &[b"junk HTTP/1.1 200 OK\r\n\r\n"]);
    let exchanges = parse(&client, &server);
    assert_eq!(exchanges.len(), 1);
    assert_eq!(http(&exchanges[0]).target, "/");
}
