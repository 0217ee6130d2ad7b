//! One classification pass per buffer: digit, joiner (space, dash), token-run byte and
//! non-hex letter membership of every byte, as one bit per byte in 64-byte blocks. The digit-chain
//! (`digits`) and token-run (`tokens`) scans read these masks to skip ordinary text
//! without a branch per byte, so the buffer is classified once for both.
//!
//! The per-byte tests are written as a plain loop of comparisons into a byte array,
//! which the compiler turns into vector compares (no unsafe, no target features); the
//! bytes are then packed eight at a time into the bit masks.

/// Masks of one 64-byte block: bit i stands for byte i of the block. Past the end of
/// the buffer every bit is clear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Masks {
    /// ASCII digits.
    pub(crate) digits: u64,
    /// Space and `-`: what joins the digit groups of a card number or SSN.
    pub(crate) joins: u64,
    /// `[A-Za-z0-9+/_-]`: what token runs are made of.
    pub(crate) tokens: u64,
    /// `[G-Zg-z]`: letters that are not hex digits, without which no token run can pass
    /// the high-entropy checks (hex digests and UUIDs are skipped on this alone).
    pub(crate) non_hex: u64,
}

const DIGIT: u8 = 1;
const JOIN: u8 = 2;
const TOKEN: u8 = 4;
const NON_HEX: u8 = 8;

const ONES: u64 = 0x0101_0101_0101_0101;

/// Bit 0 of each byte of `x`, one bit per byte.
fn pack(x: u64) -> u64 {
    (x & ONES).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

pub(crate) fn block_masks(block: &[u8; 64]) -> Masks {
    let mut class = [0u8; 64];
    for (c, &b) in class.iter_mut().zip(block) {
        let digit = b.wrapping_sub(b'0') < 10;
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let join = b == b' ' || b == b'-';
        let token = digit || letter || b == b'+' || b == b'/' || b == b'_' || b == b'-';
        let non_hex = (b | 0x20).wrapping_sub(b'g') < 20;
        *c = (u8::from(digit) * DIGIT)
            | (u8::from(join) * JOIN)
            | (u8::from(token) * TOKEN)
            | (u8::from(non_hex) * NON_HEX);
    }
    let mut m = Masks::default();
    for (k, w) in class.chunks_exact(8).enumerate() {
        let x = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        m.digits |= pack(x) << (8 * k);
        m.joins |= pack(x >> 1) << (8 * k);
        m.tokens |= pack(x >> 2) << (8 * k);
        m.non_hex |= pack(x >> 3) << (8 * k);
    }
    m
}

/// The masks of every block of `buf`, into `out` (cleared first).
pub(crate) fn classify(buf: &[u8], out: &mut Vec<Masks>) {
    out.clear();
    let mut blocks = buf.chunks_exact(64);
    for block in &mut blocks {
        out.push(block_masks(block.try_into().expect("64 bytes")));
    }
    let rest = blocks.remainder();
    if !rest.is_empty() {
        let mut block = [0u8; 64];
        block[..rest.len()].copy_from_slice(rest);
        out.push(block_masks(&block));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_match_byte_tests() {
        let mut block = [0u8; 64];
        for seed in 0..=255u8 {
            for (i, b) in block.iter_mut().enumerate() {
                *b = (i as u8)
                    .wrapping_mul(37)
                    .wrapping_add(seed.wrapping_mul(101));
            }
            let m = block_masks(&block);
            for (i, &b) in block.iter().enumerate() {
                let token = b.is_ascii_alphanumeric() || b"+/_-".contains(&b);
                assert_eq!(m.digits >> i & 1 == 1, b.is_ascii_digit(), "{b:#x}");
                assert_eq!(m.joins >> i & 1 == 1, b == b' ' || b == b'-', "{b:#x}");
                assert_eq!(m.tokens >> i & 1 == 1, token, "{b:#x}");
                let non_hex = b.is_ascii_alphabetic() && !b.is_ascii_hexdigit();
                assert_eq!(m.non_hex >> i & 1 == 1, non_hex, "{b:#x}");
            }
        }
    }

    #[test]
    fn tail_block_is_zero_padded() {
        let mut masks = Vec::new();
        classify(b"12 a-", &mut masks);
        assert_eq!(
            masks,
            [Masks {
                digits: 0b00011,
                joins: 0b10100,
                tokens: 0b11011,
                non_hex: 0,
            }]
        );
    }
}
