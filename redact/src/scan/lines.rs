//! Line-shaped detectors: HTTP header lines from the deny-list, Redis inline `AUTH`,
//! and PEM blocks (private key bodies masked, public ones exempt from the entropy check).

use memchr::memmem;

use crate::detector::Detector;
use crate::policy::Policy;
use crate::scan::{Cont, Span};

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b)
}

pub(crate) fn scan(
    policy: &Policy,
    buf: &[u8],
    line_start: bool,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) {
    let headers = policy.detector_on(Detector::HttpHeader);
    let redis = policy.detector_on(Detector::RedisAuth);
    if !headers && !redis {
        return;
    }
    let starts = line_start
        .then_some(0)
        .into_iter()
        .chain(memchr::memchr_iter(b'\n', buf).map(|i| i + 1));
    for ls in starts {
        if ls >= buf.len() || !buf[ls].is_ascii_alphabetic() {
            continue;
        }
        let le = memchr::memchr(b'\n', &buf[ls..]).map_or(buf.len(), |p| ls + p);
        let line = &buf[ls..le];
        if headers {
            header(policy, buf, ls, le, out, cont);
        }
        if redis
            && line.len() > 5
            && line[..4].eq_ignore_ascii_case(b"auth")
            && matches!(line[4], b' ' | b'\t')
        {
            inline_auth(buf, ls + 5, le, out, cont);
        }
    }
}

fn header(policy: &Policy, buf: &[u8], ls: usize, le: usize, out: &mut Vec<Span>, cont: &mut Cont) {
    let name_end = buf[ls..le]
        .iter()
        .position(|&b| !is_token_byte(b))
        .map_or(le, |p| ls + p);
    if name_end >= le || buf[name_end] != b':' || name_end - ls > 64 {
        return;
    }
    if !policy.header_denied(&buf[ls..name_end]) {
        return;
    }
    let rule = Detector::HttpHeader.rule();
    let mut start = name_end + 1;
    while start < le && matches!(buf[start], b' ' | b'\t') {
        start += 1;
    }
    let mut end = le;
    while end > start && matches!(buf[end - 1], b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    if end > start {
        out.push(Span { start, end, rule });
    }
    if le == buf.len() {
        cont.line = Some(rule);
    }
}

/// `AUTH password` / `AUTH user password` as a Redis inline command: one or two words.
fn inline_auth(buf: &[u8], from: usize, le: usize, out: &mut Vec<Span>, cont: &mut Cont) {
    let mut start = from;
    while start < le && matches!(buf[start], b' ' | b'\t') {
        start += 1;
    }
    let mut end = le;
    while end > start && matches!(buf[end - 1], b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    let words = buf[start..end]
        .split(|b| matches!(b, b' ' | b'\t'))
        .filter(|w| !w.is_empty())
        .count();
    if !(1..=2).contains(&words) {
        return;
    }
    let rule = Detector::RedisAuth.rule();
    out.push(Span { start, end, rule });
    if le == buf.len() {
        cont.line = Some(rule);
    }
}

/// PEM blocks. A private key's body (between the BEGIN and END lines) is masked; a
/// public block's body is recorded in `exempt` so the entropy detector leaves it alone.
pub(crate) fn pem(
    policy: &Policy,
    buf: &[u8],
    public_open: &mut bool,
    out: &mut Vec<Span>,
    cont: &mut Cont,
    exempt: &mut Vec<(usize, usize)>,
) {
    if *public_open {
        match memmem::find(buf, b"-----END") {
            Some(p) => {
                exempt.push((0, p));
                *public_open = false;
            }
            None => {
                exempt.push((0, buf.len()));
                return;
            }
        }
    }
    let private_on = policy.detector_on(Detector::PrivateKey);
    for begin in memmem::find_iter(buf, b"-----BEGIN ") {
        let label_start = begin + 11;
        let window = &buf[label_start..buf.len().min(label_start + 80)];
        let Some(label_len) = memmem::find(window, b"-----") else {
            continue;
        };
        let label = &window[..label_len];
        let body = label_start + label_len + 5;
        let end = memmem::find(&buf[body..], b"-----END").map(|p| body + p);
        let private = label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK");
        if private {
            if !private_on {
                continue;
            }
            let rule = Detector::PrivateKey.rule();
            let stop = end.unwrap_or(buf.len());
            if stop > body {
                out.push(Span {
                    start: body,
                    end: stop,
                    rule,
                });
            }
            if end.is_none() {
                cont.pem = Some(rule);
            }
        } else {
            exempt.push((body, end.unwrap_or(buf.len())));
            if end.is_none() {
                *public_open = true;
            }
        }
    }
}
