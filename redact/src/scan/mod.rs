//! Text scanning: finds what to mask in a run of bytes. The stream layer hands it a
//! buffer that ends at a natural cut (a line end, the end of a protocol message) or at a
//! forced one (a hold-back bound, a gap, the end of recording), together with the state
//! carried from the previous buffer. Scanning never changes lengths: it only reports
//! spans, and the caller replaces their bytes with the mask byte.
//!
//! What crosses a cut is carried in [`Cont`]: a value, quoted string, array or private
//! key block that has started but not ended, so its remainder is masked when it arrives.

mod anchored;
mod aws;
pub(crate) mod blocks;
mod covering;
#[cfg(test)]
mod differential;
mod digits;
mod entropy;
mod extent;
mod key_runs;
mod kv;
mod lines;
mod prefilter;
mod shape;
mod tokens;
mod value;

use key_runs::KeyMemory;
pub(crate) use key_runs::KeyStems;
pub(crate) use lines::MAX_NAME as MAX_HEADER_NAME;
pub(crate) use value::ValueDetectors;
use value::ValueScratch;

use blocks::{classify, Masks};

use crate::detector::{Rule, FAIL_CLOSED};
use crate::keys::normalize;
use crate::policy::Policy;

/// Bytes `start..end` of the scanned buffer are masked under `rule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) rule: Rule,
}

/// How the scanned buffer ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// At a line end: only multi-line constructs (strings, arrays, key blocks, a value
    /// still to come after `"key":`) carry over.
    Line,
    /// At the end of a complete message or of the stream: nothing carries over.
    Complete,
    /// At an arbitrary point because a bound was hit or bytes were lost: everything that
    /// could still be part of a secret is masked now, and its remainder later.
    Forced,
}

/// Bytes that end a candidate at a forced cut, and its continuation after it. Only
/// whitespace, NUL and quotes: passwords contain every other punctuation (`(`, `;`, `,`
/// ...), so a run that might be one extends across them.
pub(crate) const RUN_SEPARATORS: &[u8] = b" \t\r\n\x0b\x0c\0\"'`";

fn is_separator(b: u8) -> bool {
    SEPARATOR[usize::from(b)]
}

static SEPARATOR: [bool; 256] = byte_set(RUN_SEPARATORS);

/// A table of which bytes are in `bytes`: one lookup per byte where a loop would search
/// the set (a `memchr` call) for every byte it reads.
pub(crate) const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

/// An open quoted string: masked up to the closing quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QuotedState {
    pub(crate) quote: u8,
    pub(crate) escaped: bool,
    pub(crate) rule: Rule,
}

impl QuotedState {
    /// Index of the closing quote in `bytes`, or `None` (state updated) if still open.
    pub(crate) fn advance(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' && self.quote != b'<' {
                self.escaped = true;
            } else if b == self.quote {
                return Some(i);
            }
        }
        None
    }
}

/// An open JSON array or object: masked up to its closing bracket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContainerState {
    pub(crate) depth: u32,
    pub(crate) string: Option<u8>,
    pub(crate) escaped: bool,
    pub(crate) rule: Rule,
}

impl ContainerState {
    pub(crate) fn advance(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(q) = self.string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == q {
                    self.string = None;
                }
                continue;
            }
            match b {
                b'"' | b'\'' => self.string = Some(b),
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// What must be masked at the start of the next buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cont {
    /// The rest of a token run.
    pub(crate) token: Option<Rule>,
    /// The rest of the line.
    pub(crate) line: Option<Rule>,
    pub(crate) quoted: Option<QuotedState>,
    pub(crate) container: Option<ContainerState>,
    /// A value that has not started yet (`"password":` then a line break).
    pub(crate) value: Option<Rule>,
    /// The body of a private key block, up to its END line.
    pub(crate) pem: Option<Rule>,
}

impl Cont {
    /// Keeps what is already open (it started earlier) and adds the rest.
    fn merge(&mut self, other: Cont) {
        self.token = self.token.or(other.token);
        self.line = self.line.or(other.line);
        self.quoted = self.quoted.or(other.quoted);
        self.container = self.container.or(other.container);
        self.value = self.value.or(other.value);
        self.pem = self.pem.or(other.pem);
    }

    /// Masks the continuation of everything open in `buf[start..]`; what is still open at
    /// the end of `buf` stays in `self`.
    fn apply(&mut self, buf: &[u8], start: usize, out: &mut Vec<Span>) {
        let len = buf.len();
        let span = |end: usize, rule: Rule, out: &mut Vec<Span>| {
            if end > start {
                out.push(Span { start, end, rule });
            }
        };
        if let Some(rule) = self.token {
            let end = buf[start..]
                .iter()
                .position(|&b| is_separator(b))
                .map_or(len, |p| start + p);
            span(end, rule, out);
            if end < len {
                self.token = None;
            }
        }
        if let Some(rule) = self.line {
            let end = memchr::memchr2(b'\r', b'\n', &buf[start..]).map_or(len, |p| start + p);
            span(end, rule, out);
            if end < len {
                self.line = None;
            }
        }
        if let Some(mut state) = self.quoted {
            match state.advance(&buf[start..]) {
                Some(p) => {
                    span(start + p, state.rule, out);
                    self.quoted = None;
                }
                None => {
                    span(len, state.rule, out);
                    self.quoted = Some(state);
                }
            }
        }
        if let Some(mut state) = self.container {
            match state.advance(&buf[start..]) {
                Some(p) => {
                    span(start + p, state.rule, out);
                    self.container = None;
                }
                None => {
                    span(len, state.rule, out);
                    self.container = Some(state);
                }
            }
        }
        if let Some(rule) = self.pem {
            match lines::END.find(&buf[start..]) {
                Some(p) => {
                    span(start + p, rule, out);
                    self.pem = None;
                }
                None => span(len, rule, out),
            }
        }
        if let Some(rule) = self.value.take() {
            let mut p = start;
            while p < len && buf[p].is_ascii_whitespace() {
                p += 1;
            }
            if p == len {
                self.value = Some(rule);
                return;
            }
            let mut next = Cont::default();
            match buf[p] {
                q @ (b'"' | b'\'' | b'`') => {
                    kv::quoted(buf, p + 1, q, rule, out, &mut next);
                }
                b'{' | b'[' => {
                    kv::container(buf, p, rule, out, &mut next);
                }
                _ => {
                    let end = buf[p..]
                        .iter()
                        .position(|&b| is_separator(b) || b == b'&')
                        .map_or(len, |e| p + e);
                    out.push(Span {
                        start: p,
                        end,
                        rule,
                    });
                    if end == len {
                        next.token = Some(rule);
                    }
                }
            }
            self.merge(next);
        }
    }
}

/// Scanner state carried from one buffer of a stream to the next.
#[derive(Clone, Debug, Default)]
pub(crate) struct TextState {
    pub(crate) cont: Cont,
    /// Inside a public PEM block (certificate, public key): its base64 is not a secret.
    pub(crate) public_pem: bool,
    scratch: Scratch,
}

impl TextState {
    /// The state of a new stream; the scratch buffers keep their capacity.
    pub(crate) fn reset(&mut self) {
        let TextState {
            cont,
            public_pem,
            scratch: _,
        } = self;
        *cont = Cont::default();
        *public_pem = false;
    }

    /// Frees what the scan's buffers keep beyond about `keep` bytes of scanned text: they
    /// grow to the largest stretch scanned (a copy of it, and a mask word per 64 bytes).
    /// Their contents are never read before the next scan refills them. The memory of
    /// keys goes too: it only saves work, and is made again at the next scan.
    pub(crate) fn release_spare(&mut self, keep: usize) {
        let scratch = &mut self.scratch;
        shrink(&mut scratch.lower, keep);
        shrink(&mut scratch.exempt, keep / 64);
        shrink(&mut scratch.masks, keep / 64);
        scratch.keys = None;
        scratch.values.release_spare(keep);
    }
}

/// Empties a scratch buffer and frees its capacity past `keep` items.
pub(crate) fn shrink<T>(buffer: &mut Vec<T>, keep: usize) {
    buffer.clear();
    buffer.shrink_to(keep);
}

/// Buffers the scan reuses from one call to the next, so a stream's steady state does not
/// allocate per piece.
#[derive(Clone, Debug, Default)]
struct Scratch {
    exempt: Vec<(usize, usize)>,
    /// The buffer in ASCII lower case, for the trigger literals' search.
    lower: Vec<u8>,
    /// The buffer's byte classes (`blocks`), shared by the key-value and value scans.
    masks: Vec<Masks>,
    /// The key-value scan's memory of the keys it met last.
    keys: Option<Box<KeyMemory>>,
    values: ValueScratch,
}

/// Scans `buf`, of which `buf[..start]` is context already decided (its spans are
/// ignored by the caller) and `buf[start..]` is new. `line_start`: `buf[0]` starts a
/// line. Pushes spans in `buf` coordinates and updates `state` for the next buffer.
pub(crate) fn scan(
    policy: &Policy,
    buf: &[u8],
    start: usize,
    line_start: bool,
    end: End,
    state: &mut TextState,
    out: &mut Vec<Span>,
) {
    let mut cont = std::mem::take(&mut state.cont);
    cont.apply(buf, start, out);
    let mut found = Cont::default();
    let scratch = &mut state.scratch;
    scratch.exempt.clear();
    classify(buf, &mut scratch.masks);
    lines::pem(
        policy,
        buf,
        &scratch.masks,
        &mut state.public_pem,
        out,
        &mut found,
        &mut scratch.exempt,
    );
    lines::scan(policy, buf, &scratch.masks, line_start, out, &mut found);
    let lower = &mut scratch.lower;
    lower.clear();
    lower.extend_from_slice(buf);
    lower.make_ascii_lowercase();
    #[cfg(test)]
    if policy.reference_scan() {
        kv::scan_reference(policy, buf, out, &mut found);
        policy
            .values()
            .scan_reference(buf, line_start, &scratch.exempt, out);
        return finish(policy, buf, start, end, state, cont, found, out);
    }
    kv::scan(
        policy,
        buf,
        &scratch.masks,
        scratch.keys.get_or_insert_with(Box::default),
        out,
        &mut found,
    );
    policy.values().scan(
        buf,
        lower,
        &scratch.masks,
        line_start,
        &scratch.exempt,
        &mut scratch.values,
        out,
    );
    finish(policy, buf, start, end, state, cont, found, out);
}

/// Fail-closed tail masking and what carries over to the next buffer.
#[expect(clippy::too_many_arguments, reason = "the tail of `scan`")]
fn finish(
    policy: &Policy,
    buf: &[u8],
    start: usize,
    end: End,
    state: &mut TextState,
    mut cont: Cont,
    mut found: Cont,
    out: &mut Vec<Span>,
) {
    if end == End::Forced {
        tail(policy, buf, start, out, &mut found);
    }
    cont.merge(found);
    match end {
        End::Line => {
            cont.token = None;
            cont.line = None;
        }
        End::Complete => {
            cont = Cont::default();
            state.public_pem = false;
        }
        End::Forced => {}
    }
    state.cont = cont;
}

/// Fail-closed masking at a forced cut: the trailing token run, a trailing run of digit
/// groups (a card or phone number in the making), and a trailing keyword that announces
/// a credential (`Bearer `, `--password `) make their continuation masked too.
fn tail(policy: &Policy, buf: &[u8], start: usize, out: &mut Vec<Span>, cont: &mut Cont) {
    let len = buf.len();
    let mut s = len;
    while s > start && !is_separator(buf[s - 1]) {
        s -= 1;
    }
    if s < len {
        // `key=val` cut inside the value: the key is not part of the candidate.
        let run = &buf[s..];
        let from = match memchr::memrchr(b'=', run) {
            Some(q) => {
                let k = run[..q]
                    .iter()
                    .rposition(|b| b"&?;/".contains(b))
                    .map_or(0, |p| p + 1);
                let key = &run[k..q];
                if !key.is_empty() && key.iter().all(|&b| kv::is_key_byte(b)) {
                    s + q + 1
                } else {
                    s
                }
            }
            None => s,
        };
        out.push(Span {
            start: from,
            end: len,
            rule: FAIL_CLOSED,
        });
        cont.token = cont.token.or(Some(FAIL_CLOSED));
    }
    let mut d = len;
    while d > start && (buf[d - 1].is_ascii_digit() || b" \t.()+-/".contains(&buf[d - 1])) {
        d -= 1;
    }
    if let Some(first) = buf[d..].iter().position(u8::is_ascii_digit) {
        out.push(Span {
            start: d + first,
            end: len,
            rule: FAIL_CLOSED,
        });
        cont.token = cont.token.or(Some(FAIL_CLOSED));
    }
    let mut e = len;
    while e > 0 && matches!(buf[e - 1], b' ' | b'\t' | b'\0') {
        e -= 1;
    }
    if e < len && e > 0 {
        let mut w = e;
        while w > 0 && kv::is_key_byte(buf[w - 1]) {
            w -= 1;
        }
        let word = &buf[w..e];
        let norm = normalize(word);
        let announces = matches!(
            &norm[..],
            b"bearer" | b"basic" | b"auth" | b"by" | b"password"
        ) || (word.first() == Some(&b'-') && policy.keys().is_sensitive(word));
        if announces {
            cont.value = cont.value.or(Some(FAIL_CLOSED));
        }
    }
}

#[cfg(test)]
mod tests;
