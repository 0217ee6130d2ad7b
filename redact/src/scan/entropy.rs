//! The high-entropy detector's checks on one token run: the classes it needs, the
//! public encodings it leaves alone (media, data URIs, fingerprints, digests, MIME
//! lines), Shannon entropy, class changes and word-likeness. Finding the runs is
//! `tokens` (fast path) and `shape::token_runs` (reference).

/// Base64 prefixes of common media and archive formats, whose encodings are long,
/// random-looking and not secrets.
const MEDIA_MAGIC: &[&[u8]] = &[
    b"iVBORw0KGgo",
    b"/9j/",
    b"R0lGOD",
    b"UklGR",
    b"JVBERi0",
    b"UEsDB",
    b"AAAA",
    b"SUkq",
    b"Qk",
    b"T2dnUw",
    b"GkXfo",
    b"d09GR",
    b"AAEAAA",
];

/// `high_entropy`'s byte classes: the low two bits are the class whose changes it
/// counts (0 lower, 1 upper, 2 digit, 3 other); above them the flags it requires (4
/// upper, 8 lower, 16 digit, 32 non-hex letter).
const CHANGE: u8 = 3;
const REQUIRED: u8 = 4 | 8 | 16 | 32;

const fn entropy_class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'a'..=b'z' => 8, // class 0
            b'A'..=b'Z' => 1 | 4,
            b'0'..=b'9' => 2 | 16,
            _ => 3,
        };
        if c.is_ascii_alphabetic() && !c.is_ascii_hexdigit() {
            t[b] |= 32;
        }
        b += 1;
    }
    t
}

static ENTROPY_CLASS: [u8; 256] = entropy_class_table();

/// A generic token: 20–256 characters of `[A-Za-z0-9+/_-]` (plus `=` padding) with
/// upper case, lower case and digits, not pure hex, that looks random: Shannon entropy at
/// least 0.8 × log2(min(len, 62)) bits per character, a character-class change at 30 %
/// or more of positions, and not word-like (over half its characters in letter runs of
/// three or more with a vowel share of 25 % or more, as in `getUserByIdAndOrg2`).
pub(super) fn high_entropy(buf: &[u8], start: usize, end: usize, line_start: bool) -> bool {
    let run = &buf[start..end];
    let body = run
        .strip_suffix(b"==")
        .or_else(|| run.strip_suffix(b"="))
        .unwrap_or(run);
    let n = body.len();
    if !(20..=256).contains(&n) {
        return false;
    }
    // Classes present and class changes between neighbours, in one pass.
    let mut seen = 0;
    let mut changes = 0;
    let mut prev = ENTROPY_CLASS[usize::from(body[0])] & CHANGE;
    for &b in body {
        let c = ENTROPY_CLASS[usize::from(b)];
        seen |= c;
        changes += usize::from(c & CHANGE != prev);
        prev = c & CHANGE;
    }
    if seen & REQUIRED != REQUIRED {
        return false;
    }
    if MEDIA_MAGIC.iter().any(|m| body.starts_with(m)) {
        return false;
    }
    let before = &buf[start.saturating_sub(8)..start];
    // Data URIs, and SSH key fingerprints (`SHA256:<base64>`) which are public.
    if [&b"base64,"[..], b"base64:", b"SHA256:", b"SHA512:"]
        .iter()
        .any(|p| before.ends_with(p))
    {
        return false;
    }
    // Subresource-integrity and similar digests: `sha384-<base64>`.
    if [&b"sha256-"[..], b"sha384-", b"sha512-"]
        .iter()
        .any(|p| body.starts_with(p))
    {
        return false;
    }
    // A full-width MIME base64 line (76 characters) inside a block.
    let at_line_start = if start == 0 {
        line_start
    } else {
        buf[start - 1] == b'\n'
    };
    if n == 76 && at_line_start && buf.get(end).is_some_and(|&b| b == b'\r' || b == b'\n') {
        return false;
    }
    // A character-class change at 30 % or more of positions. Every check must pass, so
    // the cheap ones go first.
    if changes * 10 < (n - 1) * 3 {
        return false;
    }
    entropy_ok(body) && !word_like(body)
}

/// log2(k) and k·log2(k) for every count a token of at most 256 bytes can have.
struct Log2Tables {
    log2: [f64; 257],
    count_log2: [f64; 257],
}

static LOG2: std::sync::LazyLock<Log2Tables> = std::sync::LazyLock::new(|| {
    let mut tables = Log2Tables {
        log2: [0.0; 257],
        count_log2: [0.0; 257],
    };
    for k in 1..=256 {
        let k_f = f64::from(k as u32);
        tables.log2[k] = k_f.log2();
        tables.count_log2[k] = k_f * k_f.log2();
    }
    tables
});

/// Shannon entropy of `body` at least 0.8 × log2(min(len, 62)) bits per character.
fn entropy_ok(body: &[u8]) -> bool {
    let n = body.len();
    // Counts, and which bytes occur (so only those are visited).
    let mut counts = [0u16; 256];
    let mut present = [0u64; 4];
    for &b in body {
        counts[usize::from(b)] += 1;
        present[usize::from(b >> 6)] |= 1 << (b & 63);
    }
    let distinct: u32 = present.iter().map(|w| w.count_ones()).sum();
    let tables = &*LOG2;
    let threshold = 0.8 * tables.log2[n.min(62)];
    // Entropy is at most log2(distinct): too few distinct bytes cannot qualify. The
    // margin keeps rounding in the exact sum from mattering.
    if tables.log2[distinct as usize] + 1e-9 < threshold {
        return false;
    }
    // H = log2(n) - Σ c·log2(c) / n, from the tables: no logarithm taken per byte value.
    let visit = |each: &mut dyn FnMut(usize)| {
        for (w, &bits) in present.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                each(w * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    };
    let mut sum = 0.0;
    visit(&mut |b| sum += tables.count_log2[usize::from(counts[b])]);
    let fast = tables.log2[n] - sum / n as f64;
    if (fast - threshold).abs() > 1e-9 {
        return fast >= threshold;
    }
    // Within rounding of the threshold: decided by the sum as the detector has always
    // taken it (-Σ p·log2 p, in byte order), so that no token changes side.
    let len = n as f64;
    let mut entropy = 0.0;
    visit(&mut |b| {
        let p = f64::from(counts[b]) / len;
        entropy += -p * p.log2();
    });
    entropy >= threshold
}

/// Identifiers and words: long same-case letter runs with a natural share of vowels.
fn word_like(s: &[u8]) -> bool {
    let (mut in_runs, mut letters) = (0, 0);
    let mut i = 0;
    while i < s.len() {
        let lower = s[i].is_ascii_lowercase();
        let letter = s[i].is_ascii_alphabetic();
        let mut j = i + 1;
        while j < s.len()
            && s[j].is_ascii_alphabetic() == letter
            && s[j].is_ascii_lowercase() == lower
        {
            j += 1;
        }
        if letter {
            letters += j - i;
            if j - i >= 3 {
                in_runs += j - i;
            }
        }
        i = j;
    }
    let vowels = s
        .iter()
        .filter(|b| matches!(b.to_ascii_lowercase(), b'a' | b'e' | b'i' | b'o' | b'u'))
        .count();
    in_runs * 2 > s.len() && vowels * 4 >= letters
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entropy as it was computed before `entropy_ok`: over the whole count table.
    fn entropy_reference(body: &[u8]) -> bool {
        let mut counts = [0u32; 256];
        for &b in body {
            counts[b as usize] += 1;
        }
        let len = body.len() as f64;
        let entropy: f64 = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = f64::from(c) / len;
                -p * p.log2()
            })
            .sum();
        entropy >= 0.8 * (body.len().min(62) as f64).log2()
    }

    proptest::proptest! {
        #[test]
        fn entropy_matches_the_full_table_sum(
            body in proptest::collection::vec(
                proptest::sample::select(b"aAbB01+/xyzXYZ789_-=".to_vec()),
                20..=256,
            ),
            narrow in 1..20usize,
        ) {
            proptest::prop_assert_eq!(entropy_ok(&body), entropy_reference(&body));
            // Few distinct bytes: where the upper bound decides.
            let few: Vec<u8> = body.iter().map(|&b| b % narrow as u8 + b'0').collect();
            proptest::prop_assert_eq!(entropy_ok(&few), entropy_reference(&few));
        }
    }

    /// Bodies whose entropy lands on or near the threshold (k values in turn, as evenly as
    /// n allows: 32 bytes of 16 values is exactly the 4 bits 0.8 × log2(32) asks for),
    /// where the fast sum could round to the other side.
    #[test]
    fn entropy_at_the_threshold_matches_the_full_table_sum() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for n in 20..=256 {
            for k in 1..=alphabet.len().min(n) {
                let body: Vec<u8> = (0..n).map(|i| alphabet[i % k]).collect();
                assert_eq!(entropy_ok(&body), entropy_reference(&body), "n {n}, k {k}");
            }
        }
    }

    #[test]
    fn entropy_separates_tokens_from_words() {
        let he = |s: &str| high_entropy(s.as_bytes(), 0, s.len(), true);
        assert!(he("Zx9Qm2LkP4vR7tW1yB3nC8dF"));
        assert!(he("kJ8sD2fG5hQ9wE1rT7yU3iO6pA4sZ0xC"));
        assert!(!he("ThisIsMyVeryLongVariableName2"));
        assert!(!he("x86_64-unknown-linux-gnu"));
        assert!(!he("550e8400e29b41d4a716446655440000"));
        assert!(!he("abcdefghijklmnopqrstuvwxyz"));
        assert!(!he("HTTP2ServerConnectionHandler"));
        assert!(!he("getUserByIdAndOrganization2"));
    }

    #[test]
    fn entropy_classes_match_byte_tests() {
        for b in 0..=255u8 {
            let c = ENTROPY_CLASS[usize::from(b)];
            let change = match b {
                b'a'..=b'z' => 0,
                b'A'..=b'Z' => 1,
                b'0'..=b'9' => 2,
                _ => 3,
            };
            assert_eq!(c & CHANGE, change, "{b:#x}");
            assert_eq!(c & 4 != 0, b.is_ascii_uppercase(), "{b:#x}");
            assert_eq!(c & 8 != 0, b.is_ascii_lowercase(), "{b:#x}");
            assert_eq!(c & 16 != 0, b.is_ascii_digit(), "{b:#x}");
            let non_hex = b.is_ascii_alphabetic() && !b.is_ascii_hexdigit();
            assert_eq!(c & 32 != 0, non_hex, "{b:#x}");
        }
    }
}
