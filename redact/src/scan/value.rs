//! Value-based detectors: secrets recognised by their own shape wherever they appear
//! (tokens with vendor prefixes, JWTs, card numbers, high-entropy runs, ...), plus user
//! rules. Patterns without a literal to anchor on are gated by a cheap literal search
//! (`://` before URL userinfo, an AWS hint before a 40-character secret), and the
//! detectors that would otherwise start a match at every digit or letter (card numbers,
//! SSNs, high-entropy runs) are byte-class scans instead of regexes.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use regex::bytes::{Regex, RegexBuilder};

use crate::config::one_line;
use crate::detector::{Detector, Rule};
use crate::scan::Span;

/// Upper bound on a compiled pattern (user rules included), so a config cannot make the
/// daemon allocate without limit.
const REGEX_SIZE_LIMIT: usize = 4 * 1024 * 1024;

struct Entry {
    rule: Rule,
    detector: Option<Detector>,
    regex: Regex,
    /// Which capture group is the secret (0: the whole match).
    group: usize,
    /// The pattern can only match if one of its gate words occurs: a bit in the mask
    /// `ValueDetectors::gates` computes.
    gate: Option<u32>,
}

pub(crate) struct ValueDetectors {
    entries: Vec<Entry>,
    /// Every gate word, ASCII case-insensitively, and the gate bit of each.
    gates: AhoCorasick,
    gate_bits: Vec<u32>,
    cards: bool,
    ssn: bool,
    high_entropy: bool,
}

/// Literals one of which must be present for the detector's pattern to match.
fn gate(detector: Detector) -> Option<&'static [&'static str]> {
    match detector {
        Detector::AwsSecretAccessKey => Some(&["aws", "amazon", "akia", "asia"]),
        Detector::UrlPassword => Some(&["://"]),
        Detector::Bearer => Some(&["bearer"]),
        Detector::BasicAuth => Some(&["basic"]),
        Detector::Email => Some(&["@"]),
        Detector::KeyValue => Some(&["identified"]),
        _ => None,
    }
}

/// Built-in patterns. `(?-u)`: ASCII classes and word boundaries, any byte matched.
fn builtin(detector: Detector) -> &'static [(&'static str, usize)] {
    match detector {
        Detector::Jwt => &[(
            r"(?-u)eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
            0,
        )],
        Detector::AwsAccessKeyId => &[(
            r"(?-u)\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}\b",
            0,
        )],
        Detector::AwsSecretAccessKey => &[(
            r"(?-u)(?:^|[^A-Za-z0-9/+=])([A-Za-z0-9/+]{40})(?:$|[^A-Za-z0-9/+=])",
            1,
        )],
        Detector::GithubToken => &[(
            r"(?-u)\b(?:(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,251}|github_pat_[A-Za-z0-9_]{22,255})\b",
            0,
        )],
        Detector::SlackToken => &[
            (
                r"(?-u)\b(?:xox[abposr]-[A-Za-z0-9-]{10,250}|xapp-[0-9]-[A-Za-z0-9-]{10,250})",
                0,
            ),
            (
                r"(?-u)hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9/_-]{8,})",
                1,
            ),
        ],
        Detector::StripeKey => &[(
            r"(?-u)\b(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9]{20,})\b",
            0,
        )],
        Detector::GoogleApiKey => &[(
            r"(?-u)\b(?:AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{20,})",
            0,
        )],
        Detector::VendorToken => &[(
            concat!(
                r"(?-u)\b(?:glpat-[0-9A-Za-z_-]{20,}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z]{30,}",
                r"|sk-(?:proj-|ant-(?:api|admin)[0-9]{2}-)?[A-Za-z0-9_-]{32,}",
                r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
                r"|dop_v1_[a-f0-9]{64}|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}|hvs\.[A-Za-z0-9_-]{24,})"
            ),
            0,
        )],
        Detector::UrlPassword => &[(
            r#"(?-u)\b[A-Za-z][A-Za-z0-9+.-]{1,30}://[^\s/?#@:'"<>]*:([^\s/?#@'"<>]+)@"#,
            1,
        )],
        Detector::Bearer => &[(r"(?i-u)\bbearer[ \t]+([A-Za-z0-9._~+/=-]{8,})", 1)],
        Detector::BasicAuth => &[(r"(?i-u)\bbasic[ \t]+([A-Za-z0-9+/]{4,}={0,2})", 1)],
        Detector::KeyValue => &[(
            r"(?i-u)\bidentified[ \t]+(?:with[ \t]+[A-Za-z0-9_]+[ \t]+)?by[ \t]+'([^'\n]*)'",
            1,
        )],
        Detector::Email => &[(
            r"(?-u)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b",
            0,
        )],
        Detector::Phone => &[(
            concat!(
                r"(?-u)(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{3}\)[ .-]?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}\b",
                r"|\+[0-9]{8,15}\b"
            ),
            0,
        )],
        Detector::IpAddress => &[
            (r"(?-u)\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b", 0),
            (r"(?-u)[0-9A-Fa-f]*:[0-9A-Fa-f:]*:[0-9A-Fa-f]*", 0),
        ],
        Detector::HttpHeader
        | Detector::CardNumber
        | Detector::Ssn
        | Detector::HighEntropy
        | Detector::PrivateKey
        | Detector::PostgresPassword
        | Detector::RedisAuth => &[],
    }
}

/// A user rule that failed to compile; `reason` is one line.
pub(crate) struct BadPattern {
    pub(crate) index: usize,
    pub(crate) reason: String,
}

impl ValueDetectors {
    /// `user` are (rule, pattern) pairs in config order.
    pub(crate) fn new(
        detectors: &[Detector],
        user: &[(Rule, &str)],
    ) -> Result<ValueDetectors, BadPattern> {
        let mut entries = Vec::new();
        let mut gate_words: Vec<&str> = Vec::new();
        let mut gate_bits: Vec<u32> = Vec::new();
        for &detector in detectors {
            for &(pattern, group) in builtin(detector) {
                let regex = compile(pattern).expect("built-in patterns compile");
                let gate = gate(detector).map(|words| {
                    let bit = 1u32 << (detector as u32);
                    for w in words {
                        gate_words.push(w);
                        gate_bits.push(bit);
                    }
                    bit
                });
                entries.push(Entry {
                    rule: detector.rule(),
                    detector: Some(detector),
                    regex,
                    group,
                    gate,
                });
            }
        }
        for (index, &(rule, pattern)) in user.iter().enumerate() {
            let regex = compile(pattern).map_err(|reason| BadPattern { index, reason })?;
            let group = regex
                .capture_names()
                .position(|name| name == Some("secret"))
                .unwrap_or(0);
            entries.push(Entry {
                rule,
                detector: None,
                regex,
                group,
                gate: None,
            });
        }
        let gates = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(&gate_words)
            .expect("gate words build");
        Ok(ValueDetectors {
            entries,
            gates,
            gate_bits,
            cards: detectors.contains(&Detector::CardNumber),
            ssn: detectors.contains(&Detector::Ssn),
            high_entropy: detectors.contains(&Detector::HighEntropy),
        })
    }

    /// Pushes a span for every value-detector match in `buf`. `exempt` are ranges where
    /// the high-entropy detector must not fire (public PEM bodies).
    pub(crate) fn scan(
        &self,
        buf: &[u8],
        line_start: bool,
        exempt: &[(usize, usize)],
        out: &mut Vec<Span>,
    ) {
        if self.cards || self.ssn {
            self.digit_runs(buf, out);
        }
        if self.high_entropy {
            token_runs(buf, |start, end| {
                if !exempt.iter().any(|&(s, e)| start < e && s < end)
                    && high_entropy(buf, start, end, line_start)
                {
                    out.push(Span {
                        start,
                        end,
                        rule: Detector::HighEntropy.rule(),
                    });
                }
            });
        }
        let all: u32 = self.gate_bits.iter().fold(0, |a, b| a | b);
        let mut present = 0u32;
        if all != 0 {
            for m in self.gates.find_iter(buf) {
                present |= self.gate_bits[m.pattern().as_usize()];
                if present == all {
                    break;
                }
            }
        }
        for entry in &self.entries {
            if entry.gate.is_some_and(|bit| present & bit == 0) {
                continue;
            }
            if entry.group == 0 {
                for m in entry.regex.find_iter(buf) {
                    self.check(entry, buf, m.start(), m.end(), out);
                }
            } else {
                for caps in entry.regex.captures_iter(buf) {
                    if let Some(m) = caps.get(entry.group) {
                        self.check(entry, buf, m.start(), m.end(), out);
                    }
                }
            }
        }
    }

    /// Maximal runs of digits joined by single spaces or dashes: card numbers and SSNs.
    fn digit_runs(&self, buf: &[u8], out: &mut Vec<Span>) {
        let mut i = 0;
        while let Some(p) = buf[i..].iter().position(u8::is_ascii_digit) {
            let start = i + p;
            let mut end = start + 1;
            let mut digits = 1;
            loop {
                match (buf.get(end), buf.get(end + 1)) {
                    (Some(b), _) if b.is_ascii_digit() => {
                        end += 1;
                        digits += 1;
                    }
                    (Some(b' ' | b'-'), Some(b)) if b.is_ascii_digit() => {
                        end += 2;
                        digits += 1;
                    }
                    _ => break,
                }
            }
            if self.cards && digits >= 13 {
                card_numbers(buf, start, end, |s, e| {
                    out.push(Span {
                        start: s,
                        end: e,
                        rule: Detector::CardNumber.rule(),
                    })
                });
            }
            if self.ssn && end - start == 11 && digits == 9 && valid_ssn(buf, start, end) {
                out.push(Span {
                    start,
                    end,
                    rule: Detector::Ssn.rule(),
                });
            }
            i = end;
        }
    }

    fn check(&self, entry: &Entry, buf: &[u8], start: usize, end: usize, out: &mut Vec<Span>) {
        if start == end {
            return;
        }
        let rule = entry.rule;
        let push = |out: &mut Vec<Span>, start, end| out.push(Span { start, end, rule });
        let ok = match entry.detector {
            None => true,
            Some(Detector::AwsSecretAccessKey) => aws_secret(buf, start, end),
            Some(Detector::Bearer) => buf[start..end]
                .iter()
                .any(|b| b.is_ascii_digit() || b"._~+/=-".contains(b)),
            Some(Detector::BasicAuth) => basic_credentials(&buf[start..end]),
            Some(Detector::Phone) => start == 0 || !buf[start - 1].is_ascii_alphanumeric(),
            Some(Detector::IpAddress) => ip_address(buf, start, end),
            Some(_) => true,
        };
        if ok {
            push(out, start, end);
        }
    }
}

fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| regex_reason(&error))
}

/// The regex crate's syntax errors are several lines (pattern, caret, message); keep the
/// message line.
fn regex_reason(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => {
            let line = text
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with("error:"))
                .unwrap_or(text);
            one_line(line.trim_start().trim_start_matches("error:"))
        }
        other => one_line(&other.to_string()),
    }
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Card numbers: digit groups separated by single spaces or dashes. A candidate is one
/// group of 13–19 digits, or consecutive groups of 3–6 digits adding up to 13–19; it must
/// pass the Luhn check and start like an issued card (2221–2720, 3, 4, 5, 6).
fn card_numbers(buf: &[u8], start: usize, end: usize, mut emit: impl FnMut(usize, usize)) {
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

pub(crate) fn luhn(digits: &[u8]) -> bool {
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
fn valid_ssn(buf: &[u8], start: usize, end: usize) -> bool {
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
fn aws_secret(buf: &[u8], start: usize, end: usize) -> bool {
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
fn basic_credentials(b64: &[u8]) -> bool {
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

fn is_token_run_byte(b: u8) -> bool {
    TOKEN_RUN[b as usize]
}

/// Runs of 20 or more `[A-Za-z0-9+/_-]` bytes, with up to two `=` of padding.
fn token_runs(buf: &[u8], mut emit: impl FnMut(usize, usize)) {
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
fn high_entropy(buf: &[u8], start: usize, end: usize, line_start: bool) -> bool {
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

fn ip_address(buf: &[u8], start: usize, end: usize) -> bool {
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

    #[test]
    fn bad_user_pattern_reason_is_one_line() {
        let err = compile("(unclosed").unwrap_err();
        assert!(!err.contains('\n'));
        assert!(err.contains("unclosed"), "{err}");
    }
}
