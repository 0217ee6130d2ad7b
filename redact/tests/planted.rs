//! Property test: secrets from every detector, planted in HTTP (compressed bodies too),
//! JSON, form, env, conninfo, PostgreSQL and Redis framing, pushed through `StreamRedactor` in random
//! syscall-sized pieces (1-byte pieces included) with random `expire` calls, under the
//! default bounds and under tiny ones that force decisions all the time. The output must
//! have the input's length and contain no 8-byte window of any planted secret.

use std::sync::Arc;

use proptest::prelude::*;
use recorder_redact::{Config, HoldBackConfig, Policy, StreamRedactor};

const MS: u64 = 1_000_000;

#[path = "support/generators.rs"]
mod generators;

use generators::*;

/// How the stream is cut into pushes and when time passes.
#[derive(Clone, Debug)]
struct Schedule {
    sizes: Vec<usize>,
    /// Per push: ms to advance before it, and whether to call `expire` after it.
    steps: Vec<(u64, Option<u64>)>,
    close: bool,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        proptest::collection::vec(
            prop_oneof![3 => Just(1usize), 4 => 1..16usize, 2 => 16..200usize],
            1..400,
        ),
        proptest::collection::vec(
            (
                prop_oneof![Just(0u64), Just(1), 0..300u64],
                proptest::option::of(0..400u64),
            ),
            1..400,
        ),
        any::<bool>(),
    )
        .prop_map(|(sizes, steps, close)| Schedule {
            sizes,
            steps,
            close,
        })
}

fn policies() -> Vec<Arc<Policy>> {
    let with = |bytes, millis| {
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
    };
    vec![with(64 * 1024, 200), with(256, 200), with(1024, 0)]
}

fn run(policy: &Arc<Policy>, input: &[u8], schedule: &Schedule) -> Vec<u8> {
    let mut s = StreamRedactor::new(policy.clone());
    let mut now = 0;
    let mut tickets = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < input.len() {
        let size = schedule.sizes[i % schedule.sizes.len()].min(input.len() - at);
        let (advance, expire) = schedule.steps[i % schedule.steps.len()];
        now += advance * MS;
        tickets.push(s.push(&input[at..at + size], now));
        if let Some(later) = expire {
            s.expire(now + later * MS);
        }
        at += size;
        i += 1;
    }
    if schedule.close {
        s.close();
    } else {
        s.finish();
    }
    let mut out = Vec::with_capacity(input.len());
    for t in tickets {
        out.extend(s.take(t).expect("every piece is decided at the end").bytes);
    }
    out
}

/// `lines`: the items are text, joined by line breaks (binary framing is joined as is).
fn check(items: &[Item], schedule: &Schedule, lines: bool) -> Result<(), TestCaseError> {
    // Items are separate messages or lines; gluing one's last token to the next one's
    // first would make a different (and ambiguous) text than the one planted.
    let mut input: Vec<u8> = Vec::new();
    for item in items {
        if lines && input.last().is_some_and(|&b| b != b'\n') && !item.text.is_empty() {
            input.push(b'\n');
        }
        input.extend_from_slice(&item.text);
    }
    for policy in policies() {
        let out = run(&policy, &input, schedule);
        prop_assert_eq!(out.len(), input.len());
        for secret in items.iter().flat_map(|i| &i.secrets) {
            let w = secret.len().min(8);
            for window in secret.as_bytes().windows(w) {
                prop_assert!(
                    !out.windows(w).any(|o| o == window),
                    "{:?} of secret {:?} survived (hold-back {:?}):\n{}",
                    String::from_utf8_lossy(window),
                    secret,
                    policy.hold_back(),
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn text_streams_never_leak(items in text_stream(), schedule in schedule()) {
        check(&items, &schedule, true)?;
    }

    #[test]
    fn http_responses_never_leak(items in response_stream(), schedule in schedule()) {
        check(&items, &schedule, false)?;
    }

    #[test]
    fn postgres_streams_never_leak(items in pg_stream(), schedule in schedule()) {
        check(&items, &schedule, false)?;
    }

    #[test]
    fn redis_streams_never_leak(items in redis_stream(), schedule in schedule()) {
        check(&items, &schedule, false)?;
    }
}
