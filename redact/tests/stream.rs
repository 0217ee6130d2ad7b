//! StreamRedactor behaviour through the public API: arbitrary splits, the size and time
//! bounds, gaps, and what must survive. Every secret here is fake.

use std::sync::Arc;

use recorder_redact::{Config, HoldBackConfig, Policy, Redacted, StreamRedactor, Ticket};

const MS: u64 = 1_000_000;

fn policy() -> Arc<Policy> {
    Arc::new(Policy::new(&Config::default()).unwrap())
}

fn small_policy(bytes: u64, millis: u64) -> Arc<Policy> {
    Arc::new(
        Policy::new(&Config {
            hold_back: HoldBackConfig {
                bytes,
                millis,
                ..HoldBackConfig::default()
            },
            ..Config::default()
        })
        .unwrap(),
    )
}

/// Pushes `pieces`, finishes, takes everything in order and concatenates.
fn run(policy: &Arc<Policy>, pieces: &[&[u8]], close: bool) -> (Vec<u8>, Vec<Redacted>) {
    let mut s = StreamRedactor::new(policy.clone());
    let tickets: Vec<Ticket> = pieces.iter().map(|p| s.push(p, 0)).collect();
    if close {
        s.close();
    } else {
        s.finish();
    }
    let mut out = Vec::new();
    let mut all = Vec::new();
    for (t, p) in tickets.into_iter().zip(pieces) {
        let r = s.take(t).expect("decided after finish");
        assert_eq!(r.bytes.len(), p.len());
        out.extend_from_slice(&r.bytes);
        all.push(r);
    }
    (out, all)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    memchr_find(hay, needle.as_bytes())
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct Case {
    input: &'static str,
    secrets: &'static [&'static str],
    kept: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        input: "POST /v1/login?next=/home HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer FAKEtok3n.abc\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"user\":\"ann\",\"password\":\"FakePw!23\"}  ",
        secrets: &["FAKEtok3n.abc", "FakePw!23"],
        kept: &["POST /v1/login?next=/home HTTP/1.1", "Host: api.example.test", "Authorization: ", "Content-Type: application/json", "\"user\":\"ann\""],
    },
    Case {
        input: "export DB_PASSWORD=FakeDbPw1\nexport AWS_ACCESS_KEY_ID=AKIAFAKEFAKEFAKE1234\nexport EDITOR=vim\n",
        secrets: &["FakeDbPw1", "AKIAFAKEFAKEFAKE1234"],
        kept: &["export DB_PASSWORD=", "export EDITOR=vim"],
    },
    Case {
        input: "-----BEGIN PRIVATE KEY-----\nMIIFAKEfakeFAKEfakeLINE1\nMIIFAKEfakeFAKEfakeLINE2\n-----END PRIVATE KEY-----\nnext line\n",
        secrets: &["MIIFAKEfakeFAKEfakeLINE1", "MIIFAKEfakeFAKEfakeLINE2"],
        kept: &["-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "next line"],
    },
    Case {
        input: "{\n  \"client_secret\": \"FakeClientSecret\",\n  \"scopes\": [\"read\"]\n}\n",
        secrets: &["FakeClientSecret"],
        kept: &["\"client_secret\": \"", "\"scopes\": [\"read\"]"],
    },
    Case {
        input: "*2\r\n$4\r\nAUTH\r\n$11\r\nFakeRedisPw\r\n*2\r\n$3\r\nGET\r\n$7\r\nsession\r\n",
        secrets: &["FakeRedisPw"],
        kept: &["AUTH", "GET", "session"],
    },
    Case {
        input: "card 4111 1111 1111 1111 ssn 123-45-6789 jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.ZmFrZXNpZw done\n",
        secrets: &["4111 1111 1111 1111", "123-45-6789", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.ZmFrZXNpZw"],
        kept: &["card ", " ssn ", " jwt ", " done"],
    },
];

#[test]
fn every_two_way_split_masks_every_secret() {
    let p = policy();
    for case in CASES {
        let input = case.input.as_bytes();
        for k in 0..=input.len() {
            for close in [false, true] {
                let (out, _) = run(&p, &[&input[..k], &input[k..]], close);
                for secret in case.secrets {
                    assert!(
                        !contains(&out, secret),
                        "{secret} leaked, split at {k}: {}",
                        String::from_utf8_lossy(&out)
                    );
                }
            }
        }
    }
}

#[test]
fn one_byte_pieces_mask_every_secret_and_keep_the_rest() {
    let p = policy();
    for case in CASES {
        let input = case.input.as_bytes();
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        let (out, _) = run(&p, &pieces, true);
        for secret in case.secrets {
            assert!(
                !contains(&out, secret),
                "{secret} leaked: {}",
                String::from_utf8_lossy(&out)
            );
        }
        for kept in case.kept {
            assert!(
                contains(&out, kept),
                "{kept} lost: {}",
                String::from_utf8_lossy(&out)
            );
        }
        // Split or whole, a closed stream is decided the same way.
        let (whole, _) = run(&p, &[input], true);
        assert_eq!(out, whole, "{}", case.input);
    }
}

#[test]
fn pieces_are_held_until_a_line_ends() {
    let mut s = StreamRedactor::new(policy());
    let a = s.push(b"Authorization: Bearer abc", 10);
    assert_eq!(s.take(a), None);
    assert_eq!(s.oldest_held_ns(), Some(10));
    assert_eq!(s.held_bytes(), 25);
    let b = s.push(b"def\r\nHost: x\r\n", 20);
    assert_eq!(s.oldest_held_ns(), None);
    let ra = s.take(a).unwrap();
    let rb = s.take(b).unwrap();
    assert_eq!(ra.bytes, b"Authorization: **********");
    assert_eq!(rb.bytes, b"***\r\nHost: x\r\n");
    assert_eq!((ra.redactions[0].offset, ra.redactions[0].length), (15, 10));
    assert_eq!((rb.redactions[0].offset, rb.redactions[0].length), (0, 3));
    assert_eq!(s.take(a), None, "taken once");
}

#[test]
fn time_bound_fails_closed_and_masks_the_continuation() {
    let mut s = StreamRedactor::new(policy());
    let a = s.push(b"Authorization: Bearer abc", 0);
    s.expire(199 * MS);
    assert_eq!(s.take(a), None);
    s.expire(200 * MS);
    assert_eq!(s.take(a).unwrap().bytes, b"Authorization: **********");
    let b = s.push(b"def\r\nAccept: */*\r\n", 300 * MS);
    assert_eq!(s.take(b).unwrap().bytes, b"***\r\nAccept: */*\r\n");
}

#[test]
fn forced_cut_inside_a_json_value_masks_the_rest() {
    let mut s = StreamRedactor::new(policy());
    let a = s.push(br#"{"password": "hun"#, 0);
    s.expire(1_000 * MS);
    let ra = s.take(a).unwrap();
    assert_eq!(ra.bytes, br#"{"password": "***"#);
    let b = s.push(br#"ter2 two", "user": "ann"}"#, 1_001 * MS);
    s.close();
    assert_eq!(s.take(b).unwrap().bytes, br#"********", "user": "ann"}"#);
}

#[test]
fn forced_cut_inside_a_key_still_finds_the_value() {
    let mut s = StreamRedactor::new(policy());
    let a = s.push(br#"{"user": "ann", "passw"#, 0);
    s.expire(1_000 * MS);
    let b = s.push(br#"ord": "FakePw"}"#, 1_001 * MS);
    s.close();
    let out = [s.take(a).unwrap().bytes, s.take(b).unwrap().bytes].concat();
    assert!(
        !contains(&out, "FakePw"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(contains(&out, "\"user\": \"ann\""));
}

#[test]
fn forced_cut_in_a_token_run_or_digit_groups() {
    let mut s = StreamRedactor::new(policy());
    let a = s.push(b"key=ok tok ghp_FAKEfakeFAKE", 0);
    s.expire(1_000 * MS);
    assert_eq!(s.take(a).unwrap().bytes, b"key=ok tok ****************");
    let b = s.push(b"fakeFAKEfake0123456789 card 4111 1111 ", 1_001 * MS);
    s.expire(2_000 * MS);
    let rb = s.take(b).unwrap();
    assert_eq!(rb.bytes, b"********************** card **********");
    let c = s.push(b"1111 1111 end\n", 2_001 * MS);
    // The context kept from the cut lets the card detector see the whole number.
    assert_eq!(s.take(c).unwrap().bytes, b"********* end\n");
}

#[test]
fn size_bound_forces_a_decision() {
    let p = small_policy(256, 10_000);
    let mut s = StreamRedactor::new(p);
    let mut tickets = Vec::new();
    for _ in 0..30 {
        tickets.push(s.push(b"abcd efgh ", 0));
    }
    assert!(s.held_bytes() <= 256);
    assert!(s.take(tickets[0]).is_some());
    // Nothing secret in it, nothing masked except the fail-closed tail.
    let long = vec![b'x'; 1000];
    let t = s.push(&long, 0);
    assert_eq!(s.held_bytes(), 0);
    assert!(s.take(t).unwrap().bytes.iter().all(|&b| b == b'*'));
}

#[test]
fn gap_masks_what_follows_the_hole() {
    let mut s = StreamRedactor::new(policy());
    let a = s.push(b"token=ab", 0);
    s.gap(4096, 1);
    let b = s.push(b"cdef rest of line\n", 2);
    assert_eq!(s.take(a).unwrap().bytes, b"token=**");
    assert_eq!(s.take(b).unwrap().bytes, b"**** rest of line\n");
}

#[test]
fn empty_pieces_and_take_order() {
    let mut s = StreamRedactor::new(policy());
    let a = s.push(b"", 0);
    assert_eq!(s.take(a).unwrap().bytes, b"");
    let b = s.push(b"line one\n", 0);
    let c = s.push(b"", 0);
    let d = s.push(b"held", 0);
    let e = s.push(b"", 0);
    assert!(
        s.take(c).is_some(),
        "decided pieces can be taken out of order"
    );
    assert!(s.take(b).is_some());
    assert_eq!(s.take(e), None, "after a held piece");
    s.close();
    assert_eq!(s.take(d).unwrap().bytes, b"held");
    assert!(s.take(e).is_some());
}

#[test]
fn non_secret_parts_survive() {
    let p = policy();
    let pg = {
        let body = b"user\0app\0database\0shop\0\0";
        let mut s = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        s.extend_from_slice(&196_608u32.to_be_bytes());
        s.extend_from_slice(body);
        s.push(b'p');
        s.extend_from_slice(&14u32.to_be_bytes());
        s.extend_from_slice(b"FakePgPw!\0");
        let sql = b"SELECT id, name FROM orders WHERE total > 10;\0";
        s.push(b'Q');
        s.extend_from_slice(&((sql.len() + 4) as u32).to_be_bytes());
        s.extend_from_slice(sql);
        s
    };
    for split in [1, 2, 3, 5, 8, 13, 1000] {
        let pieces: Vec<&[u8]> = pg.chunks(split).collect();
        let (out, _) = run(&p, &pieces, false);
        assert!(!contains(&out, "FakePgPw"));
        assert!(
            contains(&out, "SELECT id, name FROM orders WHERE total > 10;"),
            "split {split}"
        );
        assert!(contains(&out, "database\0shop"));
    }
    let http = b"GET /search?q=rust&page=2 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/8.5.0\r\nCookie: sid=FakeSid\r\n\r\n";
    let (out, _) = run(&p, &http.chunks(3).collect::<Vec<_>>(), false);
    for kept in [
        "GET /search?q=rust&page=2 HTTP/1.1",
        "Host: example.test",
        "User-Agent: curl/8.5.0",
        "Cookie: ",
    ] {
        assert!(contains(&out, kept), "{kept}");
    }
    assert!(!contains(&out, "FakeSid"));
}

#[test]
fn request_body_is_decided_at_its_content_length() {
    let mut s = StreamRedactor::new(policy());
    let t = s.push(
        b"POST /login HTTP/1.1\r\nContent-Length: 28\r\n\r\nuser=ann&password=FakePw&x=1",
        0,
    );
    let r = s
        .take(t)
        .expect("the body is complete: no newline or timer needed");
    assert!(r.bytes.ends_with(b"user=ann&password=******&x=1"));
    assert_eq!(s.oldest_held_ns(), None);
}

/// A PostgreSQL message: type byte, length, body.
fn pg_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn a_postgres_reply_is_decided_at_its_last_message_however_long_the_next_one_takes() {
    // What a client receives: a refused SSLRequest, the startup's answer ending in
    // ReadyForQuery, then, a second later, an extended query's answer. Nothing in it ends
    // a line; before the backend framing the first reply was held for the hold-back time
    // and its status byte and the next reply's first byte were masked fail-closed.
    let mut s = StreamRedactor::new(policy());
    let mut startup = vec![b'N'];
    startup.extend(pg_message(b'R', &0u32.to_be_bytes()));
    startup.extend(pg_message(b'Z', b"I"));
    let a = s.push(&startup, 0);
    assert_eq!(s.take(a).unwrap().bytes, startup, "decided at once");
    assert_eq!(s.oldest_held_ns(), None);
    let mut reply = pg_message(b'1', b"");
    reply.extend(pg_message(b'C', b"BEGIN\0"));
    reply.extend(pg_message(b'Z', b"T"));
    s.expire(1_000 * MS);
    let b = s.push(&reply, 1_000 * MS);
    let taken = s.take(b).unwrap();
    assert_eq!(taken.bytes, reply);
    assert!(taken.redactions.is_empty(), "{:?}", taken.redactions);
}

/// `before` pushed, `hole` bytes lost, then `after` in pieces of every size from 1 to its
/// length: what came out after the hole, one output per piece size.
fn outputs_after_a_hole(before: &[&[u8]], hole: u64, after: &[u8]) -> Vec<Vec<u8>> {
    (1..=after.len())
        .map(|piece| {
            let mut s = StreamRedactor::new(policy());
            for p in before {
                s.push(p, 0);
            }
            s.gap(hole, 0);
            let tickets: Vec<Ticket> = after.chunks(piece).map(|p| s.push(p, 0)).collect();
            s.close();
            tickets
                .into_iter()
                .flat_map(|t| s.take(t).expect("decided once closed").bytes)
                .collect()
        })
        .collect()
}

/// Bytes lost before the startup is understood (inside its first eight bytes, or inside
/// the startup that follows a refused SSL request): the password may follow, so
/// everything after the hole is masked.
#[test]
fn a_hole_before_the_postgres_startup_masks_what_follows() {
    let body = b"user\0alice\0database\0app\0\0";
    let mut startup = ((8 + body.len()) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(&196_608u32.to_be_bytes());
    startup.extend_from_slice(body);
    let ssl_request = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let rest = [
        &startup[6..],
        &pg_message(b'p', b"hunter2pw\0")[..],
        &pg_message(b'Q', b"select 1\0")[..],
    ]
    .concat();
    for before in [vec![&ssl_request[..], &startup[..2]], vec![&startup[..4]]] {
        let hole = 6 - before.last().unwrap().len() as u64;
        for out in outputs_after_a_hole(&before, hole, &rest) {
            assert!(
                !contains(&out, "hunter2pw"),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}

/// Bytes lost inside the headers of a response whose body is encoded: where the body
/// starts is no longer known, so the rest of the stream is masked.
#[test]
fn a_hole_in_the_headers_of_an_encoded_body_masks_what_follows() {
    let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 30\r\nX-Pad: ";
    let rest = b"\r\n\r\n\x1f\x8b\x08\x00GZIPSECRETPAYLOADVISIBLE\x00\x01";
    for out in outputs_after_a_hole(&[head], 4, rest) {
        assert!(
            !contains(&out, "GZIPSECRET"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}

#[test]
fn finish_fails_closed_but_close_does_not() {
    let mut a = StreamRedactor::new(policy());
    let ta = a.push(b"hello world", 0);
    a.finish();
    assert_eq!(a.take(ta).unwrap().bytes, b"hello *****");
    let mut b = StreamRedactor::new(policy());
    let tb = b.push(b"hello world", 0);
    b.close();
    assert_eq!(b.take(tb).unwrap().bytes, b"hello world");
}

#[test]
fn disabled_policy_passes_everything_at_once() {
    let p = Arc::new(
        Policy::new(&Config {
            enabled: false,
            ..Config::default()
        })
        .unwrap(),
    );
    let mut s = StreamRedactor::new(p);
    let t = s.push(b"Authorization: Bearer abc", 0);
    let r = s.take(t).unwrap();
    assert_eq!(r.bytes, b"Authorization: Bearer abc");
    assert!(r.redactions.is_empty());
}
