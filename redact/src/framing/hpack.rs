//! HPACK header blocks (RFC 7541) walked byte by byte for the HTTP/2 tracker (`http2`): each
//! field representation is followed as its bytes arrive, the connection's table is kept in
//! step (httlib-hpack's table, httlib-huffman's decoder), and the encoded bytes of every value
//! HTTP/1 redaction would mask are masked in place.

use httlib_hpack::table::Table;
use httlib_huffman::DecoderSpeed;

use crate::detector::{Detector, Rule, FAIL_CLOSED};
use crate::framing::Mask;
use crate::policy::Policy;
use crate::scan::{self, End, TextState};

/// A header name or value longer than this is not decoded: the table is given up on.
const MAX_STRING: u64 = 64 * 1024;

/// A field whose name is longer than this has its value masked fail-closed, not scanned:
/// a long name in the table, referred to by a few bytes per field, would otherwise cost
/// a scan of the name per field, thousands of times what the sender spends.
const MAX_SCANNED_NAME: usize = 256;

/// About how many bytes of scanned line the field scan's buffers keep between fields: a
/// long value's are freed, so a quiet connection does not hold its largest.
const SCAN_KEPT: usize = 4096;

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
pub(super) struct Hpack {
    table: Table<'static>,
    /// The table cannot be trusted: every header block byte is masked.
    pub(super) lost: bool,
    field: Field,
    /// The current literal field: whether it is added to the table, its name (decoded),
    /// and its string's bytes as they came.
    indexing: bool,
    name: Vec<u8>,
    /// The name is longer than `MAX_SCANNED_NAME`; one from the table is then copied into
    /// `name` only if the field is added to the table.
    long_name: bool,
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
    pub(super) fn feed(&mut self, policy: &Policy, bytes: &[u8], base: u64, masks: &mut Vec<Mask>) {
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
    pub(super) fn end_block(&mut self) {
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
                self.long_name = false;
                if value == 0 {
                    self.field = Field::length(Part::Name);
                    return;
                }
                let name = u32::try_from(value)
                    .ok()
                    .and_then(|index| self.table.get(index))
                    .map(|(name, _)| name);
                match name {
                    Some(name) => {
                        self.long_name = name.len() > MAX_SCANNED_NAME;
                        if !self.long_name || indexing {
                            self.name.extend_from_slice(name);
                        }
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
                // Undecodable, so unjudged: a whole value was not masked as it arrived.
                if of == Part::Value && whole {
                    masks.push(Mask {
                        start,
                        end: start + self.raw.len() as u64,
                        rule: FAIL_CLOSED,
                    });
                }
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
                self.long_name = self.name.len() > MAX_SCANNED_NAME;
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
        if self.long_name {
            return Some(FAIL_CLOSED);
        }
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
        self.text.reset();
        scan::scan(
            policy,
            &self.line,
            0,
            true,
            End::Complete,
            &mut self.text,
            &mut self.spans,
        );
        let rule = self
            .spans
            .iter()
            .find(|span| span.end > value_start && span.start < value_start + value.len())
            .map(|span| span.rule);
        self.text.release_spare(SCAN_KEPT);
        scan::shrink(&mut self.line, SCAN_KEPT);
        rule
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
