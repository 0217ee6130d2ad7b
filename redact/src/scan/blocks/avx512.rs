//! `block_masks` for CPUs with AVX-512BW: the same compares as the portable version, on all
//! 64 bytes of a block at once, each giving its mask directly (a mask register), with no
//! top-bit gathering and no joining of halves. Chosen at run time by `classify`; the test
//! holds it to the portable version on every byte value in every position.

use std::arch::x86_64::{
    __m512i, _mm512_cmpeq_epi8_mask, _mm512_cmplt_epu8_mask, _mm512_loadu_si512, _mm512_or_si512,
    _mm512_set1_epi8, _mm512_sub_epi8,
};

use super::Masks;

/// Bits where `x == byte`.
#[target_feature(enable = "avx512f,avx512bw")]
fn eq(x: __m512i, byte: u8) -> u64 {
    _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(byte as i8))
}

/// Bits where `x - low` (wrapping) is below `count`: `x` is in `low..low + count`.
#[target_feature(enable = "avx512f,avx512bw")]
fn within(x: __m512i, low: u8, count: u8) -> u64 {
    let y = _mm512_sub_epi8(x, _mm512_set1_epi8(low as i8));
    _mm512_cmplt_epu8_mask(y, _mm512_set1_epi8(count as i8))
}

// Inlined into `classify`'s loop, as the AVX2 version is: its constants stay in registers
// and the masks go straight into their slot.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) fn block_masks(block: &[u8; 64]) -> Masks {
    // SAFETY: `block` is 64 readable bytes, and an unaligned load needs no alignment.
    let x = unsafe { _mm512_loadu_si512(block.as_ptr().cast()) };
    let folded = _mm512_or_si512(x, _mm512_set1_epi8(0x20));
    let digit = within(x, b'0', 10);
    let dash = eq(x, b'-');
    let dash_dot = dash | eq(x, b'.');
    let word = within(folded, b'a', 26) | digit | eq(x, b'_');
    let space = eq(x, b' ');
    let newline = eq(x, b'\n');
    Masks {
        digits: digit,
        joins: space | dash,
        tokens: word | eq(x, b'+') | eq(x, b'/') | dash,
        non_hex: within(folded, b'g', 20),
        separators: eq(x, b':') | eq(x, b'=') | eq(x, b'\''),
        closes: eq(x, b'>'),
        dash_dot,
        blanks: space | eq(x, b'\t') | eq(x, 0) | newline,
        keys: word | dash_dot,
        newlines: newline,
    }
}
