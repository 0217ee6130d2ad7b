//! AWS secret access keys found from the buffer's long token runs, instead of by the
//! `AwsSecretAccessKey` pattern searched for over the whole buffer: on secret-dense traffic,
//! where its hint words are in every buffer, that search was the largest single cost of the
//! scan. The same matches as the pattern's `find_iter`: the property test holds them to it.

use crate::scan::tokens::LONG_RUN;

/// A key's length.
const KEY: usize = 40;
const _: () = assert!(LONG_RUN <= KEY);

/// Calls `found` with the bounds of each key the pattern
/// `(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+=])` captures in `buf`, in
/// order, as `find_iter` captures them. `long_runs` are `buf`'s maximal token runs of
/// `LONG_RUN` bytes or more, in order (`tokens::long_token_runs`): key bytes are token
/// bytes, so a key is a whole piece of one such run between its `_` and `-` bytes.
pub(super) fn keys(
    buf: &[u8],
    long_runs: &[(usize, usize, bool)],
    mut found: impl FnMut(usize, usize),
) {
    // Where the last match ended. A match takes the byte after its key, so a key one byte
    // after it has no byte before it left to match and is not found.
    let mut resume = 0;
    for &(start, end, _) in long_runs.iter().filter(|&&(s, e, _)| e - s >= KEY) {
        let mut at = start;
        while at < end {
            let piece_end = memchr::memchr2(b'_', b'-', &buf[at..end]).map_or(end, |p| at + p);
            // The match starts at the byte before the key (not a key byte, nor `=`), or at
            // the buffer's start.
            let before_ok = at == 0 || (buf[at - 1] != b'=' && at > resume);
            if piece_end - at == KEY && before_ok && buf.get(piece_end) != Some(&b'=') {
                found(at, piece_end);
                resume = (piece_end + 1).min(buf.len());
            }
            at = piece_end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::detector::Detector;
    use crate::scan::blocks::classify;
    use crate::scan::tokens::long_token_runs;
    use crate::scan::value::{builtin, compile};

    fn by_pattern(buf: &[u8]) -> Vec<(usize, usize)> {
        let &[(pattern, group)] = builtin(Detector::AwsSecretAccessKey) else {
            panic!("one pattern");
        };
        let regex = compile(pattern).unwrap();
        regex
            .captures_iter(buf)
            .filter_map(|caps| caps.get(group))
            .map(|m| (m.start(), m.end()))
            .collect()
    }

    fn by_runs(buf: &[u8]) -> Vec<(usize, usize)> {
        let (mut masks, mut runs, mut keys_found) = (Vec::new(), Vec::new(), Vec::new());
        classify(buf, &mut masks);
        long_token_runs(buf.len(), &masks, &mut runs);
        keys(buf, &runs, |start, end| keys_found.push((start, end)));
        keys_found
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// Keys side by side, one byte or none between them, next to `=`, `_`, `-` and the
        /// buffer's edges, among runs a byte too short or too long.
        #[test]
        fn keys_are_the_patterns_captures(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/Ab",
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKE",
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYx",
                    "=", "_", "-", " ", "\n", "/", "+", "a", "Z9", "aws", "\"", ":",
                ]),
                0..24,
            ),
        ) {
            let buf = parts.concat().into_bytes();
            prop_assert_eq!(by_runs(&buf), by_pattern(&buf));
        }
    }
}
