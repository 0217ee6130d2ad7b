use super::*;
use crate::stream::GapReason;

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstring(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

fn startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = PROTOCOL_3.to_be_bytes().to_vec();
    for part in [
        "user",
        user,
        "database",
        database,
        "application_name",
        "psql",
    ] {
        body.extend(cstring(part));
    }
    body.push(0);
    let mut out = (body.len() as u32 + 4).to_be_bytes().to_vec();
    out.extend(body);
    out
}

fn ssl_request() -> Vec<u8> {
    let mut out = 8u32.to_be_bytes().to_vec();
    out.extend(SSL_REQUEST.to_be_bytes());
    out
}

fn query(sql: &str) -> Vec<u8> {
    message(b'Q', &cstring(sql))
}

fn ready() -> Vec<u8> {
    message(b'Z', b"I")
}

fn complete(tag: &str) -> Vec<u8> {
    message(b'C', &cstring(tag))
}

fn auth_ok() -> Vec<u8> {
    let mut out = message(b'R', &0u32.to_be_bytes());
    out.extend(message(b'S', b"server_version\x0016.2\x00"));
    out.extend(message(b'K', &[0, 0, 0, 7, 1, 2, 3, 4]));
    out.extend(ready());
    out
}

fn data_row(value: &str) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend((value.len() as u32).to_be_bytes());
    body.extend(value.as_bytes());
    message(b'D', &body)
}

fn stream(parts: &[(u64, &[u8])]) -> Stream {
    let mut stream = Stream::default();
    for (at, bytes) in parts {
        stream.push(*at, bytes);
    }
    stream
}

fn detail(ex: &Exchange) -> &Postgres {
    match &ex.detail {
        Detail::Postgres(pg) => pg,
        other => panic!("not postgres: {other:?}"),
    }
}

#[test]
fn startup_is_answered_by_ready_for_query() {
    let client = stream(&[(10, &startup("app", "shop"))]);
    let server = stream(&[(20, &auth_ok())]);
    let out = parse(&client, &server);
    assert_eq!(out.len(), 1);
    let pg = detail(&out[0]);
    assert_eq!(pg.kind, "startup");
    assert_eq!(pg.sql, "user=app database=shop");
    assert_eq!(out[0].request_ns, 10);
    assert_eq!(out[0].response_ns, Some(20));
    assert_eq!(out[0].response_bytes, auth_ok().len() as u64);
    assert!(!out[0].incomplete);
}

#[test]
fn simple_query_create_table() {
    let client = stream(&[
        (10, &startup("app", "shop")),
        (30, &query("CREATE TABLE t (id int)")),
    ]);
    let mut answer = complete("CREATE TABLE");
    answer.extend(ready());
    let server = stream(&[(20, &auth_ok()), (40, &answer)]);
    let out = parse(&client, &server);
    assert_eq!(out.len(), 2);
    let pg = detail(&out[1]);
    assert_eq!(
        (pg.kind.as_str(), pg.sql.as_str()),
        ("query", "CREATE TABLE t (id int)")
    );
    assert_eq!(pg.tags, ["CREATE TABLE"]);
    assert_eq!(pg.rows, 0);
    assert_eq!((out[1].request_ns, out[1].response_ns), (30, Some(40)));
    assert!(!out[1].is_error());
}

fn parse_message(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstring(name);
    body.extend(cstring(sql));
    body.extend(0u16.to_be_bytes());
    message(b'P', &body)
}

fn bind(statement: &str, formats: &[u16], params: &[Option<&[u8]>]) -> Vec<u8> {
    let mut body = cstring("");
    body.extend(cstring(statement));
    body.extend((formats.len() as u16).to_be_bytes());
    for format in formats {
        body.extend(format.to_be_bytes());
    }
    body.extend((params.len() as u16).to_be_bytes());
    for param in params {
        match param {
            Some(value) => {
                body.extend((value.len() as u32).to_be_bytes());
                body.extend(*value);
            }
            None => body.extend(u32::MAX.to_be_bytes()),
        }
    }
    body.extend(0u16.to_be_bytes());
    message(b'B', &body)
}

fn execute_sync() -> Vec<u8> {
    let mut out = message(b'D', b"P\x00");
    out.extend(message(b'E', b"\x00\x00\x00\x00\x00"));
    out.extend(message(b'S', b""));
    out
}

#[test]
fn extended_insert_with_two_params() {
    let mut request = parse_message("", "INSERT INTO t VALUES ($1, $2)");
    request.extend(bind("", &[0, 1], &[Some(b"42"), Some(&[0, 0, 0, 7])]));
    request.extend(execute_sync());
    let mut answer = message(b'1', b"");
    answer.extend(message(b'2', b""));
    answer.extend(message(b'n', b""));
    answer.extend(complete("INSERT 0 1"));
    answer.extend(ready());
    let out = parse(&stream(&[(5, &request)]), &stream(&[(9, &answer)]));
    assert_eq!(out.len(), 1);
    let pg = detail(&out[0]);
    assert_eq!(pg.kind, "extended");
    assert_eq!(pg.sql, "INSERT INTO t VALUES ($1, $2)");
    assert_eq!(
        pg.params,
        [Some("42".to_string()), Some("<4 bytes>".to_string())]
    );
    assert_eq!(pg.tags, ["INSERT 0 1"]);
    assert_eq!(pg.rows, 1);
    assert_eq!(out[0].request_bytes, request.len() as u64);
    assert_eq!(out[0].response_ns, Some(9));
}

#[test]
fn bind_to_a_statement_parsed_earlier_uses_its_sql() {
    let mut prepare = parse_message("s1", "SELECT name FROM users WHERE id = $1");
    prepare.extend(message(b'S', b""));
    let mut run = bind("s1", &[], &[None]);
    run.extend(execute_sync());
    let mut answer1 = message(b'1', b"");
    answer1.extend(ready());
    let mut answer2 = message(b'2', b"");
    answer2.extend(complete("SELECT 0"));
    answer2.extend(ready());
    let out = parse(
        &stream(&[(1, &prepare), (3, &run)]),
        &stream(&[(2, &answer1), (4, &answer2)]),
    );
    assert_eq!(out.len(), 2);
    assert_eq!(detail(&out[1]).sql, "SELECT name FROM users WHERE id = $1");
    assert_eq!(detail(&out[1]).params, [None]);
    assert_eq!(out[1].response_ns, Some(4));
}

#[test]
fn failing_query_carries_the_error_fields() {
    let client = stream(&[(1, &query("SELECT * FROM missing"))]);
    let mut fields = Vec::new();
    for (code, value) in [('S', "ERROR"), ('V', "ERROR"), ('C', "42P01")] {
        fields.push(code as u8);
        fields.extend(cstring(value));
    }
    fields.push(b'M');
    fields.extend(cstring("relation \"missing\" does not exist"));
    fields.push(0);
    let mut answer = message(b'E', &fields);
    answer.extend(ready());
    let out = parse(&client, &stream(&[(2, &answer)]));
    assert_eq!(out.len(), 1);
    let error = detail(&out[0]).error.clone().expect("error");
    assert_eq!(error.code, "42P01");
    assert_eq!(error.severity, "ERROR");
    assert_eq!(error.message, "relation \"missing\" does not exist");
    assert!(out[0].is_error());
}

#[test]
fn select_of_three_rows() {
    let client = stream(&[(1, &query("SELECT n FROM t"))]);
    let mut answer = message(
        b'T',
        b"\x00\x01n\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00",
    );
    for n in ["1", "2", "3"] {
        answer.extend(data_row(n));
    }
    answer.extend(complete("SELECT 3"));
    answer.extend(ready());
    let out = parse(&client, &stream(&[(2, &answer[..20]), (3, &answer[20..])]));
    assert_eq!(detail(&out[0]).rows, 3);
    assert_eq!(detail(&out[0]).tags, ["SELECT 3"]);
    assert_eq!(out[0].response_ns, Some(3));
}

#[test]
fn ssl_refused_then_startup() {
    let client = stream(&[(1, &ssl_request()), (3, &startup("bob", "db"))]);
    let mut answer = b"N".to_vec();
    answer.extend(auth_ok());
    let server = stream(&[(2, &answer[..1]), (4, &answer[1..])]);
    let out = parse(&client, &server);
    assert_eq!(out.len(), 1);
    assert_eq!(detail(&out[0]).sql, "user=bob database=db");
    assert_eq!((out[0].request_ns, out[0].response_ns), (3, Some(4)));
    assert!(looks_like_startup(&ssl_request()));
}

#[test]
fn ssl_accepted_then_plaintext_startup_and_terminate() {
    let mut request = startup("bob", "db");
    request.extend(message(b'X', b""));
    let client = stream(&[(1, &ssl_request()), (3, &request)]);
    let mut answer = b"S".to_vec();
    answer.extend(auth_ok());
    let out = parse(&client, &stream(&[(2, &answer)]));
    assert_eq!(out.len(), 2);
    assert_eq!(detail(&out[1]).kind, "terminate");
    assert_eq!(out[1].response_ns, None);
    assert!(!out[1].incomplete);
}

#[test]
fn lost_client_bytes_end_the_client_direction() {
    let mut client = stream(&[(1, &query("SELECT 1")), (3, &query("SELECT 2"))]);
    client.push_gap(5, 0, GapReason::Lost);
    client.push(7, &query("SELECT 3"));
    let mut answer = complete("SELECT 1");
    answer.extend(ready());
    let server = stream(&[(2, &answer), (4, &answer), (8, &answer)]);
    let out = parse(&client, &server);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|ex| ex.response_ns.is_some()));
}

#[test]
fn lost_server_bytes_leave_later_queries_unanswered() {
    let client = stream(&[(1, &query("SELECT 1")), (3, &query("SELECT 2"))]);
    let mut answer = complete("SELECT 1");
    answer.extend(ready());
    let mut server = stream(&[(2, &answer)]);
    server.push_gap(4, 0, GapReason::Lost);
    let out = parse(&client, &server);
    assert_eq!(out.len(), 2);
    assert!(!out[0].incomplete);
    assert!(out[1].incomplete);
    assert_eq!(out[1].response_ns, None);
}

#[test]
fn capped_query_of_known_size_is_followed_across_the_gap() {
    let long = format!("SELECT '{}'", "x".repeat(100));
    let whole = query(&long);
    let mut client = stream(&[(1, &whole[..40])]);
    client.push_gap(1, (whole.len() - 40) as u64, GapReason::Capped);
    client.push(3, &query("SELECT 2"));
    let mut answer = complete("SELECT 1");
    answer.extend(ready());
    let out = parse(&client, &stream(&[(2, &answer), (4, &answer)]));
    assert_eq!(out.len(), 2);
    assert!(out[0].incomplete);
    assert!(detail(&out[0]).sql.starts_with("SELECT 'xxx"));
    assert_eq!(out[0].request_bytes, 40);
    assert_eq!(detail(&out[1]).sql, "SELECT 2");
    assert!(!out[1].incomplete);
}

#[test]
fn startup_detection() {
    assert!(looks_like_startup(&startup("a", "b")[..8]));
    assert!(!looks_like_startup(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_startup(&[0, 0, 0, 8]));
    assert!(!looks_like_startup(&query("SELECT 1")));
}

#[test]
fn truncated_and_garbage_input_do_not_panic() {
    let mut bytes = startup("a", "b");
    bytes.extend(query("SELECT 1"));
    bytes.extend(bind("", &[1, 1, 1], &[Some(b"xy")]));
    for cut in 0..bytes.len() {
        let client = stream(&[(1, &bytes[..cut])]);
        let server = stream(&[(2, &bytes[cut..])]);
        let _ = parse(&client, &server);
        let _ = parse(&server, &client);
    }
    let garbage = [0u8, 0, 0, 9, 0, 3, 0, 0, b'u', 0xff, 0xff, 0xff, 0xff];
    let _ = parse(&stream(&[(1, &garbage)]), &Stream::default());
}
