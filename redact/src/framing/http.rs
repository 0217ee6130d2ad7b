//! HTTP/1.x request framing: after a request line and headers with `Content-Length: N`,
//! the body ends exactly N bytes later, so it can be decided then instead of waiting for
//! a line end or the time bound. Only requests: a response's length depends on the
//! request method (HEAD), which the other direction carries, and a wrong cut could split
//! a secret; responses wait for a line end or a bound.

const LINE_CAPTURE: usize = 256;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Idle,
    Headers {
        content_length: Option<u64>,
    },
    Body {
        remaining: u64,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Http {
    state: State,
    line: Vec<u8>,
}

impl Http {
    pub(crate) fn feed(&mut self, bytes: &[u8], base: u64, cuts: &mut Vec<u64>) {
        let mut i = 0;
        while i < bytes.len() {
            if let State::Body { remaining } = self.state {
                let take = (remaining as usize).min(bytes.len() - i);
                i += take;
                let remaining = remaining - take as u64;
                self.state = State::Body { remaining };
                if remaining == 0 {
                    cuts.push(base + i as u64);
                    self.state = State::Idle;
                }
                continue;
            }
            let rest = &bytes[i..];
            match memchr::memchr(b'\n', rest) {
                None => {
                    self.capture(rest);
                    i = bytes.len();
                }
                Some(p) => {
                    self.capture(&rest[..p]);
                    i += p + 1;
                    self.line_done();
                }
            }
        }
    }

    fn capture(&mut self, part: &[u8]) {
        let room = LINE_CAPTURE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..room.min(part.len())]);
    }

    fn line_done(&mut self) {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        self.state = match self.state {
            State::Idle if is_request_line(line) => State::Headers {
                content_length: None,
            },
            State::Headers { content_length } if line.is_empty() => match content_length {
                Some(n) if n > 0 => State::Body { remaining: n },
                _ => State::Idle,
            },
            State::Headers { content_length } => State::Headers {
                content_length: content_length.or_else(|| content_length_of(line)),
            },
            other => other,
        };
        self.line.clear();
    }

    pub(crate) fn gap(&mut self, len: u64) {
        self.line.clear();
        self.state = match self.state {
            State::Body { remaining } if len < remaining => State::Body {
                remaining: remaining - len,
            },
            _ => State::Idle,
        };
    }
}

fn is_request_line(line: &[u8]) -> bool {
    let method_len = line.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=10).contains(&method_len)
        && line.get(method_len) == Some(&b' ')
        && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
}

fn content_length_of(line: &[u8]) -> Option<u64> {
    let name = b"content-length:";
    if line.len() <= name.len() || !line[..name.len()].eq_ignore_ascii_case(name) {
        return None;
    }
    std::str::from_utf8(&line[name.len()..])
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_the_end_of_a_request_body() {
        let req = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nuser=a&pw=b";
        for split in [1, 5, req.len()] {
            let mut h = Http::default();
            let mut cuts = Vec::new();
            for (i, c) in req.chunks(split).enumerate() {
                h.feed(c, (i * split) as u64, &mut cuts);
            }
            assert_eq!(cuts, [req.len() as u64], "split {split}");
        }
    }

    #[test]
    fn responses_and_bodiless_requests_do_not_cut() {
        let mut h = Http::default();
        let mut cuts = Vec::new();
        h.feed(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            0,
            &mut cuts,
        );
        h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 100, &mut cuts);
        assert!(cuts.is_empty());
    }
}
