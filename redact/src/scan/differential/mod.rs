//! Differential tests: the prefiltered scan must mask exactly what the reference scan
//! (every detector over every byte, as the engine did before the fast path) masks —
//! the same bytes and the same (rule, offset, length) annotations for every piece — on
//! the planted-secret generators, on the false-positive corpus and on a soup of
//! separators, digits, key fragments, token runs and header names built to sit on the
//! fast path's edges (prefilter, block masks, length limits), with the built-in policy
//! and with one to which an operator added keys (whose one-letter stems change what the
//! fast path walks), a header and a rule (these two run the same code on both paths; they
//! are there for how their spans meet the other detectors'). Streams are cut at every
//! piece size the other tests and the benchmark use, and at random syscall-sized ones
//! with timer expiries under tight hold-back bounds.

use std::sync::Arc;

use proptest::prelude::*;

use crate::{Config, HoldBackConfig, Policy, Redacted, RuleConfig, StreamRedactor};

#[path = "../../../tests/support/generators.rs"]
mod generators;

use generators::Item;

mod inputs;

use inputs::{
    digit_groups, key_values, soup, token_runs_and_headers, vendor_tokens, CONFIGURED_HEADER,
    CONFIGURED_KEYS, CONFIGURED_RULE,
};

const MS: u64 = 1_000_000;

/// Piece sizes of `tests/stream.rs`, `tests/false_positives.rs` and the benchmark.
const PIECE_SIZES: &[usize] = &[1, 2, 3, 5, 8, 13, 64, 512, 1000, 4096];

/// (fast, reference) pairs: default bounds, tiny byte bounds, no time at all, PII on,
/// and an operator's additions (`extra_keys`, `extra_headers`, a rule of their own).
fn policy_pairs() -> &'static [(Arc<Policy>, Arc<Policy>)] {
    static PAIRS: std::sync::OnceLock<Vec<(Arc<Policy>, Arc<Policy>)>> = std::sync::OnceLock::new();
    PAIRS.get_or_init(|| {
        let configs = [
            Config::default(),
            Config {
                hold_back: HoldBackConfig {
                    bytes: 256,
                    millis: 200,
                    ..HoldBackConfig::default()
                },
                ..Config::default()
            },
            Config {
                hold_back: HoldBackConfig {
                    bytes: 1024,
                    millis: 0,
                    ..HoldBackConfig::default()
                },
                ..Config::default()
            },
            Config {
                pii: true,
                ..Config::default()
            },
            Config {
                extra_keys: CONFIGURED_KEYS.iter().map(|k| k.to_string()).collect(),
                extra_headers: vec![CONFIGURED_HEADER.to_string()],
                rules: vec![RuleConfig {
                    name: "ticket-id".to_string(),
                    pattern: CONFIGURED_RULE.to_string(),
                }],
                ..Config::default()
            },
        ];
        configs
            .iter()
            .map(|c| {
                let fast = Policy::new(c).unwrap();
                assert!(!fast.reference_scan());
                let reference = Policy::new(c).unwrap().into_reference();
                (Arc::new(fast), Arc::new(reference))
            })
            .collect()
    })
}

/// Per push: its size, ms to advance before it, and when to call `expire` after it.
#[derive(Clone, Debug)]
struct Step {
    size: usize,
    advance_ms: u64,
    expire_ms: Option<u64>,
}

fn run(policy: &Arc<Policy>, input: &[u8], steps: &[Step], close: bool) -> Vec<Redacted> {
    let mut s = StreamRedactor::new(policy.clone());
    let (mut now, mut at, mut i) = (0, 0, 0);
    let mut tickets = Vec::new();
    while at < input.len() {
        let step = &steps[i % steps.len()];
        let size = step.size.max(1).min(input.len() - at);
        now += step.advance_ms * MS;
        tickets.push(s.push(&input[at..at + size], now));
        if let Some(later) = step.expire_ms {
            s.expire(now + later * MS);
        }
        at += size;
        i += 1;
    }
    if close {
        s.close();
    } else {
        s.finish();
    }
    tickets
        .into_iter()
        .map(|t| s.take(t).expect("decided at the end"))
        .collect()
}

fn same(input: &[u8], steps: &[Step], close: bool) -> Result<(), TestCaseError> {
    for (pair, (fast, reference)) in policy_pairs().iter().enumerate() {
        let got = run(fast, input, steps, close);
        let want = run(reference, input, steps, close);
        prop_assert_eq!(got.len(), want.len());
        for (piece, (g, w)) in got.iter().zip(&want).enumerate() {
            prop_assert!(
                g == w,
                "piece {} differs (policy pair {}, hold-back {:?}): fast {:?}, reference {:?}",
                piece,
                pair,
                fast.hold_back(),
                g.redactions,
                w.redactions
            );
        }
        prop_assert_eq!(fast.redact_buffer(input), reference.redact_buffer(input));
    }
    Ok(())
}

fn fixed(size: usize) -> Vec<Step> {
    vec![Step {
        size,
        advance_ms: 0,
        expire_ms: None,
    }]
}

/// `same` at every fixed piece size, closed and finished.
fn same_at_every_size(input: &[u8]) -> Result<(), TestCaseError> {
    for &size in PIECE_SIZES {
        for close in [true, false] {
            same(input, &fixed(size), close)?;
        }
    }
    Ok(())
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (
            prop_oneof![3 => Just(1usize), 4 => 1..16usize, 2 => 16..200usize],
            prop_oneof![Just(0u64), Just(1), 0..300u64],
            proptest::option::of(0..400u64),
        )
            .prop_map(|(size, advance_ms, expire_ms)| Step {
                size,
                advance_ms,
                expire_ms,
            }),
        1..64,
    )
}

fn joined(items: &[Item], lines: bool) -> Vec<u8> {
    let mut input = Vec::new();
    for item in items {
        if lines && input.last().is_some_and(|&b| b != b'\n') && !item.text.is_empty() {
            input.push(b'\n');
        }
        input.extend_from_slice(&item.text);
    }
    input
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "corpus missing");
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(p).unwrap())
        })
        .collect()
}

#[test]
fn corpus_files_mask_the_same_at_every_piece_size() {
    for (name, input) in corpus() {
        same_at_every_size(&input).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn whole_corpus_with_planted_secrets_masks_the_same() {
    // As the benchmark streams it: every file, then a request with two secrets.
    let mut input: Vec<u8> = corpus().into_iter().flat_map(|(_, b)| b).collect();
    input.extend_from_slice(
        b"POST /login HTTP/1.1\r\nAuthorization: Bearer FAKEtok3n.abc\r\nContent-Length: 33\r\n\r\n{\"user\":\"a\",\"password\":\"FakePw\"}",
    );
    for size in [64, 512, 4096] {
        same(&input, &fixed(size), false).unwrap();
    }
}

/// Each input cut in two at every point, closed or not: the fast path masks what the
/// reference does.
fn same_at_every_cut(inputs: &[&[u8]]) {
    for input in inputs {
        for cut in 1..input.len() {
            let steps = [fixed(cut), fixed(input.len() - cut)].concat();
            for close in [true, false] {
                same(input, &steps, close).unwrap_or_else(|e| {
                    panic!("{:?} cut at {cut}: {e}", String::from_utf8_lossy(input))
                });
            }
        }
    }
}

/// The high-entropy detector skips runs, and the anchored patterns hits, that a span found
/// before them holds (`covering::Covering`): the same masks and names wherever a piece
/// begins, including at the run's own start, where the covering span's lower rule must
/// still name the region, and where the span holds a hit but not all its match could
/// reach (`password=Bearer <token>`: the value ends at the blank, the bearer match after it).
#[test]
fn runs_inside_earlier_spans_mask_the_same_at_every_split() {
    let inputs: [&[u8]; 15] = [
        b"password=Bearer abcd1234efgh&next=1\n",
        b"run --token bearer abcd1234efgh --id 7\n",
        b"{\"authorization\": \"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\", \"jwt\": \"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\"}\n",
        b"Authorization: Basic dXNlcjpwYXNzd29yZA==\r\nX-Token: ghp_Zx9QwErTyU1iOpAsDfGh2JkLmNQm2LkP4vR7\r\n\r\nBearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\n",
        b"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\r\n",
        b"password=Zx9QwErTyU1iOpAsDfGh2JkL&next=Qm2LkP4vR7tW1yB3nC8dFkJ8\n",
        b"{\"token\": \"Zx9QwErTyU1iOpAsDfGh2JkLmN\", \"id\": \"Qm2LkP4vR7tW1yB3nC8dFkJ8sD\"}\n",
        b"secret: a Zx9QwErTyU1iOpAsDfGh2JkL b\nnote: Qm2LkP4vR7tW1yB3nC8dFkJ8sD\n",
        b"Cookie: session=Zx9QwErTyU1iOpAsDfGh2JkLmN; o=Qm2LkP4vR7tW1yB3nC8dFkJ8sD\r\n\r\n",
        b"{\"password\":\n  Zx9QwErTyU1iOpAsDfGh2JkLmN==}\n",
        b"<password>Zx9QwErTyU1iOpAsDfGh2J==</password><x>Qm2LkP4vR7tW1yB3nC8dFkJ8sD</x>\n",
        b"run --password Zx9QwErTyU1iOpAsDfGh2JkLmN --id Qm2LkP4vR7tW1yB3nC8dFkJ8sD\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 40\r\n\r\npassword=Zx9QwErTyU1iOpAsDfGh2JkLmN12345GET / HTTP/1.1\r\n\r\n",
        b"-----BEGIN RSA PRIVATE KEY-----\nZx9QwErTyU1iOpAsDfGh2JkLmNQm2LkP4vR7tW1yB3nC8dFkJ8sD\n-----END RSA PRIVATE KEY-----\nafter Zx9QwErTyU1iOpAsDfGh2JkLmN\n",
        b"{\"secret\": [\"Zx9QwErTyU1iOpAsDfGh2JkLmN\",\n \"Qm2LkP4vR7tW1yB3nC8dFkJ8sD\"]}\n",
    ];
    same_at_every_cut(&inputs);
}

/// Hits after a failed JWT search are passed over only inside the run it failed in: a
/// JWT that starts after the run ends, even one byte after, is still found.
#[test]
fn failed_jwt_searches_mask_the_same_at_every_split() {
    let inputs: [&[u8]; 6] = [
        b"eyJ-eyJ-eyJ-eyJhbGciOiJIUzI1NiJ9 eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2ln\n",
        // Hits are found case-blind: `eyj` and `EYJ` are hits but not the JWT's literal.
        b"eyjabcd-eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\n",
        b"xEYJ_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\n",
        b"eyJabcd-eyJ.eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl&x=eyJ_eyJ\n",
        b"a=eyJ_eyJ_eyJ,eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\n",
        b"eyJeyJeyJ.eyJ eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9. eyJeyJ\n",
    ];
    same_at_every_cut(&inputs);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn planted_text_masks_the_same(items in generators::text_stream()) {
        same_at_every_size(&joined(&items, true))?;
    }

    #[test]
    fn planted_binary_framing_masks_the_same(
        items in prop_oneof![
            generators::pg_stream(),
            generators::redis_stream(),
            generators::response_stream(),
        ]
    ) {
        same_at_every_size(&joined(&items, false))?;
    }

    #[test]
    fn planted_text_masks_the_same_with_timers(
        items in generators::text_stream(),
        steps in steps(),
        close in any::<bool>(),
    ) {
        same(&joined(&items, true), &steps, close)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn key_values_mask_the_same(input in key_values(), steps in steps(), close in any::<bool>()) {
        same(&input, &fixed(input.len().max(1)), true)?;
        same(&input, &steps, close)?;
    }

    #[test]
    fn digit_groups_mask_the_same(input in digit_groups(), steps in steps(), close in any::<bool>()) {
        same(&input, &fixed(input.len().max(1)), true)?;
        same(&input, &steps, close)?;
    }

    #[test]
    fn token_runs_and_headers_mask_the_same(
        input in token_runs_and_headers(),
        steps in steps(),
        close in any::<bool>(),
    ) {
        same(&input, &fixed(input.len().max(1)), true)?;
        same(&input, &steps, close)?;
    }

    #[test]
    fn vendor_tokens_mask_the_same(
        input in vendor_tokens(),
        steps in steps(),
        close in any::<bool>(),
    ) {
        same(&input, &fixed(input.len().max(1)), true)?;
        same(&input, &steps, close)?;
    }

    #[test]
    fn soup_masks_the_same(input in soup(), steps in steps(), close in any::<bool>()) {
        same(&input, &fixed(input.len().max(1)), true)?;
        same(&input, &steps, close)?;
    }
}
