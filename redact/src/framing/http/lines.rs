//! What the HTTP/1 tracker reads of a line: whether it is, or may yet be, a request or
//! status line, a header's value, and where the next line that may start a message begins.

use wide::u8x16;

use crate::scan::blocks::eq;

/// Whether a line that begins with `prefix` (its first bytes, up to 11, or fewer where
/// the piece ends) may be a request or status line. Both are at least 12 bytes long, so
/// the prefix never runs past such a line's end; a false here spares capturing a line
/// `message_start` would turn away ("Author: x", "Date: y").
pub(super) fn may_start_message(prefix: &[u8]) -> bool {
    let status = b"HTTP/1.".starts_with(&prefix[..prefix.len().min(7)]);
    let method = leading_capitals(prefix);
    let request = match prefix.get(method) {
        None => method <= 10,
        Some(&b) => (3..=10).contains(&method) && b == b' ',
    };
    status || request
}

/// Just past the first line feed in `rest` that is followed by a capital letter or ends
/// `rest`: where the next line that may start a message begins (a request or status line
/// begins with a capital), or where the next piece's first byte decides. Line feeds are
/// found sixteen bytes at a time, the last bytes one at a time.
pub(super) fn after_passed_over_lines(rest: &[u8]) -> Option<usize> {
    let next_line = |p: usize| rest.get(p + 1).is_none_or(u8::is_ascii_uppercase);
    let mut chunks = rest.chunks_exact(16);
    for (k, chunk) in (&mut chunks).enumerate() {
        let mut feeds = eq(u8x16::new(chunk.try_into().expect("16 bytes")), b'\n').to_bitmask();
        while feeds != 0 {
            let p = 16 * k + feeds.trailing_zeros() as usize;
            if next_line(p) {
                return Some(p + 1);
            }
            feeds &= feeds - 1;
        }
    }
    let tail = rest.len() - chunks.remainder().len();
    (tail..rest.len())
        .find(|&p| rest[p] == b'\n' && next_line(p))
        .map(|p| p + 1)
}

pub(super) fn is_request_line(line: &[u8]) -> bool {
    let method_len = leading_capitals(line);
    (3..=10).contains(&method_len)
        && line.get(method_len) == Some(&b' ')
        && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
}

pub(super) fn is_status_line(line: &[u8]) -> bool {
    (line.starts_with(b"HTTP/1.1 ") || line.starts_with(b"HTTP/1.0 "))
        && line.len() >= 12
        && line[9..12].iter().all(u8::is_ascii_digit)
}

/// The trimmed value of header `name` (lowercase, with its colon) if `line` is that header.
pub(super) fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a str> {
    // The colon first: it rules out nearly every other header without a case-blind
    // comparison of its name.
    if line.get(name.len() - 1) != Some(&b':') || !line[..name.len()].eq_ignore_ascii_case(name) {
        return None;
    }
    std::str::from_utf8(&line[name.len()..]).ok().map(str::trim)
}

/// How many capitals `bytes` begins with: a request line's method.
fn leading_capitals(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_uppercase()).count()
}
