//! `block_masks` 32 bytes at a time, for CPUs with AVX2: the same compares as the
//! portable version, on twice the lanes, so classifying a block takes about half the
//! instructions. Chosen at run time by `classify`; the test holds it to the portable
//! version on every byte value in every position.

use std::arch::x86_64::{
    __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
    _mm256_or_si256, _mm256_set1_epi8, _mm256_sub_epi8,
};

use super::Masks;

/// Lanes where `x == byte`.
#[target_feature(enable = "avx2")]
fn eq(x: __m256i, byte: u8) -> __m256i {
    _mm256_cmpeq_epi8(x, _mm256_set1_epi8(byte as i8))
}

/// Lanes where `x - low` (wrapping) is below `count`: `x` is in `low..low + count`.
#[target_feature(enable = "avx2")]
fn within(x: __m256i, low: u8, count: u8) -> __m256i {
    let y = _mm256_sub_epi8(x, _mm256_set1_epi8(low as i8));
    _mm256_cmpeq_epi8(_mm256_min_epu8(y, _mm256_set1_epi8((count - 1) as i8)), y)
}

#[target_feature(enable = "avx2")]
fn or(a: __m256i, b: __m256i) -> __m256i {
    _mm256_or_si256(a, b)
}

/// One bit per lane: its top bit.
#[target_feature(enable = "avx2")]
fn bits(lanes: __m256i) -> u32 {
    _mm256_movemask_epi8(lanes) as u32
}

/// The masks of 32 bytes, in `Masks`' field order.
#[target_feature(enable = "avx2")]
fn half_masks(lanes: &[u8; 32]) -> [u32; 10] {
    // SAFETY: `lanes` is 32 readable bytes, and an unaligned load needs no alignment.
    let x = unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) };
    let folded = _mm256_or_si256(x, _mm256_set1_epi8(0x20));
    let digit = within(x, b'0', 10);
    let dash = eq(x, b'-');
    let dash_dot = or(dash, eq(x, b'.'));
    let word = or(or(within(folded, b'a', 26), digit), eq(x, b'_'));
    let token = or(or(word, eq(x, b'+')), or(eq(x, b'/'), dash));
    let space = eq(x, b' ');
    [
        bits(digit),
        bits(or(space, dash)),
        bits(token),
        bits(within(folded, b'g', 20)),
        bits(or(or(eq(x, b':'), eq(x, b'=')), eq(x, b'\''))),
        bits(eq(x, b'>')),
        bits(dash_dot),
        bits(or(or(space, eq(x, b'\t')), or(eq(x, 0), eq(x, b'\n')))),
        bits(or(word, dash_dot)),
        bits(eq(x, b'\n')),
    ]
}

// Inlined into `classify`'s loop, which stores the masks straight into their slot
// (`classify_with`): LLVM keeps the vectors whole there (no `vpinsrb`), as it did not
// when the loop pushed a copy.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn block_masks(block: &[u8; 64]) -> Masks {
    let (low, high) = block.split_at(32);
    let half = |lanes: &[u8]| half_masks(lanes.try_into().expect("32 bytes"));
    let (low, high) = (half(low), half(high));
    let both = |i: usize| u64::from(low[i]) | u64::from(high[i]) << 32;
    Masks {
        digits: both(0),
        joins: both(1),
        tokens: both(2),
        non_hex: both(3),
        separators: both(4),
        closes: both(5),
        dash_dot: both(6),
        blanks: both(7),
        keys: both(8),
        newlines: both(9),
    }
}
