//! One classification pass per buffer: digit, joiner (space, dash), token-run byte,
//! non-hex letter, key-value separator, `>`, `-`/`.`, blank, key-name byte and line feed
//! membership of every byte, as one bit per byte in 64-byte blocks. The digit-chain
//! (`digits`), token-run (`tokens`), key-run (`key_runs`) and line (`lines`) scans and the
//! trigger search's long runs (`prefilter`) read these masks to skip ordinary text without
//! a branch per byte, so the buffer is classified once for all of them.
//!
//! Each class is computed for 16 bytes at once with `wide`'s vector compares, and its
//! mask is the compare's top bits (one `pmovmskb` on x86-64); on a CPU with AVX2 the same
//! compares take 32 bytes at once (`avx2`), and with AVX-512BW the whole block at once,
//! each compare giving its mask directly (`avx512`). The byte-at-a-time version this
//! replaced, which packed bits with multiplications, took a fifth of the scan's time once
//! key runs were read from these masks too; the 16-byte one was still the largest single
//! cost of scanning ordinary text.

use wide::u8x16;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

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
    /// `:`, `=` and `'`: what may follow a key (`key: v`, `key=v`, `PASSWORD 'v'`).
    pub(crate) separators: u64,
    /// `>`: the end of an XML element's name.
    pub(crate) closes: u64,
    /// `-` and `.`: what a command-line flag starts with.
    pub(crate) dash_dot: u64,
    /// Space, tab, NUL and line feed: what comes before a flag.
    pub(crate) blanks: u64,
    /// `[A-Za-z0-9_.-]`: what key names are made of (`kv::is_key_byte`).
    pub(crate) keys: u64,
    /// Line feeds: where lines end (`lines`).
    pub(crate) newlines: u64,
}

/// Lanes where `x == byte`.
pub(crate) fn eq(x: u8x16, byte: u8) -> u8x16 {
    x.simd_eq(u8x16::splat(byte))
}

/// Lanes where `x - low` (wrapping) is below `count`: `x` is in `low..low + count`.
fn within(x: u8x16, low: u8, count: u8) -> u8x16 {
    let y = x - u8x16::splat(low);
    y.min(u8x16::splat(count - 1)).simd_eq(y)
}

pub(crate) fn block_masks(block: &[u8; 64]) -> Masks {
    let mut m = Masks::default();
    for (k, lanes) in block.chunks_exact(16).enumerate() {
        let x = u8x16::new(lanes.try_into().expect("sixteen bytes"));
        let folded = x | u8x16::splat(0x20);
        let digit = within(x, b'0', 10);
        let dash = eq(x, b'-');
        let dash_dot = dash | eq(x, b'.');
        let word = within(folded, b'a', 26) | digit | eq(x, b'_');
        let token = word | eq(x, b'+') | eq(x, b'/') | dash;
        let space = eq(x, b' ');
        let bits = |lanes: u8x16| u64::from(lanes.to_bitmask()) << (16 * k);
        m.digits |= bits(digit);
        m.joins |= bits(space | dash);
        m.tokens |= bits(token);
        m.non_hex |= bits(within(folded, b'g', 20));
        m.separators |= bits(eq(x, b':') | eq(x, b'=') | eq(x, b'\''));
        m.closes |= bits(eq(x, b'>'));
        m.dash_dot |= bits(dash_dot);
        m.blanks |= bits(space | eq(x, b'\t') | eq(x, 0) | eq(x, b'\n'));
        m.keys |= bits(word | dash_dot);
        m.newlines |= bits(eq(x, b'\n'));
    }
    m
}

/// Bit p is set where `len` (2 to 64) set bits start at p: `x` holds a block's mask in its
/// low half and the next block's in its high half, so windows may cross into it.
pub(crate) fn window_starts(x: u128, len: usize) -> u64 {
    debug_assert!((2..=64).contains(&len));
    // A window starting in the low half lies inside it, where a run of min(len, 8) starts
    // too, or runs through bit 63. Most blocks have neither, and the word-wide steps that
    // show it are cheaper than the double-word ones below.
    let low = x as u64;
    let (mut inside, mut width) = (low, 1);
    while width * 2 <= len.min(8) {
        inside &= inside >> width;
        width *= 2;
    }
    if inside == 0 && low >> 63 == 0 {
        return 0;
    }
    // Each step doubles the window every set bit stands for; the last one tops it up.
    let (mut y, mut width) = (x, 1);
    while width * 2 <= len {
        y &= y >> width;
        width *= 2;
    }
    (y & (y >> (len - width))) as u64
}

/// The positions of `mask`'s set bits, lowest first.
pub(crate) fn set_bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let bit = (mask != 0).then(|| mask.trailing_zeros() as usize)?;
        mask &= mask - 1;
        Some(bit)
    })
}

/// The masks of every block of `buf`, into `out` (cleared first).
pub(crate) fn classify(buf: &[u8], out: &mut Vec<Masks>) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512bw") {
        // SAFETY: the CPU has AVX-512BW (and so AVX-512F), the features `classify_avx512`
        // is compiled for.
        return unsafe { classify_avx512(buf, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, the one feature `classify_avx2` is compiled for.
        return unsafe { classify_avx2(buf, out) };
    }
    classify_with(buf, out, block_masks);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn classify_avx2(buf: &[u8], out: &mut Vec<Masks>) {
    classify_with(buf, out, |block| avx2::block_masks(block));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn classify_avx512(buf: &[u8], out: &mut Vec<Masks>) {
    classify_with(buf, out, |block| avx512::block_masks(block));
}

#[inline(always)]
fn classify_with(buf: &[u8], out: &mut Vec<Masks>, block_masks: impl Fn(&[u8; 64]) -> Masks) {
    // Each block's masks are stored into their slot, never built elsewhere and copied in:
    // the copy's wide loads read the narrower stores that had just made the masks, which
    // the CPU cannot forward, and they waited for them (three quarters of `classify`'s own
    // time, by `perf annotate`).
    out.clear();
    out.resize(buf.len().div_ceil(64), Masks::default());
    let mut blocks = buf.chunks_exact(64);
    for (slot, block) in out.iter_mut().zip(&mut blocks) {
        *slot = block_masks(block.try_into().expect("64 bytes"));
    }
    let rest = blocks.remainder();
    if let Some(slot) = out.last_mut().filter(|_| !rest.is_empty()) {
        // 0x80 is in no class (a zero would be a blank), so no bit is set past the end.
        let mut block = [0x80u8; 64];
        block[..rest.len()].copy_from_slice(rest);
        *slot = block_masks(&block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type BlockMasks = fn(&[u8; 64]) -> Masks;

    /// Every version of `block_masks` this CPU can run: the portable one, and the AVX2 and
    /// AVX-512 ones where the CPU has them (`classify` uses the widest).
    fn versions() -> Vec<(&'static str, BlockMasks)> {
        let mut versions: Vec<(&'static str, BlockMasks)> = vec![("portable", block_masks)];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: only called on a CPU with AVX2 (checked just above).
            versions.push(("avx2", |block| unsafe { avx2::block_masks(block) }));
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512bw") {
            // SAFETY: only called on a CPU with AVX-512BW (checked just above).
            versions.push(("avx512", |block| unsafe { avx512::block_masks(block) }));
        }
        versions
    }

    #[test]
    fn masks_match_byte_tests() {
        // Byte i of block `seed` is 37 i + 101 seed (mod 256): as 101 is odd, every byte
        // value comes at every position once over the 256 blocks.
        let mut block = [0u8; 64];
        for ((name, block_masks), seed) in versions()
            .into_iter()
            .flat_map(|version| (0..=255u8).map(move |seed| (version, seed)))
        {
            for (i, b) in block.iter_mut().enumerate() {
                *b = (i as u8)
                    .wrapping_mul(37)
                    .wrapping_add(seed.wrapping_mul(101));
            }
            let m = block_masks(&block);
            for (i, &b) in block.iter().enumerate() {
                let token = b.is_ascii_alphanumeric() || b"+/_-".contains(&b);
                assert_eq!(m.digits >> i & 1 == 1, b.is_ascii_digit(), "{name} {b:#x}");
                assert_eq!(
                    m.joins >> i & 1 == 1,
                    b == b' ' || b == b'-',
                    "{name} {b:#x}"
                );
                assert_eq!(m.tokens >> i & 1 == 1, token, "{name} {b:#x}");
                let non_hex = b.is_ascii_alphabetic() && !b.is_ascii_hexdigit();
                assert_eq!(m.non_hex >> i & 1 == 1, non_hex, "{name} {b:#x}");
                assert_eq!(
                    m.separators >> i & 1 == 1,
                    b":='".contains(&b),
                    "{name} {b:#x}"
                );
                assert_eq!(m.closes >> i & 1 == 1, b == b'>', "{name} {b:#x}");
                assert_eq!(
                    m.dash_dot >> i & 1 == 1,
                    b"-.".contains(&b),
                    "{name} {b:#x}"
                );
                assert_eq!(
                    m.blanks >> i & 1 == 1,
                    b" \t\0\n".contains(&b),
                    "{name} {b:#x}"
                );
                let key = b.is_ascii_alphanumeric() || b"_-.".contains(&b);
                assert_eq!(m.keys >> i & 1 == 1, key, "{name} {b:#x}");
                assert_eq!(m.newlines >> i & 1 == 1, b == b'\n', "{name} {b:#x}");
            }
        }
    }

    #[test]
    fn windows_of_every_length() {
        let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for runs in [x, x | x >> 1 | x >> 2, !0] {
                for len in 2..=64 {
                    let want = (0..64).fold(0u64, |w, p| {
                        let all = (p..p + len).all(|i| runs >> i & 1 == 1);
                        w | u64::from(all) << p
                    });
                    assert_eq!(window_starts(runs, len), want, "{runs:#x} len {len}");
                }
            }
        }
    }

    #[test]
    fn single_runs_of_about_the_window_anywhere() {
        for len in 2..=64 {
            for run in [len - 1, len, len + 1] {
                for at in 0..128 {
                    let runs = (u128::MAX >> (128 - run)).checked_shl(at).unwrap_or(0);
                    let want = (0..64).fold(0u64, |w, p| {
                        let all = (p..p + len).all(|i| runs >> i & 1 == 1);
                        w | u64::from(all) << p
                    });
                    assert_eq!(window_starts(runs, len), want, "{runs:#x} len {len}");
                }
            }
        }
    }

    #[test]
    fn nothing_is_set_past_the_end() {
        let mut masks = Vec::new();
        classify(b"12 a-", &mut masks);
        assert_eq!(
            masks,
            [Masks {
                digits: 0b00011,
                joins: 0b10100,
                tokens: 0b11011,
                non_hex: 0,
                separators: 0,
                closes: 0,
                dash_dot: 0b10000,
                blanks: 0b00100,
                keys: 0b11011,
                newlines: 0,
            }]
        );
    }
}
