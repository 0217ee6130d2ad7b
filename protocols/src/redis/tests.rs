use super::*;
use crate::stream::GapReason;

fn command(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        out.extend(format!("${}\r\n{word}\r\n", word.len()).bytes());
    }
    out
}

fn stream(parts: &[(u64, &[u8])]) -> Stream {
    let mut stream = Stream::default();
    for (at, bytes) in parts {
        stream.push(*at, bytes);
    }
    stream
}

fn detail(ex: &Exchange) -> &Redis {
    match &ex.detail {
        Detail::Redis(redis) => redis,
        other => panic!("not redis: {other:?}"),
    }
}

#[test]
fn set_get_and_an_error_reply() {
    let client = stream(&[
        (1, &command(&["set", "k", "v"])),
        (3, &command(&["GET", "k"])),
        (5, &command(&["incr", "k"])),
    ]);
    let server = stream(&[
        (2, b"+OK\r\n"),
        (4, b"$1\r\nv\r\n"),
        (6, b"-ERR value is not an integer or out of range\r\n"),
    ]);
    let out = parse(&client, &server);
    assert_eq!(out.len(), 3);
    let set = detail(&out[0]);
    assert_eq!(set.command, ["SET", "k", "v"]);
    assert_eq!(
        (set.reply_type.as_str(), set.reply.as_str()),
        ("simple-string", "OK")
    );
    assert_eq!((out[0].request_ns, out[0].response_ns), (1, Some(2)));
    assert_eq!(
        out[0].request_bytes,
        command(&["set", "k", "v"]).len() as u64
    );
    assert_eq!(out[0].response_bytes, 5);
    let get = detail(&out[1]);
    assert_eq!(
        (get.reply_type.as_str(), get.reply.as_str()),
        ("bulk-string", "\"v\"")
    );
    let incr = detail(&out[2]);
    assert_eq!(incr.reply_type, "error");
    assert_eq!(
        incr.error.as_deref(),
        Some("ERR value is not an integer or out of range")
    );
    assert!(out[2].is_error());
    assert!(out.iter().all(|ex| !ex.incomplete));
}

#[test]
fn pipelined_commands_pair_in_order() {
    let mut batch = command(&["INCR", "a"]);
    batch.extend(command(&["INCR", "b"]));
    batch.extend(command(&["MGET", "a", "b", "c"]));
    let replies = b":1\r\n:7\r\n*3\r\n$1\r\n1\r\n$1\r\n7\r\n$-1\r\n";
    let out = parse(
        &stream(&[(1, &batch)]),
        &stream(&[(2, &replies[..6]), (3, &replies[6..])]),
    );
    assert_eq!(out.len(), 3);
    assert_eq!(detail(&out[0]).reply, "1");
    assert_eq!(detail(&out[1]).reply, "7");
    assert_eq!(detail(&out[1]).reply_type, "integer");
    assert_eq!(detail(&out[2]).reply, "[\"1\", \"7\", (nil)]");
    assert_eq!(out[2].response_ns, Some(3));
}

#[test]
fn resp3_map_reply_after_hello() {
    let client = stream(&[
        (1, &command(&["HELLO", "3"])),
        (3, &command(&["HGETALL", "h"])),
    ]);
    let hello = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n";
    let map = b"%1\r\n+f\r\n,1.5\r\n";
    let out = parse(&client, &stream(&[(2, hello), (4, map)]));
    assert_eq!(detail(&out[0]).reply_type, "map");
    assert_eq!(
        detail(&out[0]).reply,
        "{\"server\": \"redis\", \"proto\": 3}"
    );
    assert_eq!(detail(&out[1]).reply, "{f: 1.5}");
}

#[test]
fn inline_command() {
    let out = parse(&stream(&[(1, b"ping\r\n")]), &stream(&[(2, b"+PONG\r\n")]));
    assert_eq!(out.len(), 1);
    assert_eq!(detail(&out[0]).command, ["PING"]);
    assert_eq!(detail(&out[0]).reply, "PONG");
    assert!(looks_like_command(b"PING\r\n"));
    assert!(looks_like_command(b"set k v\r\n"));
    assert!(looks_like_command(&command(&["GET", "x"])));
    assert!(!looks_like_command(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_command(b"*\r\n"));
}

#[test]
fn pushes_answer_no_command() {
    let client = stream(&[
        (1, &command(&["SUBSCRIBE", "a", "b"])),
        (5, &command(&["PING"])),
    ]);
    let server = stream(&[
        (
            2,
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
        ),
        (4, b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"),
        (6, b"+PONG\r\n"),
    ]);
    let out = parse(&client, &server);
    assert_eq!(out.len(), 3);
    assert_eq!(detail(&out[0]).command[0], "SUBSCRIBE");
    assert_eq!(out[0].response_ns, Some(2));
    assert!(detail(&out[1]).command.is_empty());
    assert_eq!(detail(&out[1]).reply_type, "push");
    assert_eq!(detail(&out[2]).reply, "PONG");
}

#[test]
fn lost_replies_pair_the_rest_by_time() {
    let client = stream(&[
        (1, &command(&["GET", "a"])),
        (3, &command(&["GET", "b"])),
        (5, &command(&["GET", "c"])),
    ]);
    let mut server = stream(&[(2, b"$1\r\n1\r\n")]);
    server.push_gap(4, 7, GapReason::Lost);
    server.push(6, b"$1\r\n3\r\n");
    let out = parse(&client, &server);
    assert_eq!(out.len(), 3);
    assert_eq!(detail(&out[0]).reply, "\"1\"");
    assert!(!out[0].incomplete);
    assert_eq!(detail(&out[1]).reply_type, "");
    assert!(out[1].incomplete);
    assert_eq!(detail(&out[2]).reply, "\"3\"");
    assert!(out[2].incomplete);
}

#[test]
fn client_resyncs_at_the_next_array_after_a_gap() {
    let big = command(&["SET", "k", &"x".repeat(50)]);
    let mut client = stream(&[(1, &big[..20])]);
    client.push_gap(1, 3, GapReason::Capped);
    client.push(3, b"xx\r\n");
    client.push(3, &command(&["GET", "k"]));
    let server = stream(&[(2, b"+OK\r\n"), (4, b"$1\r\nv\r\n")]);
    let out = parse(&client, &server);
    assert_eq!(out.len(), 2);
    assert_eq!(&detail(&out[0]).command[..2], ["SET", "k"]);
    assert!(out[0].incomplete);
    assert_eq!(detail(&out[0]).reply, "OK");
    assert_eq!(detail(&out[1]).command, ["GET", "k"]);
    assert_eq!(detail(&out[1]).reply, "\"v\"");
}

#[test]
fn deep_nesting_and_garbage_do_not_panic() {
    let deep = "*1\r\n".repeat(100_000);
    let out = parse(
        &stream(&[(1, &command(&["GET", "a"]))]),
        &stream(&[(2, deep.as_bytes())]),
    );
    assert_eq!(out.len(), 1);
    let garbage: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let _ = parse(&stream(&[(1, &garbage)]), &stream(&[(2, &garbage)]));
    let long_word = command(&["SET", &"é".repeat(200)]);
    let out = parse(&stream(&[(1, &long_word)]), &Stream::default());
    assert!(detail(&out[0]).command[1].chars().count() <= 65);
    assert!(out[0].incomplete);
}
