//! HTTP/2 framing (h2 over TLS, h2c): header blocks are HPACK-compressed, so a header's
//! value may be Huffman-coded and its name only an index into a table both ends keep. No
//! text detector can see either. This tracker follows the frames byte by byte, walks every
//! header block's field representations as they arrive (keeping the connection's table per
//! direction, as the receiving end does), and masks in place the encoded bytes of every
//! value that HTTP/1 redaction would mask: a deny-listed header's, or one in which any
//! detector finds something when the field is read as the `name: value` line it stands for.
//! DATA frames are left to the text detectors, like any body.
//!
//! A stream is recognised by its first bytes: the client's connection preface, or the
//! server's first SETTINGS frame. A stream that starts with some other plausible frame was
//! joined mid-connection: its table is unknown. Whenever the table cannot be trusted (joined
//! mid-connection, bytes lost, a field that does not decode) every later header block byte
//! is masked, fail-closed; after lost bytes the frames themselves cannot be found again, so
//! everything after them is.
//!
//! A value whose bytes arrive over several pushes is masked whole as it arrives: the
//! tracker never holds bytes back, and its first bytes may be decided before its last come.

use crate::detector::FAIL_CLOSED;
use crate::framing::{hpack::Hpack, Mask};
use crate::policy::Policy;

/// What a client sends first on an HTTP/2 connection.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
/// The largest frame payload a peer may allow (2^24 - 1); larger means not HTTP/2.
const MAX_FRAME: u32 = (1 << 24) - 1;
/// The largest first frame taken as the start of HTTP/2 (the default maximum frame size).
const MAX_FIRST_FRAME: u32 = 16384;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

#[derive(Debug, Default)]
enum Mode {
    /// Nothing seen yet, or not enough to tell.
    #[default]
    Detecting,
    Frames,
    /// Bytes were lost inside HTTP/2: nothing can be trusted again.
    Lost,
    /// Not HTTP/2.
    Off,
}

/// Where in a frame the next byte is.
#[derive(Debug)]
enum Frame {
    Header {
        bytes: [u8; FRAME_HEADER],
        have: usize,
    },
    /// Before a header block fragment: the pad length, a promised stream id, a priority.
    Prefix {
        kind: u8,
        flags: u8,
        left: u32,
        pad: Option<u8>,
        payload: u32,
    },
    Fragment {
        flags: u8,
        left: u32,
        padding: u32,
    },
    /// The rest of a frame; `cut` at its end unless it is a DATA frame that does not end
    /// its stream (a body's text may go on in the next one).
    Skip {
        left: u32,
        cut: bool,
    },
}

impl Default for Frame {
    fn default() -> Self {
        Frame::Header {
            bytes: [0; FRAME_HEADER],
            have: 0,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Http2 {
    mode: Mode,
    /// The first bytes, while detecting.
    seen: Vec<u8>,
    frame: Frame,
    hpack: Hpack,
}

impl Http2 {
    /// Gave up on the stream for good: it is not HTTP/2.
    pub(crate) fn off(&self) -> bool {
        matches!(self.mode, Mode::Off)
    }

    pub(crate) fn feed(
        &mut self,
        policy: &Policy,
        bytes: &[u8],
        base: u64,
        masks: &mut Vec<Mask>,
        cuts: &mut Vec<u64>,
    ) {
        let mut i = 0;
        while i < bytes.len() {
            let at = base + i as u64;
            match &mut self.mode {
                Mode::Off => return,
                Mode::Lost => {
                    masks.push(Mask {
                        start: at,
                        end: base + bytes.len() as u64,
                        rule: FAIL_CLOSED,
                    });
                    return;
                }
                Mode::Detecting => {
                    // A client starts with the preface ("PRI ..."); anything else must
                    // start with a frame header.
                    let need = if self.seen.first().unwrap_or(&bytes[i]) == &PREFACE[0] {
                        PREFACE.len()
                    } else {
                        FRAME_HEADER
                    };
                    let take = (need - self.seen.len()).min(bytes.len() - i);
                    self.seen.extend_from_slice(&bytes[i..i + take]);
                    i += take;
                    if self.seen.len() == need {
                        self.detect();
                    }
                }
                Mode::Frames => {
                    self.frames(policy, &bytes[i..], at, masks, cuts);
                    return;
                }
            }
        }
    }

    /// `len` bytes of the stream were lost.
    pub(crate) fn gap(&mut self, _len: u64) {
        self.mode = match self.mode {
            // What was seen began the client preface (`PRI`, which no HTTP/1 method
            // starts with): HTTP/2 whose preface was cut.
            Mode::Detecting if self.seen.len() >= 3 && PREFACE.starts_with(&self.seen) => {
                Mode::Lost
            }
            Mode::Detecting | Mode::Off => Mode::Off,
            _ => Mode::Lost,
        };
    }

    /// Decides what the stream is from its first bytes (`seen`, stream offsets 0..): the
    /// whole preface, or a first frame header, which is then followed like any other.
    fn detect(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        if seen.len() == PREFACE.len() {
            self.mode = if seen == PREFACE {
                Mode::Frames
            } else {
                Mode::Off
            };
            return;
        }
        let header: &[u8; FRAME_HEADER] = seen[..].try_into().expect("a frame header");
        let (len, kind, flags, stream) = parse_header(header);
        if kind == SETTINGS && flags == 0 && stream == 0 && len % 6 == 0 {
            // A server's first frame.
        } else if len <= MAX_FIRST_FRAME && plausible_first_frame(len, kind, flags, stream) {
            // Some other frame first: joined mid-connection, the table is unknown.
            self.hpack.lost = true;
        } else {
            self.mode = Mode::Off;
            return;
        }
        self.mode = Mode::Frames;
        if !self.start_frame(header) {
            self.mode = Mode::Off;
        }
    }

    /// Follows frames through `bytes`, which start at stream offset `base`.
    fn frames(
        &mut self,
        policy: &Policy,
        bytes: &[u8],
        base: u64,
        masks: &mut Vec<Mask>,
        cuts: &mut Vec<u64>,
    ) {
        let mut i = 0;
        while i < bytes.len() {
            let at = base + i as u64;
            let rest = &bytes[i..];
            match &mut self.frame {
                Frame::Header {
                    bytes: header,
                    have,
                } => {
                    let take = (FRAME_HEADER - *have).min(rest.len());
                    header[*have..*have + take].copy_from_slice(&rest[..take]);
                    *have += take;
                    i += take;
                    if *have == FRAME_HEADER {
                        let header = *header;
                        if !self.start_frame(&header) {
                            self.lose(base + i as u64, base + bytes.len() as u64, masks);
                            return;
                        }
                        self.end_if_empty(base + i as u64, cuts);
                    }
                }
                Frame::Prefix {
                    kind,
                    flags,
                    left,
                    pad,
                    payload,
                } => {
                    if *flags & PADDED != 0 && pad.is_none() {
                        *pad = Some(rest[0]);
                    }
                    let take = (*left as usize).min(rest.len());
                    *left -= take as u32;
                    i += take;
                    if *left == 0 {
                        let prefix = prefix_len(*kind, *flags);
                        let padding = u32::from(pad.unwrap_or(0));
                        let Some(fragment) = payload.checked_sub(prefix + padding) else {
                            // Malformed (a server closes the connection on it), yet the
                            // fragment may still hold header fields.
                            self.lose(base + i as u64, base + bytes.len() as u64, masks);
                            return;
                        };
                        self.frame = Frame::Fragment {
                            flags: *flags,
                            left: fragment,
                            padding,
                        };
                        self.end_if_empty(base + i as u64, cuts);
                    }
                }
                Frame::Fragment {
                    flags,
                    left,
                    padding,
                } => {
                    let take = (*left as usize).min(rest.len());
                    let (flags, padding) = (*flags, *padding);
                    *left -= take as u32;
                    let done = *left == 0;
                    self.hpack.feed(policy, &rest[..take], at, masks);
                    i += take;
                    if done {
                        if flags & END_HEADERS != 0 {
                            self.hpack.end_block();
                        }
                        self.frame = Frame::Skip {
                            left: padding,
                            cut: true,
                        };
                        self.end_if_empty(base + i as u64, cuts);
                    }
                }
                Frame::Skip { left, .. } => {
                    let take = (*left as usize).min(rest.len());
                    *left -= take as u32;
                    i += take;
                    self.end_if_empty(base + i as u64, cuts);
                }
            }
        }
    }

    /// The frames cannot be followed from `start`: the rest of this push (to `end`) is
    /// masked, and everything after it.
    fn lose(&mut self, start: u64, end: u64, masks: &mut Vec<Mask>) {
        self.mode = Mode::Lost;
        masks.push(Mask {
            start,
            end,
            rule: FAIL_CLOSED,
        });
    }

    /// Starts the frame whose header is `header`; false if it cannot be HTTP/2.
    fn start_frame(&mut self, header: &[u8; FRAME_HEADER]) -> bool {
        let (len, kind, flags, _) = parse_header(header);
        // A receiver ignores the flags a frame's type does not define (RFC 9113, 4.1):
        // a CONTINUATION frame with the PADDED bit set has no pad length.
        let flags = if kind == CONTINUATION {
            flags & END_HEADERS
        } else {
            flags
        };
        if len > MAX_FRAME {
            return false;
        }
        self.frame = match kind {
            HEADERS | PUSH_PROMISE | CONTINUATION => {
                let prefix = prefix_len(kind, flags);
                if prefix > len {
                    return false;
                }
                Frame::Prefix {
                    kind,
                    flags,
                    left: prefix,
                    pad: None,
                    payload: len,
                }
            }
            // DATA and the rest: bodies go to the text detectors, control frames carry no
            // header fields.
            DATA => Frame::Skip {
                left: len,
                cut: flags & END_STREAM != 0,
            },
            _ => Frame::Skip {
                left: len,
                cut: true,
            },
        };
        true
    }

    /// Moves on to the next frame once nothing of the current one is left, and cuts there
    /// (a complete message for the text scan).
    fn end_if_empty(&mut self, at: u64, cuts: &mut Vec<u64>) {
        if let Frame::Skip { left: 0, cut } = self.frame {
            self.frame = Frame::default();
            if cut {
                cuts.push(at);
            }
        }
    }
}

/// Whether a stream joined mid-connection may start with this frame: one of the frames a
/// busy connection is full of, with only its type's flags and a stream id that fits it.
/// Anything else (a file that happens to start with a zero byte, say) is not HTTP/2.
fn plausible_first_frame(len: u32, kind: u8, flags: u8, stream: u32) -> bool {
    const PING: u8 = 0x6;
    const WINDOW_UPDATE: u8 = 0x8;
    let on_stream = stream != 0 && stream >> 31 == 0;
    match kind {
        DATA => on_stream && flags & !(END_STREAM | PADDED) == 0,
        HEADERS => on_stream && flags & !(END_STREAM | END_HEADERS | PADDED | PRIORITY) == 0,
        SETTINGS => stream == 0 && flags == 1 && len == 0,
        PING => stream == 0 && flags & !1 == 0 && len == 8,
        WINDOW_UPDATE => stream >> 31 == 0 && flags == 0 && len == 4,
        _ => false,
    }
}

/// Length, type, flags and stream id (with its reserved bit) of a frame header.
fn parse_header(header: &[u8; FRAME_HEADER]) -> (u32, u8, u8, u32) {
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]);
    let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    (len, header[3], header[4], stream)
}

/// Bytes of a header-block frame's payload before its fragment.
fn prefix_len(kind: u8, flags: u8) -> u32 {
    let padded = u32::from(kind != CONTINUATION && flags & PADDED != 0);
    let priority = if kind == HEADERS && flags & PRIORITY != 0 {
        5
    } else {
        0
    };
    let promised = if kind == PUSH_PROMISE { 4 } else { 0 };
    padded + priority + promised
}
