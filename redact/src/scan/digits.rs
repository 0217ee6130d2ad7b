//! Finds the digit chains the card-number and SSN detectors can act on, without walking
//! every digit of ordinary traffic (hashes, UUIDs and timestamps are full of short digit
//! runs, and a byte loop that stops at each one mispredicts a branch per byte).
//!
//! A chain is a maximal run of digits joined by single spaces or dashes (`4111 1111`,
//! `123-45-6789`); both detectors need at least nine digits in one. Chain membership is
//! computed for 64 bytes at a time as bit masks (SWAR on eight-byte words, no unsafe), and
//! only blocks holding nine or more consecutive members are walked byte by byte. What the
//! detectors do with a chain stays in `value` and `shape`.

/// Fewest digits a chain needs for any detector to fire (an SSN has nine, a card 13).
const MIN_DIGITS: usize = 9;

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

/// High bit of each byte of `x` that is an ASCII digit.
fn digit_bytes(x: u64) -> u64 {
    let y = x & LOW7;
    let at_least_0 = y.wrapping_add(0x50 * ONES);
    let above_9 = y.wrapping_add(0x46 * ONES);
    at_least_0 & !above_9 & !x & HIGH
}

/// High bit of each byte of `x` equal to `b`.
fn bytes_equal(x: u64, b: u8) -> u64 {
    let t = x ^ (u64::from(b) * ONES);
    !(((t & LOW7).wrapping_add(LOW7)) | t) & HIGH
}

/// One bit per byte: bit i is the high bit of byte i.
fn pack(high: u64) -> u64 {
    ((high >> 7) & ONES).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// Digit and joiner (space, dash) masks of a 64-byte block.
fn block_masks(block: &[u8; 64]) -> (u64, u64) {
    let (mut digits, mut joins) = (0u64, 0u64);
    for (k, word) in block.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        digits |= pack(digit_bytes(x)) << (8 * k);
        joins |= pack(bytes_equal(x, b' ') | bytes_equal(x, b'-')) << (8 * k);
    }
    (digits, joins)
}

fn masks_at(buf: &[u8], at: usize) -> (u64, u64) {
    match buf.get(at..at + 64) {
        Some(block) => block_masks(block.try_into().expect("64 bytes")),
        None => {
            let mut block = [0u8; 64];
            let rest = buf.get(at..).unwrap_or(&[]);
            block[..rest.len()].copy_from_slice(rest);
            block_masks(&block)
        }
    }
}

/// `x` has `MIN_DIGITS` consecutive set bits.
fn has_long_run(x: u64) -> bool {
    let mut y = x;
    for _ in 1..MIN_DIGITS {
        y &= y >> 1;
    }
    y != 0
}

fn member(buf: &[u8], p: usize) -> bool {
    buf[p].is_ascii_digit()
        || (matches!(buf[p], b' ' | b'-')
            && p > 0
            && buf[p - 1].is_ascii_digit()
            && buf.get(p + 1).is_some_and(u8::is_ascii_digit))
}

/// Calls `chain(start, end, digits)` for every chain that may have `MIN_DIGITS` digits
/// or more (every such chain, and some shorter ones), in order.
pub(crate) fn long_chains(buf: &[u8], mut chain: impl FnMut(usize, usize, usize)) {
    let mut done = 0;
    let (mut prev_top, mut prev_members) = (0u64, 0u64);
    let mut next = masks_at(buf, 0);
    let mut at = 0;
    while at < buf.len() {
        let (digits, joins) = next;
        next = masks_at(buf, at + 64);
        let before = (digits << 1) | prev_top;
        let after = (digits >> 1) | ((next.0 & 1) << 63);
        let members = digits | (joins & before & after);
        let crossing = prev_members.leading_ones() as usize + members.trailing_ones() as usize;
        if has_long_run(members) || (members & 1 == 1 && crossing >= MIN_DIGITS) {
            done = walk(buf, done, at, (at + 64).min(buf.len()), &mut chain);
        }
        prev_top = digits >> 63;
        prev_members = members;
        at += 64;
    }
}

/// The exact chain walk over `from..to` (the chain that crosses `from` included), as
/// `ValueDetectors::digit_runs` does it; `done` is where the previous walk stopped, never
/// inside a chain. Returns where this one stopped.
fn walk(
    buf: &[u8],
    done: usize,
    from: usize,
    to: usize,
    chain: &mut impl FnMut(usize, usize, usize),
) -> usize {
    let mut i = from.max(done);
    while i > done && member(buf, i - 1) {
        i -= 1;
    }
    while let Some(p) = buf[i..to.max(i)].iter().position(u8::is_ascii_digit) {
        let start = i + p;
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
        i = end;
    }
    i.max(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_masks_match_byte_tests() {
        let mut block = [0u8; 64];
        for seed in 0..64u8 {
            for (i, b) in block.iter_mut().enumerate() {
                *b = (i as u8)
                    .wrapping_mul(37)
                    .wrapping_add(seed.wrapping_mul(101));
            }
            let (d, j) = block_masks(&block);
            for (i, &b) in block.iter().enumerate() {
                assert_eq!(d >> i & 1 == 1, b.is_ascii_digit(), "{b:#x}");
                assert_eq!(j >> i & 1 == 1, b == b' ' || b == b'-', "{b:#x}");
            }
        }
    }

    #[test]
    fn finds_chains_across_blocks() {
        for at in 50..70 {
            let mut buf = vec![b'x'; 140];
            buf[at..at + 19].copy_from_slice(b"4111 1111 1111 1111");
            let mut seen = Vec::new();
            long_chains(&buf, |s, e, d| seen.push((s, e, d)));
            assert_eq!(seen, [(at, at + 19, 16)], "at {at}");
        }
    }
}
