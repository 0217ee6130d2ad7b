//! Finds the token runs (`[A-Za-z0-9+/_-]`, plus up to two `=` of padding) that the
//! high-entropy detector can accept, without a branch per byte of ordinary traffic.
//!
//! A run needs 20 bytes with its padding, so 18 without. The buffer's long token runs
//! (`long_token_runs`: 15 bytes or more) are found once from the token bit masks
//! (`blocks`), 64 bytes at a time, and shared with the trigger search, which looks for
//! vendor prefixes inside them; only those of 18 bytes or more with a letter past `f` are
//! read byte by byte here. The detector's checks stay in `shape::high_entropy`; the
//! reference walk is `shape::token_runs`.

use crate::scan::blocks::{window_starts, Masks};

/// Byte classes gathered over a run.
const TOKEN: u8 = 1;
const UPPER: u8 = 2;
const LOWER: u8 = 4;
const DIGIT: u8 = 8;
const NON_HEX: u8 = 16;
/// What `high_entropy` requires first: upper case, lower case, a digit and a non-hex
/// letter, so hex digests, UUIDs and words never reach it.
const MIXED: u8 = UPPER | LOWER | DIGIT | NON_HEX;

/// Shortest run body that padding can bring to the detector's 20 bytes.
const MIN_BODY: usize = 18;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'_' | b'-') {
            k |= TOKEN;
        }
        if c.is_ascii_uppercase() {
            k |= UPPER;
        }
        if c.is_ascii_lowercase() {
            k |= LOWER;
        }
        if c.is_ascii_digit() {
            k |= DIGIT;
        }
        if c.is_ascii_alphabetic() && !c.is_ascii_hexdigit() {
            k |= NON_HEX;
        }
        t[b] = k;
        b += 1;
    }
    t
}

static CLASS: [u8; 256] = class_table();

/// Calls `emit(start, end)` for exactly the runs `shape::token_runs` yields whose body
/// holds every class in `MIXED`, in order, given the buffer's long token runs
/// (`long_token_runs`): the high-entropy detector's candidates are among them.
pub(super) fn high_entropy_runs(
    buf: &[u8],
    long_runs: &[(usize, usize, bool)],
    mut emit: impl FnMut(usize, usize),
) {
    for &(start, end, non_hex) in long_runs {
        // Hex digests and UUIDs (most long runs in ordinary traffic) have no letter past
        // `f`, and are never walked byte by byte.
        if non_hex && end - start >= MIN_BODY {
            check(buf, start, end, &mut emit);
        }
    }
}

/// Emits the run `start..end` (with its `=` padding) if it holds every class in `MIXED`.
fn check(buf: &[u8], start: usize, end: usize, emit: &mut impl FnMut(usize, usize)) {
    let seen = buf[start..end]
        .iter()
        .fold(0, |seen, &b| seen | CLASS[usize::from(b)]);
    let mut padded = end;
    while padded < buf.len() && padded - end < 2 && buf[padded] == b'=' {
        padded += 1;
    }
    if padded - start >= 20 && seen & MIXED == MIXED {
        emit(start, padded);
    }
}

/// Where the token run starting at `start` ends (the buffer is `len` bytes), and whether
/// it holds a non-hex letter, from the masks alone.
fn walk(masks: &[Masks], start: usize, len: usize) -> (usize, bool) {
    let (mut k, mut off) = (start / 64, start % 64);
    let mut non_hex = false;
    loop {
        let m = masks[k];
        let ones = (m.tokens >> off).trailing_ones() as usize;
        let bits = if ones >= 64 {
            u64::MAX
        } else {
            (1 << ones) - 1
        };
        non_hex |= m.non_hex & (bits << off) != 0;
        if off + ones < 64 {
            return (64 * k + off + ones, non_hex);
        }
        k += 1;
        off = 0;
        if k == masks.len() {
            return (len, non_hex);
        }
    }
}

/// The shortest token a vendor's pattern matches (`xoxb-` and ten more). Every match of
/// those patterns that begins with a literal made of token bytes (not `SG.`, `ya29.`,
/// `hvs.` or the Slack hooks URL) is one run of token bytes this long or longer, so those
/// literals are looked for only inside such runs (`prefilter::Triggers`).
pub(super) const LONG_RUN: usize = 15;
// The high-entropy detector's candidates are long runs too.
const _: () = assert!(LONG_RUN <= MIN_BODY);

/// Every maximal token run of `LONG_RUN` bytes or more in a buffer of `len` bytes, in
/// order, as (start, end, non_hex) into `runs` (cleared first); `non_hex`: the run holds
/// a letter that is not a hex digit (hex digests and UUIDs do not). The trigger search and
/// the high-entropy detector both look only at these.
pub(super) fn long_token_runs(len: usize, masks: &[Masks], runs: &mut Vec<(usize, usize, bool)>) {
    runs.clear();
    // Everything before `done` has been walked; it never ends inside a run.
    let mut done: usize = 0;
    for (k, m) in masks.iter().enumerate() {
        let at = 64 * k;
        let next = masks.get(k + 1).map_or(0, |n| n.tokens);
        let mut starts = window_starts(u128::from(m.tokens) | u128::from(next) << 64, LONG_RUN);
        starts &= u64::MAX
            .checked_shl(done.saturating_sub(at) as u32)
            .unwrap_or(0);
        while starts != 0 {
            // The run's first byte: a window starting earlier in it was seen first.
            let start = at + starts.trailing_zeros() as usize;
            let non_hex;
            (done, non_hex) = walk(masks, start, len);
            runs.push((start, done, non_hex));
            starts &= u64::MAX.checked_shl((done - at) as u32).unwrap_or(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::scan::shape::token_runs;

    fn reference(buf: &[u8]) -> Vec<(usize, usize)> {
        let mut want = Vec::new();
        token_runs(buf, |s, e| {
            let seen = buf[s..e].iter().fold(0, |a, &b| a | CLASS[usize::from(b)]);
            if seen & MIXED == MIXED {
                want.push((s, e));
            }
        });
        want
    }

    fn fast(buf: &[u8]) -> Vec<(usize, usize)> {
        let mut got = Vec::new();
        high_entropy_runs(buf, &long_fast(buf), |s, e| got.push((s, e)));
        got
    }

    #[test]
    fn runs_at_every_block_offset_and_length() {
        let token = b"Zx9Qm2LkP4vR7tW1yB3nC8dFkJ8sD2fG5hQ9wE1rT7yU3iO6pA4sZ0xCaB1cD2eF3gH4";
        for len in 16..token.len() {
            for at in 0..140 {
                for pad in ["", "=", "==", "==="] {
                    let mut buf = vec![b' '; at];
                    buf.extend_from_slice(&token[..len]);
                    buf.extend_from_slice(pad.as_bytes());
                    buf.extend_from_slice(b" tail");
                    assert_eq!(fast(&buf), reference(&buf), "len {len} at {at}");
                }
            }
        }
    }

    /// Maximal token runs of `LONG_RUN` bytes or more, byte by byte.
    fn long_reference(buf: &[u8]) -> Vec<(usize, usize, bool)> {
        let token = |b: u8| CLASS[usize::from(b)] & TOKEN != 0;
        let mut runs = Vec::new();
        let mut i = 0;
        while i < buf.len() {
            let start = i;
            while i < buf.len() && token(buf[i]) {
                i += 1;
            }
            if i - start >= LONG_RUN {
                let non_hex = buf[start..i]
                    .iter()
                    .any(|b| b.is_ascii_alphabetic() && !b.is_ascii_hexdigit());
                runs.push((start, i, non_hex));
            }
            i = i.max(start + 1);
        }
        runs
    }

    fn long_fast(buf: &[u8]) -> Vec<(usize, usize, bool)> {
        let (mut masks, mut runs) = (Vec::new(), Vec::new());
        crate::scan::blocks::classify(buf, &mut masks);
        long_token_runs(buf.len(), &masks, &mut runs);
        runs
    }

    #[test]
    fn long_runs_at_every_block_offset_and_length() {
        for len in 10..150 {
            for at in 0..140 {
                let mut buf = vec![b' '; at];
                buf.extend(std::iter::repeat_n(b'k', len));
                buf[at + len / 2] = b'0';
                buf.extend_from_slice(b".tail-of-it-all-x");
                assert_eq!(long_fast(&buf), long_reference(&buf), "len {len} at {at}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn same_long_runs_as_the_reference(
            parts in proptest::collection::vec(
                prop_oneof![
                    4 => proptest::sample::select(vec![
                        "ghp_Zx9Qm2LkP4", "abcdef0123", "ACCA", "x", "-", "_", "+", "/", " ", ".", "\n",
                    ]).prop_map(|s| s.as_bytes().to_vec()),
                    1 => proptest::collection::vec(any::<u8>(), 0..40),
                ],
                0..60,
            ),
        ) {
            let buf = parts.concat();
            prop_assert_eq!(long_fast(&buf), long_reference(&buf));
        }

        #[test]
        fn same_runs_as_the_reference(
            parts in proptest::collection::vec(
                prop_oneof![
                    4 => proptest::sample::select(vec![
                        "Zx9Qm2LkP4vR7tW1yB3n", "abcdef0123456789abcd", "x", "Q", "7", "g",
                        "+", "/", "_", "-", "=", "==", " ", ",", ".", "\n", "\u{e9}",
                    ]).prop_map(|s| s.as_bytes().to_vec()),
                    1 => proptest::collection::vec(any::<u8>(), 0..40),
                ],
                0..40,
            ),
        ) {
            let buf = parts.concat();
            prop_assert_eq!(fast(&buf), reference(&buf));
        }
    }
}
