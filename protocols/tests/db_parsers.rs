//! Properties of the PostgreSQL, Redis and DNS parsers: no input makes them panic, and how the
//! recorded payloads cut a conversation does not change what they find.

use proptest::prelude::*;
use recorder_protocols::dns::{self, Datagram};
use recorder_protocols::{postgres, redis, Detail, GapReason, Stream};

/// How one payload of a stream is cut: its length, and a gap after it (missing bytes, reason).
type Cut = (usize, Option<(u64, u8)>);

fn cuts() -> impl Strategy<Value = Vec<Cut>> {
    proptest::collection::vec(
        (
            1usize..64,
            proptest::option::weighted(0.2, (0u64..64, 0u8..3)),
        ),
        0..48,
    )
}

/// `bytes` as a stream cut by `cuts` (times rising), the rest in one last payload.
fn cut_stream(bytes: &[u8], cuts: &[Cut], first_ns: u64) -> Stream {
    let mut stream = Stream::default();
    let mut at = 0;
    let mut now = first_ns;
    for &(len, gap) in cuts {
        let end = (at + len).min(bytes.len());
        stream.push(now, &bytes[at..end]);
        at = end;
        now += 10;
        if let Some((missing, reason)) = gap {
            let reason = match reason {
                0 => GapReason::Lost,
                1 => GapReason::Capped,
                _ => GapReason::Withheld,
            };
            stream.push_gap(now, missing, reason);
        }
    }
    stream.push(now, &bytes[at..]);
    stream
}

/// `bytes` cut at `points` into payloads that all carry the same time.
fn split_stream(bytes: &[u8], points: &[usize], at_ns: u64) -> Stream {
    let mut points: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut stream = Stream::default();
    let mut from = 0;
    for point in points {
        stream.push(at_ns, &bytes[from..point]);
        from = point;
    }
    stream.push(at_ns, &bytes[from..]);
    stream
}

/// Arbitrary bytes, often opened with a real first message so the parsers get past it.
fn noise(openers: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    (
        0..openers.len() + 1,
        proptest::collection::vec(any::<u8>(), 0..1024),
    )
        .prop_map(move |(opener, tail)| {
            let mut bytes = openers.get(opener).map(|o| o.to_vec()).unwrap_or_default();
            bytes.extend(tail);
            bytes
        })
}

const PG_OPENERS: &[&[u8]] = &[
    b"\x00\x00\x00\x17\x00\x03\x00\x00user\x00app\x00\x00\x00\x00\x00",
    b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
    b"Q\x00\x00\x00\x0dSELECT 1\x00",
    b"R\x00\x00\x00\x08\x00\x00\x00\x00Z\x00\x00\x00\x05I",
];
const REDIS_OPENERS: &[&[u8]] = &[
    b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    b"%1\r\n+a\r\n*2\r\n",
    b"PING\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn postgres_never_panics(
        client in noise(PG_OPENERS), server in noise(PG_OPENERS), c in cuts(), s in cuts(),
    ) {
        let client = cut_stream(&client, &c, 1);
        let server = cut_stream(&server, &s, 5);
        let _ = postgres::parse(&client, &server);
        let _ = postgres::parse(&server, &client);
    }

    #[test]
    fn redis_never_panics(
        client in noise(REDIS_OPENERS), server in noise(REDIS_OPENERS), c in cuts(), s in cuts(),
    ) {
        let client = cut_stream(&client, &c, 1);
        let server = cut_stream(&server, &s, 5);
        let _ = redis::parse(&client, &server);
        let _ = redis::parse(&server, &client);
    }

    #[test]
    fn dns_never_panics(
        datagrams in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..128), any::<u16>()), 0..16),
    ) {
        // A plausible header in front of most of them, so parsing goes past it.
        let packets: Vec<(bool, Vec<u8>)> = datagrams
            .into_iter()
            .map(|(outgoing, body, id)| {
                let mut bytes = id.to_be_bytes().to_vec();
                bytes.extend([if outgoing { 0x01 } else { 0x81 }, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
                bytes.extend(body);
                (outgoing, bytes)
            })
            .collect();
        let datagrams: Vec<Datagram> = packets
            .iter()
            .enumerate()
            .map(|(i, (outgoing, bytes))| Datagram { at_ns: i as u64, outgoing: *outgoing, bytes })
            .collect();
        let _ = dns::parse(&datagrams);
        for datagram in &datagrams {
            let _ = dns::looks_like_dns(datagram.bytes);
            let _ = dns::looks_like_dns(&datagram.bytes[12..]);
        }
    }
}

#[derive(Clone, Debug)]
enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Reply>),
    Map(Vec<(String, Reply)>),
}

fn reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        "[A-Za-z ]{0,12}".prop_map(Reply::Simple),
        "ERR [a-z ]{0,20}".prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Reply::Bulk),
        Just(Reply::Null),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Reply::Array),
            proptest::collection::vec(("[a-z]{1,6}", inner), 0..3).prop_map(Reply::Map),
        ]
    })
}

fn encode(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Simple(text) => out.extend(format!("+{text}\r\n").bytes()),
        Reply::Error(text) => out.extend(format!("-{text}\r\n").bytes()),
        Reply::Integer(n) => out.extend(format!(":{n}\r\n").bytes()),
        Reply::Bulk(data) => {
            out.extend(format!("${}\r\n", data.len()).bytes());
            out.extend(data);
            out.extend(b"\r\n");
        }
        Reply::Null => out.extend(b"$-1\r\n"),
        Reply::Array(items) => {
            out.extend(format!("*{}\r\n", items.len()).bytes());
            items.iter().for_each(|item| encode(item, out));
        }
        Reply::Map(pairs) => {
            out.extend(format!("%{}\r\n", pairs.len()).bytes());
            for (key, value) in pairs {
                encode(&Reply::Simple(key.clone()), out);
                encode(value, out);
            }
        }
    }
}

fn command_words() -> impl Strategy<Value = Vec<Vec<u8>>> {
    (
        "[a-z]{1,8}",
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..30), 0..4),
    )
        .prop_map(|(name, args)| {
            let mut words = vec![name.into_bytes()];
            words.extend(args);
            words
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn redis_pairs_the_same_however_payloads_cut(
        exchanges in proptest::collection::vec((command_words(), reply()), 1..8),
        client_points in proptest::collection::vec(any::<usize>(), 0..12),
        server_points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let (mut requests, mut replies) = (Vec::new(), Vec::new());
        for (words, reply) in &exchanges {
            requests.extend(format!("*{}\r\n", words.len()).bytes());
            for word in words {
                requests.extend(format!("${}\r\n", word.len()).bytes());
                requests.extend(word);
                requests.extend(b"\r\n");
            }
            encode(reply, &mut replies);
        }
        let whole = redis::parse(&split_stream(&requests, &[], 1), &split_stream(&replies, &[], 2));
        let cut = redis::parse(
            &split_stream(&requests, &client_points, 1),
            &split_stream(&replies, &server_points, 2),
        );
        prop_assert_eq!(&whole, &cut);
        prop_assert_eq!(whole.len(), exchanges.len());
        for (ex, (words, reply)) in whole.iter().zip(&exchanges) {
            prop_assert!(!ex.incomplete);
            let Detail::Redis(detail) = &ex.detail else { panic!("not redis") };
            prop_assert_eq!(detail.command.len(), words.len());
            prop_assert_eq!(detail.error.is_some(), matches!(reply, Reply::Error(_)));
        }
    }

    #[test]
    fn postgres_queries_parse_the_same_however_payloads_cut(
        queries in proptest::collection::vec(("[A-Za-z0-9 ,*()=']{1,60}", 0u64..5, any::<bool>()), 1..8),
        client_points in proptest::collection::vec(any::<usize>(), 0..12),
        server_points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let message = |tag: u8, body: &[u8]| {
            let mut out = vec![tag];
            out.extend((body.len() as u32 + 4).to_be_bytes());
            out.extend(body);
            out
        };
        let (mut requests, mut answers) = (Vec::new(), Vec::new());
        for (sql, rows, fail) in &queries {
            requests.extend(message(b'Q', format!("{sql}\0").as_bytes()));
            for row in 0..*rows {
                let value = row.to_string();
                let mut body = 1u16.to_be_bytes().to_vec();
                body.extend((value.len() as u32).to_be_bytes());
                body.extend(value.as_bytes());
                answers.extend(message(b'D', &body));
            }
            if *fail {
                answers.extend(message(b'E', b"SERROR\0C22012\0Mdivision by zero\0\0"));
            } else {
                answers.extend(message(b'C', format!("SELECT {rows}\0").as_bytes()));
            }
            answers.extend(message(b'Z', b"I"));
        }
        let whole = postgres::parse(&split_stream(&requests, &[], 1), &split_stream(&answers, &[], 2));
        let cut = postgres::parse(
            &split_stream(&requests, &client_points, 1),
            &split_stream(&answers, &server_points, 2),
        );
        prop_assert_eq!(&whole, &cut);
        prop_assert_eq!(whole.len(), queries.len());
        for (ex, (sql, rows, fail)) in whole.iter().zip(&queries) {
            prop_assert!(!ex.incomplete);
            let Detail::Postgres(pg) = &ex.detail else { panic!("not postgres") };
            prop_assert_eq!(&pg.sql, sql);
            prop_assert_eq!(pg.rows, *rows);
            prop_assert_eq!(pg.error.is_some(), *fail);
        }
    }
}
