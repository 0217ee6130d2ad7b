//! Planted-secret generators: secrets from every detector in HTTP (compressed bodies
//! too), JSON, form, env, conninfo, PostgreSQL and Redis framing. Shared by the
//! `planted` integration test (nothing leaks) and the crate's differential test (the
//! prefiltered scan masks exactly what the reference scan masks), which includes this
//! file with `#[path]`; the includer brings `Config` and `Policy` into scope.

#![allow(dead_code, reason = "each includer uses a different subset")]

use proptest::prelude::*;
use proptest::string::string_regex;

use super::{Config, Policy};

/// A piece of stream text and the secrets in it.
#[derive(Clone, Debug)]
pub struct Item {
    pub text: Vec<u8>,
    pub secrets: Vec<String>,
}

pub fn re(pattern: &str) -> BoxedStrategy<String> {
    string_regex(pattern).unwrap().boxed()
}

pub fn default_policy() -> &'static Policy {
    static P: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
    P.get_or_init(|| Policy::new(&Config::default()).unwrap())
}

pub fn luhn_complete(prefix: &str) -> String {
    let digits: Vec<u32> = prefix.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

pub fn base64(input: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

/// Secrets recognised by their shape.
pub fn value_secret() -> BoxedStrategy<String> {
    prop_oneof![
        (
            re("[A-Za-z0-9_-]{8,30}"),
            re("[A-Za-z0-9_-]{8,40}"),
            re("[A-Za-z0-9_-]{10,40}")
        )
            .prop_map(|(a, b, c)| format!("eyJ{a}.eyJ{b}.{c}")),
        re("AKIA[A-Z0-9]{16}"),
        re("ghp_[A-Za-z0-9]{36}"),
        re("github_pat_[A-Za-z0-9_]{40,60}"),
        re("xoxb-[0-9]{10}-[A-Za-z0-9]{16}"),
        re("sk_live_[A-Za-z0-9]{24}"),
        re("AIza[0-9A-Za-z_-]{35}"),
        re("glpat-[A-Za-z0-9]{20}"),
        (re("4[0-9]{14}"), 0..3usize).prop_map(|(p, style)| {
            let card = luhn_complete(&p);
            match style {
                0 => card,
                1 => card
                    .as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => card
                    .as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join("-"),
            }
        }),
        (100..=665u32, 10..=99u32, 1000..=9999u32).prop_map(|(a, g, s)| format!("{a}-{g}-{s}")),
        re("[A-Za-z0-9]{24,40}").prop_filter("the detector recognises it on its own", |t| {
            let out = default_policy()
                .redact_buffer(format!(" {t} ").as_bytes())
                .bytes;
            out[1..out.len() - 1].iter().all(|&b| b == b'*')
        }),
    ]
    .boxed()
}

/// A value secret in ordinary surroundings.
pub fn value_item() -> BoxedStrategy<Item> {
    (value_secret(), 0..5usize)
        .prop_map(|(s, ctx)| {
            let text = match ctx {
                0 => format!("note: value {s} here\n"),
                1 => format!("{{\"data\": \"{s}\", \"n\": 1}}\n"),
                2 => format!("X-Trace: {s}\r\n"),
                3 => format!("GET /cb?x={s}&y=2 HTTP/1.1\r\nHost: h\r\n\r\n"),
                // Bare, as in a file that holds only the token.
                _ => format!("{s} "),
            };
            Item {
                text: text.into_bytes(),
                secrets: vec![s],
            }
        })
        .boxed()
}

/// A password-like value: any printable without quotes, whitespace, `&` or `;`.
pub fn password() -> BoxedStrategy<String> {
    re("[A-Za-z0-9!#%^*()_+.@~-]{10,20}")
}

pub fn key_item() -> BoxedStrategy<Item> {
    (
        password(),
        re("[a-z]{4,8} [A-Za-z0-9]{6,10} [a-z]{3,6}"),
        0..12usize,
    )
        .prop_map(|(pw, phrase, ctx)| {
            let (text, secret) = match ctx {
                0 => (
                    format!("{{\"user\": \"ann\", \"password\": \"{pw}\"}}\n"),
                    pw,
                ),
                1 => (format!("user=ann&password={pw}&x=1\n"), pw),
                2 => (format!("export DB_PASSWORD={pw}\nexport EDITOR=vim\n"), pw),
                3 => (format!("host=db user=app password={pw} dbname=app\n"), pw),
                4 => (format!("Server=db;Password={pw};Encrypt=true\n"), pw),
                5 => (format!("password: {phrase}\n"), phrase),
                6 => (
                    format!(
                        "Authorization: Basic {}\r\n",
                        base64(format!("ann:{pw}").as_bytes())
                    ),
                    base64(format!("ann:{pw}").as_bytes()),
                ),
                7 => (format!("Cookie: sid={pw}; theme=dark\r\n"), pw),
                8 => (
                    format!("GET /login?access_token={pw}&page=2 HTTP/1.1\r\n"),
                    pw,
                ),
                9 => (format!("mysql --password {pw} -h db\n"), pw),
                10 => (
                    format!("{{\n  \"client_secret\":\n    \"{phrase}\"\n}}\n"),
                    phrase,
                ),
                _ => (
                    format!(
                        "postgres://app:{}@db.internal:5432/app\n",
                        pw.replace(['@', '#', '%'], "x")
                    ),
                    pw.replace(['@', '#', '%'], "x"),
                ),
            };
            Item {
                text: text.into_bytes(),
                secrets: vec![secret],
            }
        })
        .boxed()
}

pub fn pem_item() -> BoxedStrategy<Item> {
    proptest::collection::vec(re("[A-Za-z0-9+/]{64}"), 1..4)
        .prop_map(|lines| Item {
            text: format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                lines.join("\n")
            )
            .into_bytes(),
            secrets: lines,
        })
        .boxed()
}

pub fn http_item() -> BoxedStrategy<Item> {
    (password(), value_secret(), any::<bool>())
        .prop_map(|(pw, token, json)| {
            let body = if json {
                format!("{{\"user\":\"ann\",\"password\":\"{pw}\",\"note\":\"ok\"}}")
            } else {
                format!("user=ann&password={pw}")
            };
            let text = format!(
                "POST /v1/session HTTP/1.1\r\nHost: api.example.test\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            Item {
                text: text.into_bytes(),
                secrets: vec![pw, token],
            }
        })
        .boxed()
}

pub const FILLER: &[&str] = &[
    "2024-05-01T12:00:00Z INFO request handled status=200 duration_ms=12\n",
    "{\"id\": \"550e8400-e29b-41d4-a716-446655440000\", \"items\": [1, 2, 3]}\n",
    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>hello</body></html>",
    "fn main() { println!(\"hi\"); }\n",
    "commit e83c5163316f89bfbde7d9ab23ca2e25604af290\n",
    "",
];

pub fn text_stream() -> BoxedStrategy<Vec<Item>> {
    let item = prop_oneof![
        3 => value_item(),
        3 => key_item(),
        1 => pem_item(),
        2 => http_item(),
        1 => (0..FILLER.len()).prop_map(|i| Item { text: FILLER[i].as_bytes().to_vec(), secrets: vec![] }),
    ];
    proptest::collection::vec(item, 1..6).boxed()
}

pub fn pg_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

pub fn pg_stream() -> BoxedStrategy<Vec<Item>> {
    (password(), value_secret(), any::<bool>())
        .prop_map(|(pw, token, ssl)| {
            let mut head = Vec::new();
            if ssl {
                head.extend_from_slice(&8u32.to_be_bytes());
                head.extend_from_slice(&80_877_103u32.to_be_bytes());
            }
            let body = b"user\0app\0database\0shop\0\0";
            head.extend_from_slice(&((8 + body.len()) as u32).to_be_bytes());
            head.extend_from_slice(&196_608u32.to_be_bytes());
            head.extend_from_slice(body);
            let mut sasl = b"SCRAM-SHA-256\0".to_vec();
            let first = format!("n,,n=,r={pw}");
            sasl.extend_from_slice(&(first.len() as u32).to_be_bytes());
            sasl.extend_from_slice(first.as_bytes());
            let q = format!("SELECT * FROM t WHERE k = '{token}';\0");
            vec![
                Item {
                    text: head,
                    secrets: vec![],
                },
                Item {
                    text: pg_message(b'p', &sasl),
                    secrets: vec![pw.clone()],
                },
                Item {
                    text: pg_message(b'p', format!("{pw}x\0").as_bytes()),
                    secrets: vec![format!("{pw}x")],
                },
                Item {
                    text: pg_message(b'Q', q.as_bytes()),
                    secrets: vec![token],
                },
            ]
        })
        .boxed()
}

pub fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
    }
    out
}

pub fn redis_stream() -> BoxedStrategy<Vec<Item>> {
    (password(), password(), value_secret(), 0..3usize)
        .prop_map(|(pw, pw2, token, form)| {
            let auth = match form {
                0 => resp(&["AUTH", &pw]),
                1 => resp(&["auth", "default", &pw]),
                _ => resp(&["HELLO", "3", "AUTH", "default", &pw]),
            };
            vec![
                Item {
                    text: auth,
                    secrets: vec![pw],
                },
                Item {
                    text: resp(&["SET", "session:1", &token]),
                    secrets: vec![token],
                },
                Item {
                    text: resp(&["CONFIG", "SET", "requirepass", &pw2]),
                    secrets: vec![pw2],
                },
                Item {
                    text: resp(&["GET", "session:1"]),
                    secrets: vec![],
                },
            ]
        })
        .boxed()
}

/// HTTP responses: compressed bodies (their bytes stand for anything secret inside) with a
/// length or chunked, and an identity JSON body with a token.
pub fn response_stream() -> BoxedStrategy<Vec<Item>> {
    (re("[A-Za-z0-9]{16,40}"), re("[A-Za-z0-9]{16,40}"), value_secret())
        .prop_map(|(gz, br, token)| {
            let fixed = format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n{gz}", gz.len());
            let chunked = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: br\r\n\r\n{:x}\r\n{br}\r\n0\r\n\r\n",
                br.len()
            );
            let json = format!("{{\"access\":\"{token}\"}}");
            let plain = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            );
            vec![
                Item { text: fixed.into_bytes(), secrets: vec![gz] },
                Item { text: chunked.into_bytes(), secrets: vec![br] },
                Item { text: plain.into_bytes(), secrets: vec![token] },
            ]
        })
        .boxed()
}
