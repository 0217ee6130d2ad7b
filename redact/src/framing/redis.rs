//! Redis client commands in RESP (`*N\r\n$len\r\narg\r\n...`), recognised when a stream
//! starts with `*`. Masked arguments: everything after `AUTH`; the password after
//! `HELLO <ver> AUTH <user>`; `MIGRATE ... AUTH <pw>` / `AUTH2 <user> <pw>`; the value of
//! `CONFIG SET requirepass|masterauth|...`; the rules of `ACL SETUSER`. Command names
//! are matched case-insensitively and never masked. Inline commands (`AUTH pw\r\n`) are
//! text and handled by the line scanner.

use crate::detector::Detector;
use crate::framing::Mask;

const ARG_CAPTURE: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Sniff,
    Off,
    Star,
    Count {
        n: u64,
    },
    CountLf {
        n: u64,
    },
    Dollar,
    Len {
        n: u64,
        null: bool,
    },
    LenLf {
        n: u64,
        null: bool,
    },
    Bulk {
        remaining: u64,
        mask: bool,
    },
    BulkCr,
    BulkLf,
    /// Lost the framing: skip to the next line (masking it if a secret was due), then
    /// expect `*` again.
    Resync {
        mask: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Other,
    Auth,
    Hello,
    Migrate,
    Config,
    Acl,
}

#[derive(Debug)]
pub(crate) struct Resp {
    state: State,
    cmd: Cmd,
    args_left: u64,
    arg_idx: u64,
    arg: [u8; ARG_CAPTURE],
    arg_len: usize,
    prev_arg: [u8; ARG_CAPTURE],
    prev_len: usize,
    /// Index of an argument that must be masked (HELLO/MIGRATE forms).
    mask_at: Option<u64>,
    config_set: bool,
    acl_setuser: bool,
}

impl Default for Resp {
    fn default() -> Self {
        Resp {
            state: State::Sniff,
            cmd: Cmd::Other,
            args_left: 0,
            arg_idx: 0,
            arg: [0; ARG_CAPTURE],
            arg_len: 0,
            prev_arg: [0; ARG_CAPTURE],
            prev_len: 0,
            mask_at: None,
            config_set: false,
            acl_setuser: false,
        }
    }
}

impl Resp {
    /// Gave up on the stream for good: it is not RESP.
    pub(crate) fn off(&self) -> bool {
        matches!(self.state, State::Off)
    }

    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        base: u64,
        masks: &mut Vec<Mask>,
        cuts: &mut Vec<u64>,
    ) {
        let rule = Detector::RedisAuth.rule();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let at = base + i as u64;
            i += 1;
            self.state = match self.state {
                State::Off => return,
                State::Sniff | State::Star if b == b'*' => State::Count { n: 0 },
                State::Sniff => State::Off,
                State::Star => State::Resync { mask: false },
                State::Count { n } if b.is_ascii_digit() => State::Count {
                    n: n.saturating_mul(10).saturating_add(u64::from(b - b'0')),
                },
                State::Count { n } if b == b'\r' => State::CountLf { n },
                State::CountLf { n } if b == b'\n' => {
                    self.start_command(n);
                    if n == 0 {
                        cuts.push(at + 1);
                        State::Star
                    } else {
                        State::Dollar
                    }
                }
                State::Dollar if b == b'$' => State::Len { n: 0, null: false },
                State::Len { n, null } if b.is_ascii_digit() => State::Len {
                    n: n.saturating_mul(10).saturating_add(u64::from(b - b'0')),
                    null,
                },
                State::Len { n: 0, null: false } if b == b'-' => State::Len { n: 0, null: true },
                State::Len { n, null } if b == b'\r' => State::LenLf { n, null },
                State::LenLf { n, null } if b == b'\n' => {
                    if null {
                        self.finish_arg(at + 1, cuts)
                    } else {
                        self.arg_len = 0;
                        let mask = self.masks_next();
                        if n == 0 {
                            State::BulkCr
                        } else {
                            State::Bulk { remaining: n, mask }
                        }
                    }
                }
                State::Bulk { remaining, mask } => {
                    let take = (remaining as usize).min(bytes.len() - (i - 1));
                    let chunk = &bytes[i - 1..i - 1 + take];
                    if mask {
                        masks.push(Mask {
                            start: at,
                            end: at + take as u64,
                            rule,
                        });
                    }
                    let room = ARG_CAPTURE - self.arg_len;
                    let keep = room.min(take);
                    self.arg[self.arg_len..self.arg_len + keep].copy_from_slice(&chunk[..keep]);
                    self.arg_len += keep;
                    i += take - 1;
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        State::BulkCr
                    } else {
                        State::Bulk { remaining, mask }
                    }
                }
                State::BulkCr if b == b'\r' => State::BulkLf,
                State::BulkLf if b == b'\n' => self.finish_arg(at + 1, cuts),
                State::Resync { mask } => {
                    // The rest of the line at once: a traced program can send lines of
                    // any length here, and a mask per byte cost a redaction record each.
                    let from = i - 1;
                    let line_end =
                        memchr::memchr(b'\n', &bytes[from..]).map_or(bytes.len(), |p| from + p);
                    if mask {
                        mask_line(&bytes[from..line_end], at, masks);
                    }
                    i = (line_end + 1).min(bytes.len());
                    if line_end < bytes.len() {
                        State::Star
                    } else {
                        State::Resync { mask }
                    }
                }
                // A bare line feed ends the line the framing broke on: the secret due, if
                // any, is on the next (a client that ends lines with `\n` alone).
                _ if b == b'\n' => State::Resync {
                    mask: self.masks_next(),
                },
                _ => {
                    // Resync from this byte, which may be the secret's first.
                    i -= 1;
                    State::Resync {
                        mask: self.masks_next(),
                    }
                }
            };
        }
    }

    fn start_command(&mut self, n: u64) {
        self.cmd = Cmd::Other;
        self.args_left = n;
        self.arg_idx = 0;
        self.mask_at = None;
        self.config_set = false;
        self.acl_setuser = false;
        self.prev_len = 0;
    }

    /// Whether the argument about to start is a secret.
    fn masks_next(&self) -> bool {
        let i = self.arg_idx;
        if i == 0 {
            return false;
        }
        match self.cmd {
            Cmd::Auth => true,
            Cmd::Hello | Cmd::Migrate => self.mask_at == Some(i),
            Cmd::Config => {
                let name = &self.prev_arg[..self.prev_len];
                self.config_set
                    && i >= 3
                    && i % 2 == 1
                    && [
                        &b"requirepass"[..],
                        b"masterauth",
                        b"tls-key-file-pass",
                        b"tls-client-key-file-pass",
                    ]
                    .iter()
                    .any(|n| name.eq_ignore_ascii_case(n))
            }
            Cmd::Acl => self.acl_setuser && i >= 3,
            Cmd::Other => false,
        }
    }

    fn finish_arg(&mut self, at: u64, cuts: &mut Vec<u64>) -> State {
        let arg = &self.arg[..self.arg_len];
        let is = |word: &[u8]| arg.eq_ignore_ascii_case(word);
        match (self.arg_idx, self.cmd) {
            (0, _) => {
                self.cmd = if is(b"AUTH") {
                    Cmd::Auth
                } else if is(b"HELLO") {
                    Cmd::Hello
                } else if is(b"MIGRATE") {
                    Cmd::Migrate
                } else if is(b"CONFIG") {
                    Cmd::Config
                } else if is(b"ACL") {
                    Cmd::Acl
                } else {
                    Cmd::Other
                }
            }
            (1, Cmd::Config) => self.config_set = is(b"SET"),
            (1, Cmd::Acl) => self.acl_setuser = is(b"SETUSER"),
            (k, Cmd::Hello) if k >= 2 && is(b"AUTH") => self.mask_at = Some(k + 2),
            (k, Cmd::Migrate) if is(b"AUTH") => self.mask_at = Some(k + 1),
            (k, Cmd::Migrate) if is(b"AUTH2") => self.mask_at = Some(k + 2),
            _ => {}
        }
        self.prev_arg = self.arg;
        self.prev_len = self.arg_len;
        self.arg_len = 0;
        self.arg_idx += 1;
        self.args_left = self.args_left.saturating_sub(1);
        if self.args_left == 0 {
            cuts.push(at);
            State::Star
        } else {
            State::Dollar
        }
    }

    pub(crate) fn gap(&mut self, len: u64) {
        self.state = match self.state {
            State::Off | State::Sniff => State::Off,
            State::Bulk { remaining, mask } if len < remaining => State::Bulk {
                remaining: remaining - len,
                mask,
            },
            State::Bulk { remaining, .. } if len == remaining => State::BulkCr,
            State::Bulk { mask, .. } => State::Resync { mask },
            _ => State::Resync {
                mask: self.masks_next(),
            },
        };
    }
}

/// Masks `line` (which starts at stream offset `at`) but its carriage returns, one mask
/// per stretch between them.
fn mask_line(line: &[u8], at: u64, masks: &mut Vec<Mask>) {
    let rule = Detector::RedisAuth.rule();
    let mut start = 0;
    for end in memchr::memchr_iter(b'\r', line).chain([line.len()]) {
        if start < end {
            masks.push(Mask {
                start: at + start as u64,
                end: at + end as u64,
                rule,
            });
        }
        start = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend(format!("${}\r\n", a.len()).bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn masked_text(stream: &[u8], split: usize) -> Vec<u8> {
        let mut r = Resp::default();
        let (mut masks, mut cuts) = (Vec::new(), Vec::new());
        for (i, chunk) in stream.chunks(split).enumerate() {
            r.feed(chunk, (i * split) as u64, &mut masks, &mut cuts);
        }
        let mut out = stream.to_vec();
        for m in masks {
            for b in &mut out[m.start as usize..m.end as usize] {
                *b = b'*';
            }
        }
        out
    }

    #[test]
    fn auth_arguments_are_masked() {
        let mut s = resp(&[b"auth", b"s3cr3t-pw"]);
        s.extend(resp(&[b"AUTH", b"alice", b"pa55word"]));
        s.extend(resp(&[b"GET", b"key"]));
        for split in [1, 3, 100] {
            let out = masked_text(&s, split);
            let text = String::from_utf8_lossy(&out);
            assert!(
                !text.contains("s3cr3t-pw")
                    && !text.contains("pa55word")
                    && !text.contains("alice")
            );
            assert!(
                text.contains("auth")
                    && text.contains("AUTH")
                    && text.contains("GET")
                    && text.contains("key")
            );
        }
    }

    #[test]
    fn hello_migrate_config_acl() {
        let mut s = resp(&[
            b"HELLO",
            b"3",
            b"AUTH",
            b"bob",
            b"hellopass",
            b"SETNAME",
            b"app",
        ]);
        s.extend(resp(&[
            b"MIGRATE", b"h", b"6379", b"k", b"0", b"5000", b"AUTH2", b"u", b"migpass",
        ]));
        s.extend(resp(&[
            b"CONFIG",
            b"SET",
            b"requirepass",
            b"cfgpass",
            b"maxmemory",
            b"100mb",
        ]));
        s.extend(resp(&[b"ACL", b"SETUSER", b"carol", b"on", b">aclpass"]));
        let out = String::from_utf8_lossy(&masked_text(&s, 2)).into_owned();
        for secret in ["hellopass", "migpass", "cfgpass", "aclpass"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        for kept in [
            "bob",
            "SETNAME",
            "app",
            "requirepass",
            "maxmemory",
            "100mb",
            "carol",
        ] {
            assert!(out.contains(kept), "{kept} missing from {out}");
        }
    }

    #[test]
    fn a_secret_that_breaks_the_framing_is_masked_whole() {
        // The password should have come as `$7\r\nhunter2\r\n`; it came bare, then a
        // broken length, then a line with a carriage return inside.
        let s = b"*2\r\n$4\r\nAUTH\r\nhunter2\r\n*2\r\n$4\r\nAUTH\r\n$x-pw\rmore\r\n*1\r\n$4\r\nPING\r\n";
        let want = b"*2\r\n$4\r\nAUTH\r\n*******\r\n*2\r\n$4\r\nAUTH\r\n$****\r****\r\n*1\r\n$4\r\nPING\r\n";
        for split in [1, 2, 5, s.len()] {
            assert_eq!(
                String::from_utf8_lossy(&masked_text(s, split)),
                String::from_utf8_lossy(want),
                "split {split}"
            );
        }
    }

    #[test]
    fn a_secret_after_a_bare_line_feed_is_masked() {
        let s = b"*2\r\n$4\r\nAUTH\r\n$7\nhunter2\r\n*2\r\n$4\r\nAUTH\r\n\nhunter2\r\n*1\r\n$4\r\nPING\r\n";
        let want = b"*2\r\n$4\r\nAUTH\r\n$7\n*******\r\n*2\r\n$4\r\nAUTH\r\n\n*******\r\n*1\r\n$4\r\nPING\r\n";
        for split in [1, 3, s.len()] {
            assert_eq!(
                String::from_utf8_lossy(&masked_text(s, split)),
                String::from_utf8_lossy(want),
                "split {split}"
            );
        }
    }

    #[test]
    fn a_lost_line_is_masked_in_stretches_not_bytes() {
        let line = [&b"*2\r\n$4\r\nAUTH\r\n"[..], &[b'x'; 1000], b"\ryy\r\n"].concat();
        let mut r = Resp::default();
        let (mut masks, mut cuts) = (Vec::new(), Vec::new());
        r.feed(&line, 0, &mut masks, &mut cuts);
        let spans: Vec<_> = masks.iter().map(|m| (m.start, m.end)).collect();
        assert_eq!(spans, [(14, 1014), (1015, 1017)]);
    }

    #[test]
    fn non_resp_streams_are_ignored() {
        let s = b"* a markdown list\r\n* AUTH x\r\n";
        assert_eq!(masked_text(s, 4), s.to_vec());
    }
}
