//! Validators for value detectors: the checks a candidate must pass beyond its pattern
//! (Luhn, SSN ranges, AWS context, ...), and the reference walk for token runs (the
//! entropy checks are `entropy`).

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
    // Whether groups make a card, their digits gathered on the stack: a chain as long as
    // the line has a candidate at every group, and this ran for each.
    let mut scratch = [0u8; 19];
    let mut is_card = |range: &[(usize, usize)]| -> bool {
        let mut n = 0;
        for d in range.iter().flat_map(|&(s, e)| &buf[s..e]) {
            let Some(slot) = scratch.get_mut(n) else {
                return false;
            };
            *slot = d - b'0';
            n += 1;
        }
        card_digits_ok(&scratch[..n])
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
                if (13..=19).contains(&total) && is_card(&groups[i..=j]) {
                    found = Some(j);
                }
                if total >= 19 {
                    break;
                }
            }
        }
        match found {
            Some(j) if is_card(&groups[i..=j]) => {
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
    // Lowercased on the stack: no allocation per candidate.
    let mut lower = [0u8; 256];
    let lower = &mut lower[..window.len()];
    lower.copy_from_slice(window);
    lower.make_ascii_lowercase();
    [&b"aws"[..], b"amazon", b"akia", b"asia"]
        .iter()
        .any(|hint| memchr::memmem::find(lower, hint).is_some())
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

#[cfg(test)]
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

#[cfg(test)]
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
}
