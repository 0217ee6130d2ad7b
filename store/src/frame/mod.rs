//! A frame, length-delimited, exactly as `Frame { body }.encode_length_delimited` writes it,
//! with each message's length computed once.
//!
//! prost computes a nested message's length before writing it, at every level: encoding a
//! Frame walks an Event's fields three times (the frame's length, the event's length, the
//! event itself), and its payload's four. Here the body's message is written first, after
//! room for the two prefixes, and the prefixes (the frame's length; the body's key and
//! length) are then put in front of it: one walk, plus one for each nested message. An
//! Event, written once per syscall, is encoded by hand (`event`), as prost would.

mod event;

use prost::{
    encoding::{encode_key, encode_varint, encoded_len_varint, WireType},
    Message,
};
use recorder_proto::v1::frame::Body;

/// The most the prefixes can take: two 10-byte varints and a one-byte key.
const PREFIX_ROOM: usize = 24;

/// Encodes `body` as one length-delimited Frame into `buf` (cleared first); returns where in
/// `buf` the frame starts.
pub fn encode(body: &Body, buf: &mut Vec<u8>) -> usize {
    match body {
        Body::Header(message) => encode_field(1, message, buf),
        Body::Event(message) => encode_with(2, buf, |buf| event::encode(message, buf)),
        Body::Loss(message) => encode_field(3, message, buf),
        Body::Trailer(message) => encode_field(4, message, buf),
        Body::Process(message) => encode_field(5, message, buf),
        Body::Stack(message) => encode_field(6, message, buf),
    }
}

fn encode_field(tag: u32, message: &impl Message, buf: &mut Vec<u8>) -> usize {
    encode_with(tag, buf, |buf| message.encode_raw(buf))
}

/// Frames the message that `fields` appends to `buf`.
fn encode_with(tag: u32, buf: &mut Vec<u8>, fields: impl FnOnce(&mut Vec<u8>)) -> usize {
    buf.clear();
    buf.resize(PREFIX_ROOM, 0);
    fields(buf);
    let message_len = (buf.len() - PREFIX_ROOM) as u64;
    let mut head = [0u8; PREFIX_ROOM];
    let mut cursor = &mut head[..];
    // The frame's own length: the key (one byte for tags up to 15), the message's length
    // and the message.
    let frame_len = 1 + encoded_len_varint(message_len) as u64 + message_len;
    encode_varint(frame_len, &mut cursor);
    encode_key(tag, WireType::LengthDelimited, &mut cursor);
    encode_varint(message_len, &mut cursor);
    let used = PREFIX_ROOM - cursor.len();
    let start = PREFIX_ROOM - used;
    buf[start..PREFIX_ROOM].copy_from_slice(&head[..used]);
    start
}

#[cfg(test)]
mod tests {
    use recorder_proto::v1::{
        payload::Direction, Event, Frame, Header, Loss, Payload, Process, Resource, Trailer,
    };

    use super::*;

    fn same_as_prost(body: Body) {
        let mut buf = Vec::new();
        let start = encode(&body, &mut buf);
        let expected = Frame { body: Some(body) }.encode_length_delimited_to_vec();
        assert_eq!(buf[start..], expected[..]);
    }

    #[test]
    fn every_body_encodes_as_prost_encodes_its_frame() {
        same_as_prost(Body::Header(Box::new(Header {
            recording_id: "00ff".into(),
            host: "h".into(),
            ..Header::default()
        })));
        same_as_prost(Body::Loss(Box::new(Loss {
            from_mono_ns: 1,
            to_mono_ns: 2,
            ..Loss::default()
        })));
        same_as_prost(Body::Trailer(Box::<Trailer>::default()));
        same_as_prost(Body::Process(Box::new(Process {
            pid: 7,
            ..Process::default()
        })));
        same_as_prost(Body::Event(Box::<Event>::default()));
        // Lengths whose varints take one, two and three bytes.
        for size in [0, 1, 100, 127, 128, 16_383, 16_384, 300_000] {
            same_as_prost(Body::Event(Box::new(Event {
                mono_ns: u64::MAX,
                pid: 1,
                syscall: "write".into(),
                args: vec![1, u64::MAX, 3],
                ret: -11,
                fd: 3,
                resource: Some(Box::new(Resource {
                    name: "/tmp/x".into(),
                    ..Resource::default()
                })),
                payload: Some(Payload {
                    direction: Direction::Out.into(),
                    data: vec![b'x'; size],
                    length: size as u64,
                    ..Payload::default()
                }),
                ..Event::default()
            })));
        }
    }
}
