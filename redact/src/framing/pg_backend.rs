//! PostgreSQL backend (server → client) protocol: a stream that starts with the server's
//! first answer, an Authentication request (`R`), a NegotiateProtocolVersion (`v`) or an
//! ErrorResponse (`E`), after the one-byte refusal of an SSL/GSS request (`N`) if the client
//! asked for one. From there every message is a type byte and a length.
//!
//! Nothing the server sends is masked by its framing; what this tracker gives is a cut at
//! the end of every message. Without it nothing in a backend stream ends a line, so each
//! reply was held until the next one or the hold-back time, and a connection quiet for
//! longer than that had the tail of its last reply (ReadyForQuery's status byte) and the
//! start of its next one masked fail-closed, which broke the protocol view.

/// Longest first message accepted as the server's first answer (authentication requests
/// are a few dozen bytes; an ErrorResponse a few hundred).
const MAX_FIRST_LEN: u32 = 8192;
/// Longest message followed (a DataRow can hold a 1 GB value).
const MAX_LEN: u32 = 1 << 30;

/// The one-byte answers to SSLRequest/GSSENCRequest that leave the stream in the clear.
const REFUSED: u8 = b'N';

#[derive(Debug)]
enum State {
    /// Nothing read yet, or only the refusal of an encryption request.
    First {
        refused: bool,
    },
    Header {
        head: [u8; 5],
        n: usize,
        first: bool,
    },
    Body {
        remaining: u32,
    },
    /// Not a PostgreSQL backend stream, or no longer followable.
    Off,
}

#[derive(Debug)]
pub(crate) struct Backend {
    state: State,
}

impl Default for Backend {
    fn default() -> Self {
        Backend {
            state: State::First { refused: false },
        }
    }
}

impl Backend {
    /// Gave up on the stream for good.
    pub(crate) fn off(&self) -> bool {
        matches!(self.state, State::Off)
    }

    /// Follows `bytes`, which start at stream offset `base`, pushing a cut at the end of
    /// every complete message.
    pub(crate) fn feed(&mut self, bytes: &[u8], base: u64, cuts: &mut Vec<u64>) {
        let mut i = 0;
        while i < bytes.len() {
            match &mut self.state {
                State::Off => return,
                State::First { refused } => {
                    let b = bytes[i];
                    // No cut after the refusal: a text stream may start with `N` too, so
                    // the first cut waits for a whole first message.
                    if b == REFUSED && !*refused {
                        i += 1;
                        *refused = true;
                    } else if matches!(b, b'R' | b'v' | b'E') {
                        self.state = State::Header {
                            head: [0; 5],
                            n: 0,
                            first: true,
                        };
                    } else {
                        self.state = State::Off;
                    }
                }
                State::Header { head, n, first } => {
                    head[*n] = bytes[i];
                    *n += 1;
                    i += 1;
                    if *n < 5 {
                        continue;
                    }
                    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
                    let max = if *first { MAX_FIRST_LEN } else { MAX_LEN };
                    self.state = if is_backend_tag(head[0]) && (4..=max).contains(&len) {
                        State::Body { remaining: len - 4 }
                    } else {
                        State::Off
                    };
                    self.after_part(base + i as u64, cuts);
                }
                State::Body { remaining } => {
                    let take = (*remaining as usize).min(bytes.len() - i);
                    *remaining -= take as u32;
                    i += take;
                    self.after_part(base + i as u64, cuts);
                }
            }
        }
    }

    /// At the end of a message, cuts and reads the next header.
    fn after_part(&mut self, at: u64, cuts: &mut Vec<u64>) {
        if let State::Body { remaining: 0 } = self.state {
            cuts.push(at);
            self.state = State::Header {
                head: [0; 5],
                n: 0,
                first: false,
            };
        }
    }

    /// `len` bytes of the stream were lost: skipped inside a body, otherwise given up.
    pub(crate) fn gap(&mut self, len: u64) {
        self.state = match self.state {
            State::Body { remaining } if len < u64::from(remaining) => State::Body {
                remaining: remaining - len as u32,
            },
            State::Body { remaining } if len == u64::from(remaining) => State::Header {
                head: [0; 5],
                n: 0,
                first: false,
            },
            _ => State::Off,
        };
    }
}

/// Message types a server sends (protocol 3.0 and 3.2).
fn is_backend_tag(tag: u8) -> bool {
    b"123ACDEGHIKNRSTVWZcdnstv".contains(&tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// A refused SSLRequest, authentication, a parameter, ReadyForQuery, then a reply.
    fn session() -> (Vec<u8>, Vec<u64>) {
        let mut s = vec![REFUSED];
        let mut ends = Vec::new();
        for m in [
            message(b'R', &0u32.to_be_bytes()),
            message(b'S', b"server_version\x0015.18\0"),
            message(b'Z', b"I"),
            message(b'1', b""),
            message(b'C', b"INSERT 0 3\0"),
            message(b'Z', b"T"),
        ] {
            s.extend(m);
            ends.push(s.len() as u64);
        }
        (s, ends)
    }

    fn cuts(stream: &[u8], split: usize) -> Vec<u64> {
        let mut backend = Backend::default();
        let mut cuts = Vec::new();
        for (i, chunk) in stream.chunks(split).enumerate() {
            backend.feed(chunk, (i * split) as u64, &mut cuts);
        }
        cuts
    }

    #[test]
    fn every_message_end_is_a_cut_at_any_split() {
        let (s, ends) = session();
        for split in [1, 2, 3, 5, 7, s.len()] {
            let mut got = cuts(&s, split);
            got.dedup();
            assert_eq!(got, ends, "split {split}");
        }
    }

    #[test]
    fn other_streams_get_no_cuts() {
        assert!(cuts(b"HTTP/1.1 200 OK\r\nRetry: 1\r\n\r\n", 4).is_empty());
        // Accepted encryption: TLS follows the `S`.
        assert!(cuts(b"S\x16\x03\x03\x00\x2aR\0\0\0\x08\0\0\0\0", 3).is_empty());
        // A type byte no server sends after a plausible start stops the tracker.
        let mut s = message(b'R', &0u32.to_be_bytes());
        let end = s.len() as u64;
        s.extend(message(b'x', b"abc"));
        s.extend(message(b'Z', b"I"));
        assert_eq!(cuts(&s, 4), vec![end]);
    }

    #[test]
    fn a_gap_inside_a_body_is_skipped_and_elsewhere_ends_the_tracking() {
        let mut backend = Backend::default();
        let mut got = Vec::new();
        let mut s = message(b'R', &0u32.to_be_bytes());
        s.extend(message(b'D', b"0123456789"));
        let z = message(b'Z', b"I");
        // The row's last 8 bytes are lost.
        backend.feed(&s[..s.len() - 8], 0, &mut got);
        backend.gap(8);
        backend.feed(&z, s.len() as u64, &mut got);
        let end = (s.len() + z.len()) as u64;
        assert_eq!(got, vec![9, end]);
        // Lost inside a header: nothing is followed after it.
        backend.feed(&z[..2], end, &mut got);
        backend.gap(1);
        backend.feed(&z, end + 3, &mut got);
        assert_eq!(got, vec![9, end]);
    }
}
