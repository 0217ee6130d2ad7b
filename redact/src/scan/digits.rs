//! Finds the digit chains the card-number and SSN detectors can act on, without walking
//! every digit of ordinary traffic (hashes, UUIDs and timestamps are full of short digit
//! runs, and a byte loop that stops at each one mispredicts a branch per byte).
//!
//! A chain is a maximal run of digits joined by single spaces or dashes (`4111 1111`,
//! `123-45-6789`); both detectors need at least nine digits in one. Chain membership is
//! computed for 64 bytes at a time as bit masks (`blocks`, shared with the token scan), and
//! only chains of nine or more members are walked byte by byte. What the
//! detectors do with a chain stays in `value` and `shape`.

use crate::scan::blocks::{window_starts, Masks};

/// Fewest digits a chain needs for any detector to fire (an SSN has nine, a card 13).
const MIN_DIGITS: usize = 9;

/// Chain members of block `k`: digits, and joiners with a digit on both sides.
fn members(masks: &[Masks], k: usize) -> u64 {
    let digits = |k: usize| masks.get(k).map_or(0, |m| m.digits);
    let d = digits(k);
    let prev_top = k.checked_sub(1).map_or(0, |p| digits(p) >> 63);
    let before = (d << 1) | prev_top;
    let after = (d >> 1) | ((digits(k + 1) & 1) << 63);
    d | (masks[k].joins & before & after)
}

/// Calls `chain(start, end, digits)` for every chain that may have `MIN_DIGITS` digits
/// or more (every chain of `MIN_DIGITS` members or more: a chain is a maximal run of
/// members, and has at least as many members as digits), in order.
pub(crate) fn long_chains(buf: &[u8], masks: &[Masks], mut chain: impl FnMut(usize, usize, usize)) {
    // Everything before `done` has been walked; it never ends inside a chain.
    let mut done = 0usize;
    let mut next = if masks.is_empty() {
        0
    } else {
        members(masks, 0)
    };
    for k in 0..masks.len() {
        let at = 64 * k;
        let cur = next;
        next = if k + 1 < masks.len() {
            members(masks, k + 1)
        } else {
            0
        };
        let mut starts = window_starts(u128::from(cur) | u128::from(next) << 64, MIN_DIGITS);
        // Windows inside a chain already walked; what is left starts at a chain's first
        // byte (a digit), as a window one byte earlier would otherwise be set too.
        starts &= u64::MAX
            .checked_shl(done.saturating_sub(at) as u32)
            .unwrap_or(0);
        while starts != 0 {
            let start = at + starts.trailing_zeros() as usize;
            done = walk(buf, start, &mut chain);
            starts &= u64::MAX.checked_shl((done - at) as u32).unwrap_or(0);
        }
    }
}

/// Walks the chain starting at `start` (a digit), as `ValueDetectors::digit_runs` does;
/// returns where it ends.
fn walk(buf: &[u8], start: usize, chain: &mut impl FnMut(usize, usize, usize)) -> usize {
    let mut end = start + 1;
    let mut digits = 1;
    loop {
        match (buf.get(end), buf.get(end + 1)) {
            (Some(b), _) if b.is_ascii_digit() => {
                end += 1;
                digits += 1;
            }
            (Some(b' ' | b'-'), Some(b)) if b.is_ascii_digit() => {
                end += 2;
                digits += 1;
            }
            _ => break,
        }
    }
    chain(start, end, digits);
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_chains_across_blocks() {
        for at in 50..70 {
            let mut buf = vec![b'x'; 140];
            buf[at..at + 19].copy_from_slice(b"4111 1111 1111 1111");
            let mut seen = Vec::new();
            let mut masks = Vec::new();
            crate::scan::blocks::classify(&buf, &mut masks);
            long_chains(&buf, &masks, |s, e, d| seen.push((s, e, d)));
            assert_eq!(seen, [(at, at + 19, 16)], "at {at}");
        }
    }
}
