//! Validators for value detectors: the checks a candidate must pass beyond its pattern
//! (Luhn, SSN ranges, entropy, AWS context, ...), and the byte-class scans that find
//! token runs without a regex.

pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Card numbers: digit groups separated by single spaces or dashes. A candidate is one
/// group of 13–19 digits, or consecutive groups of 3–6 digits adding up to 13–19; it must
/// pass the Luhn check and start like an issued card (2221–2720, 3, 4, 5, 6).
pub(super) fn card_numbers(
    buf: &[u8],
    start: usize,
    end: usize,
    mut emit: impl FnMut(usize, usize),
) {
    if start > 0 && (is_word(buf[start - 1]) || matches!(buf[start - 1], b'.' | b'-' | b'/')) {
        // Part of a longer token ("v1.4111...", "id_4111...") or a path component.
        if buf[start - 1] != b'/' {
            return;
        }
    }
    if end < buf.len()
        && (is_word(buf[end])
            || (buf[end] == b'.' && buf.get(end + 1).is_some_and(u8::is_ascii_digit)))
    {
        return;
    }
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut g = start;
    for (i, b) in buf[start..end].iter().enumerate() {
        if !b.is_ascii_digit() {
            groups.push((g, start + i));
            g = start + i + 1;
        }
    }
    groups.push((g, end));
    let digits = |range: &[(usize, usize)]| -> Vec<u8> {
        range
            .iter()
            .flat_map(|&(s, e)| buf[s..e].iter().map(|d| d - b'0'))
            .collect()
    };
    let mut i = 0;
    while i < groups.len() {
        let mut found = None;
        let single = groups[i].1 - groups[i].0;
        if (13..=19).contains(&single) {
            found = Some(i);
        } else if (3..=6).contains(&single) {
            let mut total = 0;
            for j in i..groups.len() {
                let len = groups[j].1 - groups[j].0;
                if !(3..=6).contains(&len) {
                    break;
                }
                total += len;
                if (13..=19).contains(&total) && card_digits_ok(&digits(&groups[i..=j])) {
                    found = Some(j);
                }
                if total >= 19 {
                    break;
                }
            }
        }
        match found {
            Some(j) if card_digits_ok(&digits(&groups[i..=j])) => {
                emit(groups[i].0, groups[j].1);
                i = j + 1;
            }
            _ => i += 1,
        }
    }
}

fn card_digits_ok(d: &[u8]) -> bool {
    if !(13..=19).contains(&d.len()) {
        return false;
    }
    let prefix4 = d[..4].iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
    let issued = match d[0] {
        3..=6 => true,
        2 => (2221..=2720).contains(&prefix4),
        _ => false,
    };
    issued && luhn(d)
}

pub(super) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ddd-dd-dddd, not in the never-issued ranges (area 000, 666, 900–999; group 00;
/// serial 0000), and not part of a longer dash/digit run.
pub(super) fn valid_ssn(buf: &[u8], start: usize, end: usize) -> bool {
    let s = &buf[start..end];
    if s[3] != b'-' || s[6] != b'-' {
        return false;
    }
    if start > 0 && (is_word(buf[start - 1]) || matches!(buf[start - 1], b'-' | b'.' | b'/' | b':'))
    {
        return false;
    }
    if end < buf.len() && (is_word(buf[end]) || matches!(buf[end], b'-' | b'/')) {
        return false;
    }
    let num = |r: &[u8]| r.iter().fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'));
    let (area, group, serial) = (num(&s[0..3]), num(&s[4..6]), num(&s[7..11]));
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// 40 base64 characters with mixed case, within 256 bytes after an AWS hint.
pub(super) fn aws_secret(buf: &[u8], start: usize, end: usize) -> bool {
    let s = &buf[start..end];
    let upper = s.iter().any(u8::is_ascii_uppercase);
    let lower = s.iter().any(u8::is_ascii_lowercase);
    if !(upper && lower) {
        return false;
    }
    let window = &buf[start.saturating_sub(256)..start];
    let lower_window: Vec<u8> = window.iter().map(u8::to_ascii_lowercase).collect();
    [&b"aws"[..], b"amazon", b"akia", b"asia"]
        .iter()
        .any(|hint| memchr::memmem::find(&lower_window, hint).is_some())
}

/// `Basic` credentials decode to `user:password`.
pub(super) fn basic_credentials(b64: &[u8]) -> bool {
    decode_base64(b64)
        .is_some_and(|d| d.contains(&b':') && d.iter().all(|&b| b >= 0x20 || b == b'\t'))
}

fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let body: Vec<u8> = input.iter().copied().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | value(c)?;
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
            2 => out.push((acc >> 4) as u8),
            _ => return None,
        }
    }
    Some(out)
}

const fn token_run_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'_' || c == b'-';
        b += 1;
    }
    t
}

static TOKEN_RUN: [bool; 256] = token_run_table();

#[cfg(test)]
fn is_token_run_byte(b: u8) -> bool {
    TOKEN_RUN[b as usize]
}

/// Runs of 20 or more `[A-Za-z0-9+/_-]` bytes, with up to two `=` of padding.
#[cfg(test)]
pub(super) fn token_runs(buf: &[u8], mut emit: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < buf.len() {
        if !is_token_run_byte(buf[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < buf.len() && is_token_run_byte(buf[i]) {
            i += 1;
        }
        let mut end = i;
        while end < buf.len() && end - i < 2 && buf[end] == b'=' {
            end += 1;
        }
        if end - start >= 20 {
            emit(start, end);
        }
        i = end.max(i);
    }
}

/// Byte classes for [`token_runs_fast`].
const TOKEN: u8 = 1;
const UPPER: u8 = 2;
const LOWER: u8 = 4;
const DIGIT: u8 = 8;
const NON_HEX: u8 = 16;
const MIXED: u8 = UPPER | LOWER | DIGIT | NON_HEX;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut k = 0;
        if TOKEN_RUN[b] {
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

/// The runs [`token_runs`] yields that [`high_entropy`] can accept: it first requires
/// upper case, lower case, a digit and a non-hex letter, so the classes are gathered in
/// the same walk and hex digests, UUIDs and words never reach it.
pub(super) fn token_runs_fast(buf: &[u8], mut emit: impl FnMut(usize, usize)) {
    let n = buf.len();
    let mut i = 0;
    while i < n {
        while i < n && CLASS[buf[i] as usize] & TOKEN == 0 {
            i += 1;
        }
        let start = i;
        let mut seen = 0;
        while i < n {
            let c = CLASS[buf[i] as usize];
            if c & TOKEN == 0 {
                break;
            }
            seen |= c;
            i += 1;
        }
        let mut end = i;
        while end < n && end - i < 2 && buf[end] == b'=' {
            end += 1;
        }
        if end - start >= 20 && seen & MIXED == MIXED {
            emit(start, end);
        }
        i = end.max(i);
    }
}

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
    let (mut upper, mut lower, mut digit, mut non_hex) = (false, false, false, false);
    for &b in body {
        upper |= b.is_ascii_uppercase();
        lower |= b.is_ascii_lowercase();
        digit |= b.is_ascii_digit();
        non_hex |= b.is_ascii_alphabetic() && !b.is_ascii_hexdigit();
    }
    if !(upper && lower && digit && non_hex) {
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
    let mut counts = [0u32; 256];
    for &b in body {
        counts[b as usize] += 1;
    }
    let len = n as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum();
    let ceiling = (n.min(62) as f64).log2();
    if entropy < 0.8 * ceiling {
        return false;
    }
    let class = |b: u8| match b {
        b'a'..=b'z' => 0,
        b'A'..=b'Z' => 1,
        b'0'..=b'9' => 2,
        _ => 3,
    };
    let changes = body
        .windows(2)
        .filter(|w| class(w[0]) != class(w[1]))
        .count();
    if changes * 10 < (n - 1) * 3 {
        return false;
    }
    !word_like(body)
}

/// Identifiers and words: long same-case letter runs with a natural share of vowels.
fn word_like(s: &[u8]) -> bool {
    let mut in_runs = 0;
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
        if letter && j - i >= 3 {
            in_runs += j - i;
        }
        i = j;
    }
    let letters = s.iter().filter(|b| b.is_ascii_alphabetic()).count();
    let vowels = s.iter().filter(|b| b"aeiouAEIOU".contains(b)).count();
    in_runs * 2 > s.len() && vowels * 4 >= letters
}

pub(super) fn ip_address(buf: &[u8], start: usize, end: usize) -> bool {
    let s = &buf[start..end];
    let before = start.checked_sub(1).map(|i| buf[i]);
    let after = buf.get(end).copied();
    if s.contains(&b':') {
        if before.is_some_and(|b| is_word(b) || b == b':' || b == b'.')
            || after.is_some_and(|b| is_word(b) || b == b':')
        {
            return false;
        }
        let groups = s.split(|&b| b == b':').filter(|g| !g.is_empty()).count();
        let Ok(text) = std::str::from_utf8(s) else {
            return false;
        };
        groups >= 2
            && s.iter().any(u8::is_ascii_digit)
            && text.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        if before == Some(b'.')
            || (after == Some(b'.') && buf.get(end + 1).is_some_and(u8::is_ascii_digit))
        {
            return false;
        }
        s.split(|&b| b == b'.').all(|octet| {
            octet.len() <= 3
                && octet
                    .iter()
                    .fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'))
                    <= 255
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_check() {
        let d = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<_>>();
        assert!(luhn(&d("4111111111111111")));
        assert!(luhn(&d("378282246310005")));
        assert!(!luhn(&d("4111111111111112")));
    }

    #[test]
    fn base64_decoding() {
        assert_eq!(decode_base64(b"dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(decode_base64(b"YQ==").unwrap(), b"a");
        assert!(decode_base64(b"a").is_none());
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
}
