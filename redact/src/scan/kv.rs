//! Key-based detection: a sensitive key followed by its value, in any of the common
//! spellings — JSON (`"password": "x"`, also numbers, arrays, objects), form and query
//! strings (`password=x&`), conninfo (`host=db password=x`, `Password=x;`), environment
//! lines (`export DB_PASSWORD=x`), YAML and header-like lines (`token: x`), Ruby/PHP
//! hashes (`'password' => 'x'`), XML elements, SQL (`PASSWORD 'x'`) and command-line
//! flags (`--password x`). The value is masked; the key stays.

use crate::detector::{Detector, Rule};
use crate::keys::normalizes_to;
use crate::policy::Policy;
use crate::scan::blocks::Masks;
use crate::scan::key_runs::{for_each_key_run, KeyMemory};
use crate::scan::{byte_set, Cont, ContainerState, QuotedState, Span};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// `"key": v` — JSON and JS objects.
    JsonColon,
    /// `key: v` — YAML, header-like, logs: the value runs to the end of the line.
    LineColon,
    /// `key=v`, `key := v`.
    Equals,
    /// `key => v`.
    Arrow,
    /// `--key v`.
    Flag,
    /// `<key>v</key>`.
    Xml,
    /// `PASSWORD 'v'`.
    Sql,
}

pub(crate) fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Key-value matches in `buf`, looking only at the key runs `for_each_key_run` gives
/// (`masks`: `buf`'s byte classes; `memory`: the stream's memory of the keys it met).
pub(crate) fn scan(
    policy: &Policy,
    buf: &[u8],
    masks: &[Masks],
    memory: &mut KeyMemory,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) {
    let Some(stems) = policy.kv_prefilter() else {
        return;
    };
    let KeyMemory { before, runs } = memory;
    let mut skip_until: usize = 0;
    for_each_key_run(buf, masks, before, |ks, ke| {
        // The reference scan takes the first stem hit in the run that starts at or after
        // `skip_until`; the hits inside the run are the same whether the search starts
        // there or before.
        if stems.in_key_run(buf, ks, ke, skip_until.saturating_sub(ks), runs) {
            visit(policy, buf, ks, ke, &mut skip_until, out, cont);
        }
    });
}

/// The reference: every stem hit in the whole buffer. A run `key_runs` leaves out has no
/// separator after it, so `value` finds nothing there and only `skip_until` moves, to
/// the run's own end.
#[cfg(test)]
pub(crate) fn scan_reference(policy: &Policy, buf: &[u8], out: &mut Vec<Span>, cont: &mut Cont) {
    let Some(prefilter) = policy.kv_prefilter() else {
        return;
    };
    let mut skip_until = 0;
    for hit in prefilter.find_iter(buf) {
        if hit.start() < skip_until {
            continue;
        }
        let (mut ks, mut ke) = (hit.start(), hit.end());
        while ks > 0 && is_key_byte(buf[ks - 1]) {
            ks -= 1;
        }
        while ke < buf.len() && is_key_byte(buf[ke]) {
            ke += 1;
        }
        visit(policy, buf, ks, ke, &mut skip_until, out, cont);
    }
}

/// The key run `ks..ke` holds a stem: if it is a sensitive key, mask its value.
fn visit(
    policy: &Policy,
    buf: &[u8],
    ks: usize,
    ke: usize,
    skip_until: &mut usize,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) {
    let rule = Detector::KeyValue.rule();
    *skip_until = ke;
    let mut kstart = ks;
    while kstart < ke && matches!(buf[kstart], b'-' | b'.') {
        kstart += 1;
    }
    let mut kend = ke;
    while kend > kstart && matches!(buf[kend - 1], b'-' | b'.') {
        kend -= 1;
    }
    let key = &buf[kstart..kend];
    if key.is_empty() || !policy.keys().is_sensitive(key) {
        return;
    }
    let dashed = kstart > ks && (ks == 0 || matches!(buf[ks - 1], b' ' | b'\t' | b'\0' | b'\n'));
    if let Some(end) = value(buf, ks, ke, key, dashed, rule, out, cont) {
        *skip_until = (*skip_until).max(end);
    }
}

/// Finds the separator and value after the key at `ks..ke`; returns where the value ends.
#[expect(clippy::too_many_arguments, reason = "internal helper of `scan`")]
fn value(
    buf: &[u8],
    ks: usize,
    ke: usize,
    key: &[u8],
    dashed: bool,
    rule: Rule,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) -> Option<usize> {
    let len = buf.len();
    let open = ks.checked_sub(1).map(|i| buf[i]);
    let mut i = ke;
    let mut quoted_key = false;
    if let Some(q @ (b'"' | b'\'')) = open {
        if buf.get(i) == Some(&q) {
            i += 1;
            quoted_key = true;
        }
    }
    if open == Some(b'<') && buf.get(i) == Some(&b'>') {
        return unquoted(buf, i + 1, Sep::Xml, rule, out, cont);
    }
    let after_key = i;
    while i < len && matches!(buf[i], b' ' | b'\t') {
        i += 1;
    }
    if i >= len {
        return None;
    }
    let sep = match buf[i] {
        b':' => match buf.get(i + 1) {
            Some(b':') => return None,
            Some(b'/') if buf.get(i + 2) == Some(&b'/') => return None,
            Some(b'=') => {
                i += 2;
                Sep::Equals
            }
            _ => {
                i += 1;
                if quoted_key {
                    Sep::JsonColon
                } else {
                    Sep::LineColon
                }
            }
        },
        b'=' => match buf.get(i + 1) {
            Some(b'=') => return None,
            Some(b'>') => {
                i += 2;
                Sep::Arrow
            }
            _ => {
                i += 1;
                Sep::Equals
            }
        },
        b'\'' if i > after_key && !quoted_key && normalizes_to(key, b"password") => Sep::Sql,
        _ if dashed && !quoted_key && matches!(buf[after_key], b' ' | b'\t' | b'\0') => {
            while i < len && matches!(buf[i], b' ' | b'\t' | b'\0') {
                i += 1;
            }
            Sep::Flag
        }
        _ => return None,
    };
    // Whitespace before the value; JSON-like values may start on the next line.
    let multiline = matches!(sep, Sep::JsonColon | Sep::Arrow);
    while i < len
        && (matches!(buf[i], b' ' | b'\t') || (multiline && matches!(buf[i], b'\r' | b'\n')))
    {
        i += 1;
    }
    if i >= len {
        cont.value = Some(rule);
        return Some(len);
    }
    match buf[i] {
        q @ (b'"' | b'\'' | b'`') => Some(quoted(buf, i + 1, q, rule, out, cont)),
        b'{' | b'[' if sep != Sep::Flag && sep != Sep::Sql => {
            Some(container(buf, i, rule, out, cont))
        }
        _ if sep == Sep::Sql => None,
        _ => {
            let rest = &buf[i..];
            for literal in [&b"true"[..], b"false", b"null"] {
                if rest.starts_with(literal)
                    && rest.get(literal.len()).is_none_or(|&b| !is_key_byte(b))
                {
                    return None;
                }
            }
            // `PWD=/home/user` is the shell's working directory, not a password.
            if rest.first() == Some(&b'/')
                && (normalizes_to(key, b"pwd") || normalizes_to(key, b"oldpwd"))
            {
                return None;
            }
            unquoted(buf, i, sep, rule, out, cont)
        }
    }
}

/// The bytes that end an unquoted value, by separator: a table lookup per byte.
static JSON_ENDS: [bool; 256] = byte_set(b",}] \t\r\n");
static EQUALS_ENDS: [bool; 256] = byte_set(b" \t\r\n&;\"'\0");
static ARROW_ENDS: [bool; 256] = byte_set(b" \t\r\n,;\"'<>)]}");
static FLAG_ENDS: [bool; 256] = byte_set(b" \t\r\n\0");

fn unquoted(
    buf: &[u8],
    start: usize,
    sep: Sep,
    rule: Rule,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) -> Option<usize> {
    let rest = &buf[start..];
    let found = match sep {
        Sep::JsonColon => rest.iter().position(|&b| JSON_ENDS[b as usize]),
        Sep::LineColon => memchr::memchr2(b'\r', b'\n', rest),
        Sep::Equals => rest.iter().position(|&b| EQUALS_ENDS[b as usize]),
        Sep::Arrow => rest.iter().position(|&b| ARROW_ENDS[b as usize]),
        Sep::Flag => rest.iter().position(|&b| FLAG_ENDS[b as usize]),
        Sep::Xml => memchr::memchr(b'<', rest),
        Sep::Sql => memchr::memchr(b'\'', rest),
    };
    let mut end = found.map_or(buf.len(), |p| start + p);
    if end == buf.len() {
        match sep {
            Sep::LineColon => cont.line = Some(rule),
            Sep::Xml => {
                cont.quoted = Some(QuotedState {
                    quote: b'<',
                    escaped: false,
                    rule,
                })
            }
            _ => cont.token = Some(rule),
        }
    }
    if sep == Sep::LineColon {
        while end > start && matches!(buf[end - 1], b' ' | b'\t') {
            end -= 1;
        }
    }
    if end > start {
        out.push(Span { start, end, rule });
    }
    Some(end)
}

/// Masks a quoted value starting after its opening quote; returns where it ends.
pub(crate) fn quoted(
    buf: &[u8],
    start: usize,
    quote: u8,
    rule: Rule,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) -> usize {
    let mut state = QuotedState {
        quote,
        escaped: false,
        rule,
    };
    let close = state.advance(&buf[start..]);
    let resume = mask_to_close(buf, start, close, rule, out);
    if close.is_none() {
        cont.quoted = Some(state);
    }
    resume
}

/// Masks the inside of an array or object starting at its opening bracket.
pub(crate) fn container(
    buf: &[u8],
    open: usize,
    rule: Rule,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) -> usize {
    let mut state = ContainerState {
        depth: 1,
        string: None,
        escaped: false,
        rule,
    };
    let start = open + 1;
    let close = state.advance(&buf[start..]);
    let resume = mask_to_close(buf, start, close, rule, out);
    if close.is_none() {
        cont.container = Some(state);
    }
    resume
}

/// Masks `buf[start..]` up to its closing byte at `start + close` (left unmasked), or to the
/// end of `buf` when the value goes on past it; returns where scanning resumes.
fn mask_to_close(
    buf: &[u8],
    start: usize,
    close: Option<usize>,
    rule: Rule,
    out: &mut Vec<Span>,
) -> usize {
    let (end, resume) = match close {
        Some(close) => (start + close, start + close + 1),
        None => (buf.len(), buf.len()),
    };
    if end > start {
        out.push(Span { start, end, rule });
    }
    resume
}
