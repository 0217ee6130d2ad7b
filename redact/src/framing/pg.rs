//! PostgreSQL frontend (client → server) protocol: a stream that starts with a
//! StartupMessage (length, protocol 3.x), an SSLRequest or a GSSENCRequest. After it,
//! every message is a type byte and a length; the body of each `p` message
//! (PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse) is masked, type
//! byte and length kept.

use crate::detector::Detector;
use crate::framing::Mask;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
const MAX_STARTUP_LEN: u32 = 10_000;

#[derive(Debug)]
enum State {
    /// Reading the first 8 bytes (again after an SSL/GSS request that was refused).
    Sniff {
        head: [u8; 8],
        n: usize,
    },
    Startup {
        remaining: u32,
    },
    Header {
        head: [u8; 5],
        n: usize,
    },
    Body {
        remaining: u32,
        mask: bool,
    },
    /// Not PostgreSQL (or encrypted, or no longer followable after authentication).
    Off,
    /// Lost track while authenticating: everything from here is masked.
    MaskAll,
}

#[derive(Debug)]
pub(crate) struct Pg {
    state: State,
    /// A message other than `p` was sent after startup: authentication is over.
    authenticated: bool,
    /// An SSL or GSS request was sent: if the stream goes on in the clear, it was refused
    /// and the startup comes next.
    encryption_asked: bool,
}

impl Default for Pg {
    fn default() -> Self {
        Pg {
            state: State::Sniff { head: [0; 8], n: 0 },
            authenticated: false,
            encryption_asked: false,
        }
    }
}

impl Pg {
    /// Gave up on the stream for good: it is not PostgreSQL's frontend side.
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
        let rule = Detector::PostgresPassword.rule();
        let mut i = 0;
        while i < bytes.len() {
            let at = base + i as u64;
            match &mut self.state {
                State::Off => return,
                State::MaskAll => {
                    masks.push(Mask {
                        start: at,
                        end: base + bytes.len() as u64,
                        rule,
                    });
                    return;
                }
                State::Sniff { head, n } => {
                    let b = bytes[i];
                    i += 1;
                    // Lengths are ≤ MAX_STARTUP_LEN: two leading zero bytes, then ≤ 0x27.
                    if (*n < 2 && b != 0) || (*n == 2 && b > 0x27) {
                        self.state = State::Off;
                        continue;
                    }
                    head[*n] = b;
                    *n += 1;
                    if *n == 8 {
                        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
                        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
                        self.state = if len == 8 && (code == SSL_REQUEST || code == GSSENC_REQUEST)
                        {
                            self.encryption_asked = true;
                            State::Sniff { head: [0; 8], n: 0 }
                        } else if (code >> 16 == 3 && (8..=MAX_STARTUP_LEN).contains(&len))
                            || (code == CANCEL_REQUEST && len == 16)
                        {
                            State::Startup { remaining: len - 8 }
                        } else {
                            State::Off
                        };
                        self.after_message(base + i as u64, cuts);
                    }
                }
                State::Startup { remaining } => {
                    let take = (*remaining as usize).min(bytes.len() - i);
                    *remaining -= take as u32;
                    i += take;
                    self.after_message(base + i as u64, cuts);
                }
                State::Header { head, n } => {
                    head[*n] = bytes[i];
                    *n += 1;
                    i += 1;
                    if *n == 5 {
                        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
                        let mask = head[0] == b'p';
                        if len < 4 {
                            self.desync();
                            continue;
                        }
                        if !mask {
                            self.authenticated = true;
                        }
                        self.state = State::Body {
                            remaining: len - 4,
                            mask,
                        };
                        self.after_message(base + i as u64, cuts);
                    }
                }
                State::Body { remaining, mask } => {
                    let take = (*remaining as usize).min(bytes.len() - i);
                    if *mask && take > 0 {
                        masks.push(Mask {
                            start: at,
                            end: at + take as u64,
                            rule,
                        });
                    }
                    *remaining -= take as u32;
                    i += take;
                    self.after_message(base + i as u64, cuts);
                }
            }
        }
    }

    /// Moves to the next message header when the current part is complete.
    fn after_message(&mut self, at: u64, cuts: &mut Vec<u64>) {
        let done = match self.state {
            State::Startup { remaining: 0 } | State::Body { remaining: 0, .. } => true,
            State::Sniff { n: 0, .. } => {
                // A refused SSL/GSS request just ended; the next packet is a startup.
                cuts.push(at);
                false
            }
            _ => false,
        };
        if done {
            cuts.push(at);
            self.state = State::Header { head: [0; 5], n: 0 };
        }
    }

    fn desync(&mut self) {
        self.state = if self.authenticated {
            State::Off
        } else {
            State::MaskAll
        };
    }

    pub(crate) fn gap(&mut self, len: u64) {
        match &mut self.state {
            State::Off | State::MaskAll => {}
            // Bytes lost at the very start: nothing says this is PostgreSQL.
            State::Sniff { n: 0, .. } if !self.encryption_asked => self.state = State::Off,
            // Lost inside the first packet, or before the startup that follows a refused
            // SSL/GSS request: the startup and the password may both be in what follows.
            State::Sniff { .. } => self.desync(),
            State::Startup { remaining } | State::Body { remaining, .. } => {
                if len <= u64::from(*remaining) {
                    *remaining -= len as u32;
                    if *remaining == 0 {
                        self.state = State::Header { head: [0; 5], n: 0 };
                    }
                } else {
                    self.desync();
                }
            }
            State::Header { .. } => self.desync(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup() -> Vec<u8> {
        let body = b"user\0alice\0database\0app\0\0";
        let mut m = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&196_608u32.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn masked(stream: &[u8], split: usize) -> Vec<(u64, u64)> {
        let mut pg = Pg::default();
        let (mut masks, mut cuts) = (Vec::new(), Vec::new());
        for (i, chunk) in stream.chunks(split).enumerate() {
            pg.feed(chunk, (i * split) as u64, &mut masks, &mut cuts);
        }
        masks.iter().map(|m| (m.start, m.end)).collect()
    }

    #[test]
    fn password_message_body_is_masked_at_any_split() {
        let mut s = startup();
        let p_at = s.len() as u64;
        s.extend(message(b'p', b"hunter2\0"));
        s.extend(message(b'Q', b"SELECT 1\0"));
        for split in [1, 2, 3, 7, 64] {
            let m = masked(&s, split);
            let covered: u64 = m.iter().map(|(a, b)| b - a).sum();
            assert_eq!(covered, 8, "split {split}");
            assert!(m.iter().all(|&(a, b)| a >= p_at + 5 && b <= p_at + 13));
        }
    }

    #[test]
    fn ssl_request_then_startup() {
        let mut s = 8u32.to_be_bytes().to_vec();
        s.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        s.extend(startup());
        s.extend(message(b'p', b"pw\0"));
        assert_eq!(masked(&s, 5).iter().map(|(a, b)| b - a).sum::<u64>(), 3);
    }

    #[test]
    fn other_streams_are_left_alone() {
        assert!(masked(b"GET / HTTP/1.1\r\n\r\np\0\0\0\x08abcd", 4).is_empty());
        let mut tls = 8u32.to_be_bytes().to_vec();
        tls.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        tls.extend_from_slice(b"\x16\x03\x01\x02\x00p\0\0\0\x08abcd");
        assert!(masked(&tls, 3).is_empty());
    }

    #[test]
    fn lost_sync_while_authenticating_masks_everything() {
        let mut pg = Pg::default();
        let (mut masks, mut cuts) = (Vec::new(), Vec::new());
        let s = startup();
        pg.feed(&s, 0, &mut masks, &mut cuts);
        pg.feed(b"p\0", s.len() as u64, &mut masks, &mut cuts);
        pg.gap(10);
        pg.feed(b"rest", 100, &mut masks, &mut cuts);
        assert_eq!(masks.last().map(|m| (m.start, m.end)), Some((100, 104)));
    }
}
