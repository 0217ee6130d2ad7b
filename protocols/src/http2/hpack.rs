//! One direction's HPACK decoding (RFC 7541) with httlib-hpack's `Decoder`, made safe for
//! recorded bytes.
//!
//! The decoder indexes past the end of a truncated integer or string, so each field
//! representation is measured here first and handed over only when it is whole; it is
//! handed over alone, which keeps the decoder's per-field buffer draining cheap. Once a
//! block fails to decode the dynamic table no longer matches the encoder's, and every later
//! block of the direction is unknown.

use httlib_hpack::Decoder;

/// The largest dynamic table accepted (the SETTINGS_HEADER_TABLE_SIZE a peer may have set is
/// not tracked; the encoder's size updates are taken up to this).
const MAX_TABLE: u32 = 64 * 1024;
/// Decoded fields kept per block, and their bytes: an indexed field can expand a byte into
/// a whole table entry, so a block's decoded size is bounded here, not by its length.
const MAX_FIELDS: usize = 256;
const MAX_FIELD_BYTES: usize = 256 * 1024;

/// A header block's fields, as far as they were kept.
#[derive(Debug, Default)]
pub(super) struct Fields {
    pub(super) fields: Vec<(String, String)>,
    /// Fields were dropped: past the caps, or after a field that did not decode.
    pub(super) truncated: bool,
}

/// What each decoded field costs against the budget beyond its bytes (as in the table's
/// own accounting), so that many empty fields cost too.
const FIELD_COST: usize = 32;

pub(super) struct Hpack {
    decoder: Decoder<'static>,
    lost: bool,
    /// Decoded bytes this direction may still produce: indexed fields let a few bytes stand
    /// for a whole table entry, so without a bound a small recording could decode to
    /// gigabytes. Past it the table is given up on.
    budget: usize,
}

impl Hpack {
    /// A decoder for a direction of `len` bytes.
    pub(super) fn new(len: usize) -> Self {
        let mut decoder = Decoder::default();
        decoder.set_max_dynamic_size(MAX_TABLE);
        Hpack {
            decoder,
            lost: false,
            budget: len.saturating_mul(16).saturating_add(16 << 20),
        }
    }

    /// Gives up on the table: a block was not seen whole.
    pub(super) fn lose(&mut self) {
        self.lost = true;
    }

    /// Decodes a whole header block; `None` once the table is lost. When the block breaks
    /// off (it loses the table), the fields before the break are kept and it is `truncated`.
    pub(super) fn decode(&mut self, block: &[u8]) -> Option<Fields> {
        if self.lost {
            return None;
        }
        let mut out = Fields::default();
        let mut bytes = 0usize;
        let mut pos = 0;
        let mut field = Vec::new();
        let mut decoded = Vec::with_capacity(1);
        while pos < block.len() {
            let Some(len) = representation_len(&block[pos..]) else {
                self.lost = true;
                out.truncated = true;
                break;
            };
            field.clear();
            field.extend_from_slice(&block[pos..pos + len]);
            pos += len;
            decoded.clear();
            if self.decoder.decode(&mut field, &mut decoded).is_err() {
                self.lost = true;
                out.truncated = true;
                break;
            }
            for (name, value, _) in decoded.drain(..) {
                let cost = name.len() + value.len() + FIELD_COST;
                bytes = bytes.saturating_add(cost);
                if cost > self.budget {
                    self.lost = true;
                    out.truncated = true;
                    return Some(out);
                }
                self.budget -= cost;
                if out.fields.len() >= MAX_FIELDS || bytes > MAX_FIELD_BYTES {
                    out.truncated = true;
                    continue;
                }
                out.fields.push((
                    String::from_utf8_lossy(&name).into_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                ));
            }
        }
        Some(out)
    }
}

/// The length of the field representation `bytes` starts with, when it is whole.
fn representation_len(bytes: &[u8]) -> Option<usize> {
    let first = *bytes.first()?;
    let (prefix, literal) = match first {
        0x80.. => (7, false),
        0x40..=0x7f => (6, true),
        0x20..=0x3f => (5, false),
        _ => (4, true),
    };
    let (mut len, index) = integer(bytes, prefix)?;
    if literal {
        if index == 0 {
            len += string(bytes.get(len..)?)?;
        }
        len += string(bytes.get(len..)?)?;
    }
    Some(len)
}

/// A prefixed integer's length and value, as httlib-hpack reads it (at most 5 bytes).
fn integer(bytes: &[u8], prefix: u8) -> Option<(usize, u32)> {
    let mask = (1u32 << prefix) - 1;
    let mut value = u32::from(*bytes.first()?) & mask;
    if value < mask {
        return Some((1, value));
    }
    for (i, &b) in bytes.iter().enumerate().skip(1).take(4) {
        value = value.checked_add(u32::from(b & 0x7f) << (7 * (i - 1)))?;
        if b & 0x80 == 0 {
            return Some((i + 1, value));
        }
    }
    None
}

/// A string literal's whole length (length prefix and bytes), when all of it is there.
fn string(bytes: &[u8]) -> Option<usize> {
    let (prefix, len) = integer(bytes, 7)?;
    let total = prefix.checked_add(usize::try_from(len).ok()?)?;
    (total <= bytes.len()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_representations() {
        assert_eq!(representation_len(&[0x82]), Some(1));
        assert_eq!(representation_len(&[0xff, 0x80, 0x01]), Some(3));
        assert_eq!(representation_len(&[0xff, 0x80]), None);
        assert_eq!(
            representation_len(&[0xff, 0x80, 0x80, 0x80, 0x80, 0x01]),
            None
        );
        // Literal with a new name "ab" and value "c".
        assert_eq!(
            representation_len(&[0x40, 2, b'a', b'b', 1, b'c', 0x82]),
            Some(6)
        );
        assert_eq!(representation_len(&[0x40, 2, b'a', b'b']), None);
        assert_eq!(representation_len(&[0x04, 3, b'x']), None);
        assert_eq!(representation_len(&[0x3f, 0xe1, 0x1f]), Some(3));
    }

    #[test]
    fn random_blocks_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut hpack = Hpack::new(64);
            let len = (next() % 40) as usize;
            let block: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = hpack.decode(&block);
        }
    }
}
