//! Line-shaped detectors: HTTP header lines from the deny-list, Redis inline `AUTH`,
//! and PEM blocks (private key bodies masked, public ones exempt from the entropy check).

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::detector::Detector;
use crate::policy::Policy;
use crate::scan::blocks::{set_bits, window_starts, Masks};
use crate::scan::{Cont, Span};

/// PEM markers other than BEGIN (`begins` finds those from the masks): built once, as
/// building a searcher costs more than searching a short buffer.
pub(crate) static END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"-----END"));
static DASHES: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"-----"));

const fn token_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
                    | b'-'
            );
        b += 1;
    }
    t
}

/// HTTP token bytes (header names).
static TOKEN: [bool; 256] = token_table();

/// Longest header name looked at; `header` rejects longer ones, and so does the config
/// (`extra_headers`).
pub(crate) const MAX_NAME: usize = 64;

/// `masks` are `buf`'s (`blocks::classify`).
pub(crate) fn scan(
    policy: &Policy,
    buf: &[u8],
    masks: &[Masks],
    line_start: bool,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) {
    let headers = policy.detector_on(Detector::HttpHeader);
    let redis = policy.detector_on(Detector::RedisAuth);
    if !headers && !redis {
        return;
    }
    // One pass over the line ends, read from the masks: each gives the end of one line
    // and the start of the next.
    let mut ls = if line_start { Some(0) } else { None };
    let ends = masks
        .iter()
        .enumerate()
        .flat_map(|(k, m)| set_bits(m.newlines).map(move |bit| 64 * k + bit));
    for le in ends.chain(std::iter::once(buf.len())) {
        if let Some(ls) = ls.filter(|&ls| ls < le && buf[ls].is_ascii_alphabetic()) {
            let line = &buf[ls..le];
            if headers {
                header(policy, buf, masks, ls, le, out, cont);
            }
            if redis
                && line.len() > 5
                && line[..4].eq_ignore_ascii_case(b"auth")
                && matches!(line[4], b' ' | b'\t')
            {
                inline_auth(buf, ls + 5, le, out, cont);
            }
        }
        ls = Some(le + 1);
    }
}

fn header(
    policy: &Policy,
    buf: &[u8],
    masks: &[Masks],
    ls: usize,
    le: usize,
    out: &mut Vec<Span>,
    cont: &mut Cont,
) {
    // Key-name bytes are token bytes, so a name made of them alone (most are) is read
    // from the masks; only a name with another token byte is read byte by byte.
    let run = key_bytes_from(masks, ls);
    let name_end = match buf.get(ls + run) {
        _ if run > MAX_NAME => return,
        Some(b':') => ls + run,
        Some(&b) if TOKEN[usize::from(b)] => {
            // A name longer than `MAX_NAME` is rejected wherever it ends, so the search
            // stops one byte past it.
            let limit = le.min(ls + MAX_NAME + 1);
            buf[ls..limit]
                .iter()
                .position(|&b| !TOKEN[usize::from(b)])
                .map_or(limit, |p| ls + p)
        }
        _ => return,
    };
    if name_end >= le || buf[name_end] != b':' || name_end - ls > MAX_NAME {
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

/// How many key-name bytes (`Masks::keys`) follow `at`; past `MAX_NAME`, any count above
/// it.
fn key_bytes_from(masks: &[Masks], at: usize) -> usize {
    let (k, off) = (at / 64, at % 64);
    let run = (masks[k].keys >> off).trailing_ones() as usize;
    if run < 64 - off {
        return run;
    }
    // The run reaches the next block: 64 - off + 64 > MAX_NAME bytes are looked at.
    run + masks
        .get(k + 1)
        .map_or(0, |m| m.keys.trailing_ones() as usize)
}

/// Where `-----BEGIN ` occurs in `buf`, in order: five dashes in a row (`-`/`.` runs of
/// the masks, which may cross into the next block), then the rest compared.
fn begins<'a>(buf: &'a [u8], masks: &'a [Masks]) -> impl Iterator<Item = usize> + 'a {
    masks
        .iter()
        .enumerate()
        .flat_map(move |(k, m)| {
            let next = masks.get(k + 1).map_or(0, |n| n.dash_dot);
            let runs = u128::from(m.dash_dot) | u128::from(next) << 64;
            set_bits(window_starts(runs, 5)).map(move |bit| 64 * k + bit)
        })
        .filter(move |&at| buf[at..].starts_with(b"-----BEGIN "))
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
/// `exempt` comes out sorted and disjoint. Work is linear in the buffer however many
/// BEGIN lines it holds: a block's body ends at the first END after it, so a block that
/// begins inside the previous one of its kind ends where that one does, and is passed over.
pub(crate) fn pem(
    policy: &Policy,
    buf: &[u8],
    masks: &[Masks],
    public_open: &mut bool,
    out: &mut Vec<Span>,
    cont: &mut Cont,
    exempt: &mut Vec<(usize, usize)>,
) {
    if *public_open {
        match END.find(buf) {
            Some(p) => {
                exempt.push((0, p));
                *public_open = false;
            }
            // Still inside the public block, but a private block may begin in it.
            None => exempt.push((0, buf.len())),
        }
    }
    let private_on = policy.detector_on(Detector::PrivateKey);
    // The first END at or after `from`, kept: many BEGIN lines without an END would
    // otherwise each search the rest of the buffer.
    let mut next_end: Option<(usize, Option<usize>)> = None;
    // The end of the last private body masked here.
    let mut masked_to = 0;
    for begin in begins(buf, masks) {
        let label_start = begin + 11;
        let window = &buf[label_start..buf.len().min(label_start + 80)];
        let Some(label_len) = DASHES.find(window) else {
            continue;
        };
        let label = &window[..label_len];
        let body = label_start + label_len + 5;
        let end = match next_end {
            Some((from, end)) if from <= body && end.is_none_or(|e| e >= body) => end,
            _ => {
                let end = END.find(&buf[body..]).map(|p| body + p);
                next_end = Some((body, end));
                end
            }
        };
        let stop = end.unwrap_or(buf.len());
        let private = label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK");
        if private {
            if !private_on {
                continue;
            }
            let rule = Detector::PrivateKey.rule();
            if stop > body && stop > masked_to {
                out.push(Span {
                    start: body,
                    end: stop,
                    rule,
                });
                masked_to = stop;
            }
            if end.is_none() {
                cont.pem = Some(rule);
            }
        } else {
            match exempt.last() {
                Some(&(start, last)) if last >= stop => debug_assert!(start <= body),
                _ => exempt.push((body, stop)),
            }
            if end.is_none() {
                *public_open = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::scan::blocks::classify;

    fn run_pem(buf: &[u8], public_open: &mut bool) -> (Vec<Span>, Cont, Vec<(usize, usize)>) {
        static POLICY: LazyLock<Policy> =
            LazyLock::new(|| Policy::new(&Config::default()).unwrap());
        let (mut out, mut cont, mut exempt) = (Vec::new(), Cont::default(), Vec::new());
        let mut masks = Vec::new();
        classify(buf, &mut masks);
        pem(
            &POLICY,
            buf,
            &masks,
            public_open,
            &mut out,
            &mut cont,
            &mut exempt,
        );
        (out, cont, exempt)
    }

    /// Blocks after one whose END is still ahead, and blocks without an END, each get the
    /// first END after their own body, as when every block searched for its own; a block
    /// inside another of its kind adds nothing.
    #[test]
    fn each_pem_block_ends_at_the_first_end_after_it() {
        let text = "-----BEGIN A-----\nxx -----BEGIN B-----\n-----BEGIN RSA PRIVATE KEY-----\n\
                    AAAA\n-----END RSA PRIVATE KEY-----\n-----BEGIN PUBLIC KEY-----\nBBBB\n\
                    -----END PUBLIC KEY-----\n-----BEGIN PRIVATE KEY-----\nCCCC\n\
                    -----BEGIN EC PRIVATE KEY-----\nDDDD\n";
        let buf = text.as_bytes();
        let at = |s: &str| text.find(s).unwrap();
        let (out, cont, exempt) = run_pem(buf, &mut false);
        let rule = Detector::PrivateKey.rule();
        let rsa_end = at("-----END RSA");
        let rsa_body = at("KEY-----\nAAAA") + 8;
        let last_body = at("KEY-----\nCCCC") + 8;
        assert_eq!(
            out,
            [
                Span {
                    start: rsa_body,
                    end: rsa_end,
                    rule
                },
                Span {
                    start: last_body,
                    end: buf.len(),
                    rule
                },
            ]
        );
        let public_body = at("KEY-----\nBBBB") + 8;
        assert_eq!(
            exempt,
            [
                (at("A-----") + 6, rsa_end),
                (public_body, at("-----END PUBLIC"))
            ]
        );
        assert_eq!(cont.pem, Some(rule));
    }

    /// A private key that begins while a public block left open by an earlier buffer is
    /// still open is masked all the same.
    #[test]
    fn a_private_key_inside_an_open_public_block_is_masked() {
        let mut public_open = false;
        let (_, _, exempt) = run_pem(b"-----BEGIN PUBLIC KEY-----\nMIIB", &mut public_open);
        assert_eq!(exempt, [(26, 31)]);
        assert!(public_open);
        let text = b"xx\n-----BEGIN PRIVATE KEY-----\nsecretsecret\n";
        let (out, cont, exempt) = run_pem(text, &mut public_open);
        let rule = Detector::PrivateKey.rule();
        assert_eq!(
            out,
            [Span {
                start: 30,
                end: text.len(),
                rule
            }]
        );
        assert_eq!(cont.pem, Some(rule));
        assert_eq!(exempt, [(0, text.len())]);
    }

    /// Each private body masked, each public body exempt, from its BEGIN to the first END
    /// after its body (or the buffer's end), found byte by byte here: the same bytes as
    /// `pem`'s spans and ranges, whatever mix of markers and a block left open before.
    fn by_definition(buf: &[u8], open: bool) -> (Vec<bool>, Vec<bool>, bool, bool) {
        let find =
            |from: usize, what: &[u8]| (from..buf.len()).find(|&i| buf[i..].starts_with(what));
        let (mut masked, mut exempt) = (vec![false; buf.len()], vec![false; buf.len()]);
        let mut open_after = open && find(0, b"-----END").is_none();
        if open {
            let end = find(0, b"-----END").unwrap_or(buf.len());
            exempt[..end].fill(true);
        }
        let mut pem_open = false;
        let begins = (0..buf.len()).filter(|&i| buf[i..].starts_with(b"-----BEGIN "));
        for begin in begins {
            let label_start = begin + 11;
            let window = &buf[label_start..buf.len().min(label_start + 80)];
            let Some(label_len) = (0..window.len()).find(|&i| window[i..].starts_with(b"-----"))
            else {
                continue;
            };
            let label = &window[..label_len];
            let body = label_start + label_len + 5;
            let end = find(body, b"-----END");
            let stop = end.unwrap_or(buf.len());
            if label.ends_with(b"PRIVATE KEY") || label.ends_with(b"PRIVATE KEY BLOCK") {
                masked[body..stop.max(body)].fill(true);
                pem_open |= end.is_none();
            } else {
                exempt[body..stop.max(body)].fill(true);
                open_after |= end.is_none();
            }
        }
        (masked, exempt, pem_open, open_after)
    }

    /// `scan`'s spans and continuation by their definition: each line split at `\n` byte by
    /// byte, its header name read as the longest run of token bytes.
    fn lines_by_definition(policy: &Policy, buf: &[u8], line_start: bool) -> (Vec<Span>, Cont) {
        let (mut out, mut cont) = (Vec::new(), Cont::default());
        let rule = Detector::HttpHeader.rule();
        let ends = (0..buf.len()).filter(|&i| buf[i] == b'\n');
        let mut ls = line_start.then_some(0);
        for le in ends.chain(std::iter::once(buf.len())) {
            if let Some(ls) = ls.filter(|&ls| ls < le && buf[ls].is_ascii_alphabetic()) {
                let line = &buf[ls..le];
                let name = line.iter().take_while(|&&b| TOKEN[usize::from(b)]).count();
                if name <= MAX_NAME
                    && line.get(name) == Some(&b':')
                    && policy.header_denied(&line[..name])
                {
                    let blank = |b: &u8| matches!(b, b' ' | b'\t');
                    let start =
                        ls + name + 1 + line[name + 1..].iter().take_while(|b| blank(b)).count();
                    let trailing = line.iter().rev().take_while(|b| blank(b) || **b == b'\r');
                    let end = (le - trailing.count()).max(start);
                    if end > start {
                        out.push(Span { start, end, rule });
                    }
                    if le == buf.len() {
                        cont.line = Some(rule);
                    }
                }
                if line.len() > 5
                    && line[..4].eq_ignore_ascii_case(b"auth")
                    && matches!(line[4], b' ' | b'\t')
                {
                    inline_auth(buf, ls + 5, le, &mut out, &mut cont);
                }
            }
            ls = Some(le + 1);
        }
        (out, cont)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Lines and header names read from the masks find what reading the bytes does,
        /// names crossing 64-byte blocks and past `MAX_NAME` included.
        #[test]
        fn header_lines_by_definition(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "Authorization", "authorization", "Cookie", "X-Api-Key", "Host", "x",
                    "X!Y", "Set~Cookie", "X_Y.Z-1", ":", ": ", " ", "\t", "\r", "\n", "\r\n",
                    "secret", "AUTH ", "auth\t", "=", "/", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                ]),
                0..60,
            ),
            line_start in proptest::bool::ANY,
        ) {
            static POLICY: LazyLock<Policy> =
                LazyLock::new(|| Policy::new(&Config::default()).unwrap());
            let buf = parts.concat().into_bytes();
            let mut masks = Vec::new();
            classify(&buf, &mut masks);
            let (mut out, mut cont) = (Vec::new(), Cont::default());
            scan(&POLICY, &buf, &masks, line_start, &mut out, &mut cont);
            let (want_out, want_cont) = lines_by_definition(&POLICY, &buf, line_start);
            proptest::prop_assert_eq!(out, want_out);
            proptest::prop_assert_eq!(cont, want_cont);
        }

        #[test]
        fn pem_masks_and_exempts_every_block_by_definition(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "-----BEGIN ", "-----END ", "-----", "PRIVATE KEY", "RSA PRIVATE KEY",
                    "PUBLIC KEY", "CERTIFICATE", "PGP PRIVATE KEY BLOCK", "x", "\n", " ", "-",
                ]),
                0..40,
            ),
            open in proptest::bool::ANY,
        ) {
            let buf = parts.concat().into_bytes();
            let mut public_open = open;
            let (out, cont, exempt) = run_pem(&buf, &mut public_open);
            let (want_masked, want_exempt, want_pem, want_open) = by_definition(&buf, open);
            let mut masked = vec![false; buf.len()];
            for span in &out {
                masked[span.start..span.end].fill(true);
            }
            let mut exempted = vec![false; buf.len()];
            for &(start, end) in &exempt {
                exempted[start..end].fill(true);
            }
            proptest::prop_assert_eq!(masked, want_masked);
            proptest::prop_assert_eq!(exempted, want_exempt);
            proptest::prop_assert_eq!(cont.pem.is_some(), want_pem);
            proptest::prop_assert_eq!(public_open, want_open);
            proptest::prop_assert!(exempt.windows(2).all(|w| w[0].1 < w[1].0), "{:?}", exempt);
        }
    }
}
