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

use httlib_hpack::table::Table;
use httlib_huffman::DecoderSpeed;

use crate::detector::{Detector, Rule, FAIL_CLOSED};
use crate::framing::Mask;
use crate::policy::Policy;
use crate::scan::{self, End, TextState};

/// What a client sends first on an HTTP/2 connection.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
/// The largest frame payload a peer may allow (2^24 - 1); larger means not HTTP/2.
const MAX_FRAME: u32 = (1 << 24) - 1;
/// The largest first frame taken as the start of HTTP/2 (the default maximum frame size).
const MAX_FIRST_FRAME: u32 = 16384;
/// A header name or value longer than this is not decoded: the table is given up on.
const MAX_STRING: u64 = 64 * 1024;

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
                            self.mode = Mode::Lost;
                            masks.push(Mask {
                                start: base + i as u64,
                                end: base + bytes.len() as u64,
                                rule: FAIL_CLOSED,
                            });
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
                            self.hpack.lost = true;
                            self.frame = Frame::Skip {
                                left: *payload - prefix,
                                cut: true,
                            };
                            continue;
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

    /// Starts the frame whose header is `header`; false if it cannot be HTTP/2.
    fn start_frame(&mut self, header: &[u8; FRAME_HEADER]) -> bool {
        let (len, kind, flags, _) = parse_header(header);
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

/// The representation being read, per RFC 7541 section 6.
#[derive(Debug, Default)]
enum Field {
    /// At the first byte of a representation.
    #[default]
    Start,
    /// Reading a prefixed integer: an index or a table size.
    Integer { kind: Kind, value: u64, shift: u32 },
    /// Reading a string's length: its first byte holds the Huffman bit.
    Length {
        of: Part,
        /// None until the first byte is read.
        huffman: Option<bool>,
        value: u64,
        shift: u32,
    },
    /// Reading a string's bytes.
    Bytes {
        of: Part,
        huffman: bool,
        left: u64,
        start: u64,
        /// The whole string arrived in one push: its mask can wait for its end.
        whole: bool,
    },
}

impl Field {
    fn length(of: Part) -> Field {
        Field::Length {
            of,
            huffman: None,
            value: 0,
            shift: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Indexed,
    /// A literal field whose name is this index (0: a literal name follows).
    Literal {
        indexing: bool,
    },
    TableSize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Name,
    Value,
}

/// One direction's HPACK state.
#[derive(Default)]
struct Hpack {
    table: Table<'static>,
    /// The table cannot be trusted: every header block byte is masked.
    lost: bool,
    field: Field,
    /// The current literal field: whether it is added to the table, its name (decoded),
    /// and its string's bytes as they came.
    indexing: bool,
    name: Vec<u8>,
    raw: Vec<u8>,
    /// The line `name: value` a decoded field is scanned as, and the scan's state.
    line: Vec<u8>,
    text: TextState,
    spans: Vec<scan::Span>,
}

impl std::fmt::Debug for Hpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hpack")
            .field("lost", &self.lost)
            .field("field", &self.field)
            .finish_non_exhaustive()
    }
}

impl Hpack {
    /// Walks header block bytes starting at stream offset `base`.
    fn feed(&mut self, policy: &Policy, bytes: &[u8], base: u64, masks: &mut Vec<Mask>) {
        let mut i = 0;
        while i < bytes.len() {
            if self.lost {
                masks.push(Mask {
                    start: base + i as u64,
                    end: base + bytes.len() as u64,
                    rule: FAIL_CLOSED,
                });
                return;
            }
            let b = bytes[i];
            let at = base + i as u64;
            match &mut self.field {
                Field::Start => {
                    i += 1;
                    let (kind, prefix) = match b {
                        0x80.. => (Kind::Indexed, 7),
                        0x40..=0x7f => (Kind::Literal { indexing: true }, 6),
                        0x20..=0x3f => (Kind::TableSize, 5),
                        _ => (Kind::Literal { indexing: false }, 4),
                    };
                    let max = (1u64 << prefix) - 1;
                    let value = u64::from(b) & max;
                    if value == max {
                        self.field = Field::Integer {
                            kind,
                            value,
                            shift: 0,
                        };
                    } else {
                        self.integer_done(kind, value);
                    }
                }
                Field::Integer { kind, value, shift } => {
                    i += 1;
                    let kind = *kind;
                    match continue_integer(value, shift, b) {
                        Err(()) => self.lose(),
                        Ok(true) => {
                            let value = *value;
                            self.integer_done(kind, value);
                        }
                        Ok(false) => {}
                    }
                }
                Field::Length {
                    of,
                    huffman,
                    value,
                    shift,
                } => {
                    i += 1;
                    let of = *of;
                    let complete = match huffman {
                        None => {
                            *huffman = Some(b & 0x80 != 0);
                            *value = u64::from(b & 0x7f);
                            Ok(*value < 0x7f)
                        }
                        Some(_) => continue_integer(value, shift, b),
                    };
                    match complete {
                        Err(()) => self.lose(),
                        Ok(true) => {
                            let (len, huffman) = (*value, huffman.unwrap_or(false));
                            let whole = len <= (bytes.len() - i) as u64;
                            self.start_string(of, huffman, len, base + i as u64, whole);
                        }
                        Ok(false) => {}
                    }
                }
                Field::Bytes {
                    of,
                    left,
                    whole,
                    start,
                    huffman,
                } => {
                    let take = (*left as usize).min(bytes.len() - i);
                    let (of, whole, start, huffman) = (*of, *whole, *start, *huffman);
                    *left -= take as u64;
                    let done = *left == 0;
                    self.raw.extend_from_slice(&bytes[i..i + take]);
                    if of == Part::Value && !whole {
                        // Split over pushes: decided now, whole, as it arrives.
                        masks.push(Mask {
                            start: at,
                            end: at + take as u64,
                            rule: FAIL_CLOSED,
                        });
                    }
                    i += take;
                    if done {
                        self.string_done(policy, of, huffman, start, whole, masks);
                    }
                }
            }
        }
    }

    /// A header block ended: it must end between fields.
    fn end_block(&mut self) {
        if !matches!(self.field, Field::Start) {
            self.lose();
        }
    }

    fn lose(&mut self) {
        self.lost = true;
        self.field = Field::Start;
        self.raw.clear();
    }

    fn integer_done(&mut self, kind: Kind, value: u64) {
        self.field = Field::Start;
        match kind {
            Kind::Indexed => {
                // A whole field from the table: no bytes of it here.
                if u32::try_from(value)
                    .ok()
                    .and_then(|index| self.table.get(index))
                    .is_none()
                {
                    self.lose();
                }
            }
            Kind::TableSize => match u32::try_from(value) {
                Ok(size) if value <= MAX_STRING * 16 => self.table.update_max_dynamic_size(size),
                _ => self.lose(),
            },
            Kind::Literal { indexing } => {
                self.indexing = indexing;
                self.name.clear();
                if value == 0 {
                    self.field = Field::length(Part::Name);
                    return;
                }
                let name = u32::try_from(value)
                    .ok()
                    .and_then(|index| self.table.get(index))
                    .map(|(name, _)| name.to_vec());
                match name {
                    Some(name) => {
                        self.name = name;
                        self.field = Field::length(Part::Value);
                    }
                    None => self.lose(),
                }
            }
        }
    }

    fn start_string(&mut self, of: Part, huffman: bool, len: u64, start: u64, whole: bool) {
        if len > MAX_STRING {
            self.lose();
            return;
        }
        self.raw.clear();
        self.field = Field::Bytes {
            of,
            huffman,
            left: len,
            start,
            whole,
        };
        if len == 0 {
            // Nothing to wait for: finish at once (no policy is needed for an empty string).
            self.field = Field::Start;
            self.finish_empty(of);
        }
    }

    fn finish_empty(&mut self, of: Part) {
        match of {
            Part::Name => {
                self.field = Field::length(Part::Value);
            }
            Part::Value => {
                if self.indexing {
                    self.table
                        .insert(std::mem::take(&mut self.name), Vec::new());
                }
            }
        }
    }

    /// A name or value is complete: decode it; for a value, decide its mask and keep the
    /// table in step.
    fn string_done(
        &mut self,
        policy: &Policy,
        of: Part,
        huffman: bool,
        start: u64,
        whole: bool,
        masks: &mut Vec<Mask>,
    ) {
        self.field = Field::Start;
        let mut decoded = Vec::new();
        let text = if huffman {
            if httlib_huffman::decode(&self.raw, &mut decoded, DecoderSpeed::FourBits).is_err() {
                self.lose();
                return;
            }
            &decoded[..]
        } else {
            &self.raw[..]
        };
        match of {
            Part::Name => {
                self.name = text.to_vec();
                self.field = Field::length(Part::Value);
            }
            Part::Value => {
                let value = text.to_vec();
                if whole {
                    if let Some(rule) = self.value_rule(policy, &value) {
                        masks.push(Mask {
                            start,
                            end: start + self.raw.len() as u64,
                            rule,
                        });
                    }
                }
                if self.indexing {
                    self.table.insert(std::mem::take(&mut self.name), value);
                }
            }
        }
        self.raw.clear();
    }

    /// The rule that masks this value, if redaction of the line `name: value` masks any of
    /// the value.
    fn value_rule(&mut self, policy: &Policy, value: &[u8]) -> Option<Rule> {
        if policy.header_denied(&self.name) {
            return Some(Detector::HttpHeader.rule());
        }
        self.line.clear();
        self.line.extend_from_slice(&self.name);
        self.line.extend_from_slice(b": ");
        let value_start = self.line.len();
        self.line.extend_from_slice(value);
        self.line.extend_from_slice(b"\r\n");
        self.spans.clear();
        self.text = TextState::default();
        scan::scan(
            policy,
            &self.line,
            0,
            true,
            End::Complete,
            &mut self.text,
            &mut self.spans,
        );
        self.spans
            .iter()
            .find(|span| span.end > value_start && span.start < value_start + value.len())
            .map(|span| span.rule)
    }
}

/// One more byte of a prefixed integer past its prefix (RFC 7541 5.1): true once it is
/// complete; an error past what 64 bits hold.
fn continue_integer(value: &mut u64, shift: &mut u32, b: u8) -> Result<bool, ()> {
    if *shift >= 56 {
        return Err(());
    }
    *value += u64::from(b & 0x7f) << *shift;
    *shift += 7;
    Ok(b & 0x80 == 0)
}
