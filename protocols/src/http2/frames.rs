//! One direction's frames, walked from its start to the first thing that cannot be read: a
//! gap (frames cannot be found again after lost bytes), a frame cut by the recording's end,
//! or bytes that break the framing rules. What each frame says is folded into its stream.

use std::collections::BTreeMap;

use super::hpack::Hpack;
use super::{H2Stream, Half};
use crate::stream::Stream;

const FRAME_HEADER: usize = 9;
/// A header block (HEADERS and its CONTINUATIONs) larger than this is not decoded.
const MAX_BLOCK: usize = 1024 * 1024;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// A header block being gathered.
struct Block {
    stream_id: u32,
    bytes: Vec<u8>,
    end_stream: bool,
    /// A PUSH_PROMISE's block: decoded to keep the table in step, then dropped.
    promise: bool,
    too_big: bool,
}

pub(super) struct Walk<'a> {
    stream: &'a Stream,
    from_client: bool,
    hpack: Hpack,
    block: Option<Block>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(stream: &'a Stream, from_client: bool) -> Self {
        Walk {
            stream,
            from_client,
            hpack: Hpack::new(stream.bytes().len()),
            block: None,
        }
    }

    /// Reads frames from `start` to the end of the first run.
    pub(super) fn run(mut self, start: usize, streams: &mut BTreeMap<u32, H2Stream>) {
        let runs = self.stream.runs();
        let Some(first) = runs.first().filter(|run| !run.after_gap) else {
            return;
        };
        let Some(bytes) = self.stream.bytes().get(..first.range.end) else {
            return;
        };
        let mut pos = start;
        while let Some(header) = bytes.get(pos..pos.saturating_add(FRAME_HEADER)) {
            // 24 bits cannot say more than 16 MiB: a frame is bounded by the bytes held.
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let (kind, flags) = (header[3], header[4]);
            let id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let end = pos + FRAME_HEADER + len;
            let Some(payload) = bytes.get(pos + FRAME_HEADER..end) else {
                return;
            };
            let frame = Frame {
                kind,
                flags,
                id,
                payload,
                start: pos,
                end,
            };
            if !self.frame(&frame, streams) {
                return;
            }
            pos = end;
        }
    }

    /// Folds one frame in; false when it breaks the framing rules.
    fn frame(&mut self, frame: &Frame<'_>, streams: &mut BTreeMap<u32, H2Stream>) -> bool {
        if self.block.is_some() && frame.kind != CONTINUATION {
            return false;
        }
        let stream_frame = matches!(
            frame.kind,
            DATA | HEADERS | RST_STREAM | PUSH_PROMISE | CONTINUATION
        );
        if stream_frame && frame.id == 0 {
            return false;
        }
        let wire = (frame.end - frame.start) as u64;
        match frame.kind {
            DATA => {
                let Some(data) = unpad(frame.flags, frame.payload) else {
                    return false;
                };
                let last_ns = self.last_ns(frame);
                if let Some(half) = self.half(streams, frame.id, false) {
                    half.body.bytes.extend_from_slice(data);
                    half.body.length = half.body.length.saturating_add(data.len() as u64);
                    half.bytes = half.bytes.saturating_add(wire);
                    if frame.flags & END_STREAM != 0 {
                        half.ended_ns = half.ended_ns.or(last_ns);
                    }
                }
            }
            HEADERS => {
                let Some(mut fragment) = unpad(frame.flags, frame.payload) else {
                    return false;
                };
                if frame.flags & PRIORITY != 0 {
                    let Some(rest) = fragment.get(5..) else {
                        return false;
                    };
                    fragment = rest;
                }
                let first_ns = self.stream.time_at(frame.start);
                if let Some(half) = self.half(streams, frame.id, true) {
                    half.first_ns = half.first_ns.or(first_ns);
                    half.bytes = half.bytes.saturating_add(wire);
                }
                self.start_block(frame, fragment, false, streams);
            }
            PUSH_PROMISE => {
                let Some(fragment) = unpad(frame.flags, frame.payload).and_then(|p| p.get(4..))
                else {
                    return false;
                };
                self.start_block(frame, fragment, true, streams);
            }
            CONTINUATION => {
                let Some(block) = self.block.as_mut().filter(|b| b.stream_id == frame.id) else {
                    return false;
                };
                if block.bytes.len() + frame.payload.len() > MAX_BLOCK {
                    block.too_big = true;
                } else {
                    block.bytes.extend_from_slice(frame.payload);
                }
                let promise = block.promise;
                if !promise {
                    if let Some(half) = self.half(streams, frame.id, false) {
                        half.bytes = half.bytes.saturating_add(wire);
                    }
                }
                if frame.flags & END_HEADERS != 0 {
                    self.end_block(frame, streams);
                }
            }
            RST_STREAM => {
                if frame.payload.len() != 4 {
                    return false;
                }
                let at_ns = self.last_ns(frame);
                let from_client = self.from_client;
                if let Some(stream) = streams.get_mut(&frame.id) {
                    stream.reset = true;
                    if !from_client {
                        stream.reset_by_server_ns = stream.reset_by_server_ns.or(at_ns);
                    }
                }
            }
            // SETTINGS, PING, GOAWAY, WINDOW_UPDATE, PRIORITY and unknown types say nothing
            // about exchanges.
            _ => {}
        }
        true
    }

    fn start_block(
        &mut self,
        frame: &Frame<'_>,
        fragment: &[u8],
        promise: bool,
        streams: &mut BTreeMap<u32, H2Stream>,
    ) {
        let too_big = fragment.len() > MAX_BLOCK;
        self.block = Some(Block {
            stream_id: frame.id,
            bytes: if too_big {
                Vec::new()
            } else {
                fragment.to_vec()
            },
            end_stream: frame.flags & END_STREAM != 0,
            promise,
            too_big,
        });
        if frame.flags & END_HEADERS != 0 {
            self.end_block(frame, streams);
        }
    }

    /// A header block is whole: decode it and give it to its stream.
    fn end_block(&mut self, frame: &Frame<'_>, streams: &mut BTreeMap<u32, H2Stream>) {
        let Some(block) = self.block.take() else {
            return;
        };
        if block.too_big {
            self.hpack.lose();
        }
        let fields = self.hpack.decode(&block.bytes);
        if block.promise {
            return;
        }
        let last_ns = self.last_ns(frame);
        let from_client = self.from_client;
        let Some(half) = self.half(streams, block.stream_id, false) else {
            return;
        };
        match fields {
            Some(fields) => {
                let interim = !from_client
                    && super::pseudo(&fields.fields, ":status")
                        .and_then(|s| s.parse::<u16>().ok())
                        .is_some_and(|status| (100..200).contains(&status));
                if !interim && half.head.is_none() && !half.unknown {
                    half.unknown |= fields.truncated;
                    half.head = Some(fields.fields);
                }
            }
            None => {
                if half.head.is_none() {
                    half.unknown = true;
                }
            }
        }
        if block.end_stream {
            half.ended_ns = half.ended_ns.or(last_ns);
        }
    }

    /// This direction's half of stream `id`; `open`: a HEADERS frame may start it. The
    /// server's pushed (even) streams are not exchanges and are never tracked.
    fn half<'s>(
        &self,
        streams: &'s mut BTreeMap<u32, H2Stream>,
        id: u32,
        open: bool,
    ) -> Option<&'s mut Half> {
        if id.is_multiple_of(2) {
            return None;
        }
        let stream = if open {
            streams.entry(id).or_default()
        } else {
            streams.get_mut(&id)?
        };
        let half = if self.from_client {
            &mut stream.client
        } else {
            &mut stream.server
        };
        (open || half.first_ns.is_some()).then_some(half)
    }

    fn last_ns(&self, frame: &Frame<'_>) -> Option<u64> {
        self.stream.time_at(frame.end.saturating_sub(1))
    }
}

struct Frame<'a> {
    kind: u8,
    flags: u8,
    id: u32,
    payload: &'a [u8],
    start: usize,
    end: usize,
}

/// A DATA, HEADERS or PUSH_PROMISE payload without its padding; `None` when the padding
/// is longer than the payload.
fn unpad(flags: u8, payload: &[u8]) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.len()
        .checked_sub(usize::from(pad))
        .map(|len| &rest[..len])
}
