//! What the record module's tests share: a numbered event and reading a segment to its end.

use std::path::Path;

use recorder_proto::v1::{frame::Body, Event, Payload};

use super::{Keyring, ReadError, SegmentReader};

/// A `write` event whose payload says its number.
pub fn event(i: u64) -> Event {
    Event {
        mono_ns: i,
        syscall: "write".into(),
        payload: Some(Payload {
            data: format!("payload {i}").into_bytes(),
            ..Payload::default()
        }),
        ..Event::default()
    }
}

/// Every frame `keyring` reads from `path`, and how reading ended.
pub fn read_all(path: &Path, keyring: &Keyring) -> (Vec<Body>, Result<(), ReadError>) {
    let mut reader = match SegmentReader::open_with(path, keyring) {
        Ok(reader) => reader,
        Err(error) => return (Vec::new(), Err(error)),
    };
    let mut bodies = Vec::new();
    loop {
        match reader.next_body() {
            Ok(Some(body)) => bodies.push(body),
            Ok(None) => return (bodies, Ok(())),
            Err(error) => return (bodies, Err(error)),
        }
    }
}
