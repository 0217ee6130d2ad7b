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
use crate::scan::anchored::AnchoredPattern;
use crate::scan::aws;
use crate::scan::blocks::Masks;
use crate::scan::covering::{Covering, EarlierSpans};
use crate::scan::digits::long_chains;
use crate::scan::entropy::high_entropy;
use crate::scan::prefilter::Triggers;
#[cfg(test)]
use crate::scan::shape::token_runs;
use crate::scan::shape::{aws_secret, basic_credentials, card_numbers, ip_address, valid_ssn};
use crate::scan::tokens::{high_entropy_runs, long_token_runs};
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
    /// `ValueDetectors::gates` computes (reference scan).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "only the reference scan reads it")
    )]
    gate: Option<u32>,
    /// The fast path's gate: a bit of `Triggers::find`, for every built-in pattern
    /// that has a literal to anchor on.
    trigger: Option<u32>,
    /// The same pattern, tried anchored at each of its trigger literals' positions
    /// instead of searched for over the whole buffer, when every match starts at one.
    anchored: Option<AnchoredPattern>,
}

pub(crate) struct ValueDetectors {
    entries: Vec<Entry>,
    triggers: Triggers,
    /// Every gate word, ASCII case-insensitively, and the gate bit of each (reference
    /// scan; the fast path uses `triggers`).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "only the reference scan reads it")
    )]
    gates: AhoCorasick,
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "only the reference scan reads it")
    )]
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
pub(super) fn builtin(detector: Detector) -> &'static [(&'static str, usize)] {
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
        | Detector::RedisAuth
        | Detector::CompressedBody => &[],
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
                let anchored = AnchoredPattern::new(detector, pattern, group);
                entries.push(Entry {
                    rule: detector.rule(),
                    detector: Some(detector),
                    regex,
                    group,
                    gate,
                    trigger: Triggers::gate(detector),
                    anchored,
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
                trigger: None,
                anchored: None,
            });
        }
        let gates = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build(&gate_words)
            .expect("gate words build");
        Ok(ValueDetectors {
            entries,
            triggers: Triggers::new(detectors),
            gates,
            gate_bits,
            cards: detectors.contains(&Detector::CardNumber),
            ssn: detectors.contains(&Detector::Ssn),
            high_entropy: detectors.contains(&Detector::HighEntropy),
        })
    }

    /// Pushes a span for every value-detector match in `buf` (`lower`: it in ASCII lower
    /// case; `masks`: its byte classes). `exempt` are ranges where the high-entropy
    /// detector must not fire (public PEM bodies).
    #[expect(
        clippy::too_many_arguments,
        reason = "the views of one buffer, and scratch"
    )]
    pub(crate) fn scan(
        &self,
        buf: &[u8],
        lower: &[u8],
        masks: &[Masks],
        line_start: bool,
        exempt: &[(usize, usize)],
        scratch: &mut ValueScratch,
        out: &mut Vec<Span>,
    ) {
        let ValueScratch {
            hits,
            long_runs,
            earlier,
        } = scratch;
        let mut earlier = EarlierSpans::new(earlier);
        long_token_runs(buf.len(), masks, long_runs);
        if self.cards || self.ssn {
            long_chains(buf, masks, |start, end, digits| {
                self.digit_chain(buf, start, end, digits, out)
            });
        }
        if self.high_entropy {
            let rule = Detector::HighEntropy.rule();
            let mut covering = Covering::new(rule);
            // Runs come in order and `exempt` is sorted and disjoint (`lines::pem`): the
            // ranges that end before a run are passed over for good.
            let mut exempt = exempt.iter().peekable();
            high_entropy_runs(buf, long_runs, |start, end| {
                while exempt.next_if(|&&(_, e)| e <= start).is_some() {}
                if !covering.holds(&mut earlier, out, start, end)
                    && exempt.peek().is_none_or(|&&(s, _)| s >= end)
                    && high_entropy(buf, start, end, line_start)
                {
                    out.push(Span { start, end, rule });
                }
            });
        }
        let present = self.triggers.find(buf, lower, long_runs, hits);
        for entry in &self.entries {
            match (entry.trigger, &entry.anchored) {
                (Some(bit), _) if present & bit == 0 => {}
                (Some(bit), Some(anchored)) => {
                    let mut covering = Covering::new(entry.rule);
                    anchored.find(
                        buf,
                        hits,
                        bit,
                        out,
                        |out, at| covering.held_to(&mut earlier, out, at),
                        |out, start, end| self.check(entry, buf, start, end, out),
                    )
                }
                _ if entry.detector == Some(Detector::AwsSecretAccessKey) => {
                    aws::keys(buf, long_runs, |start, end| {
                        self.check(entry, buf, start, end, out)
                    })
                }
                _ => self.run(entry, buf, out),
            }
        }
    }

    fn run(&self, entry: &Entry, buf: &[u8], out: &mut Vec<Span>) {
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

    /// The reference for [`scan`](Self::scan): every detector over the whole buffer.
    #[cfg(test)]
    pub(crate) fn scan_reference(
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
            self.run(entry, buf, out);
        }
    }

    /// Maximal runs of digits joined by single spaces or dashes: card numbers and SSNs.
    #[cfg(test)]
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
            self.digit_chain(buf, start, end, digits, out);
            i = end;
        }
    }

    /// The card-number and SSN checks on one chain of `digits` digits.
    fn digit_chain(
        &self,
        buf: &[u8],
        start: usize,
        end: usize,
        digits: usize,
        out: &mut Vec<Span>,
    ) {
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

/// Scratch space `ValueDetectors::scan` reuses from one buffer to the next.
#[derive(Clone, Debug, Default)]
pub(crate) struct ValueScratch {
    hits: Vec<(usize, u32)>,
    /// The buffer's long token runs (`tokens::long_token_runs`), found once for the
    /// high-entropy detector and the trigger search.
    long_runs: Vec<(usize, usize, bool)>,
    /// The spans found before a value detector first asks whether one holds its candidate
    /// (`covering::EarlierSpans`).
    earlier: Vec<(usize, usize, Rule)>,
}

impl ValueScratch {
    /// See `TextState::release_spare`.
    pub(super) fn release_spare(&mut self, keep: usize) {
        super::shrink(&mut self.hits, keep / 64);
        super::shrink(&mut self.long_runs, keep / 64);
        super::shrink(&mut self.earlier, keep / 64);
    }
}

pub(super) fn compile(pattern: &str) -> Result<Regex, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_user_pattern_reason_is_one_line() {
        let err = compile("(unclosed").unwrap_err();
        assert!(!err.contains('\n'));
        assert!(err.contains("unclosed"), "{err}");
    }
}
