//! Which stream each endpoint's payloads go to, and what the capture policy keeps of them
//! before the stream redactors see them (metadata-only boundaries, `never_capture` files).

use std::mem;

use recorder_proto::v1::{payload::Direction, resource::Kind, Event};
use recorder_redact::{Boundary, CaptureMode, Policy};
use rustc_hash::FxHashMap;

use super::{shard::StreamId, withhold, Endpoint, METADATA_ONLY};
use crate::pipeline::fdtable::entered_ns;

/// Which stream each endpoint is in now.
#[derive(Default)]
pub(super) struct Streams {
    /// The live stream of each endpoint.
    pub(super) current: FxHashMap<Endpoint, Live>,
    next_id: StreamId,
    /// The never-capture rule (or none) of each file path seen lately: a program reads
    /// the same files again and again, and a lookup costs less than the glob set's search.
    pub(super) never: FxHashMap<String, Option<Box<str>>>,
}

/// How many paths `Streams::never` remembers before it starts over.
pub(super) const NEVER_REMEMBERED: usize = 256;

/// An endpoint's live stream, and when its first syscall began: a close that began before
/// that was of an earlier descriptor with the same number (see `fdtable`).
#[derive(Clone, Copy)]
pub(super) struct Live {
    pub(super) stream: StreamId,
    pub(super) began_ns: u64,
}

/// A payload admitted to its stream.
pub(super) struct Admitted {
    pub(super) stream: StreamId,
    /// The bytes to redact, moved out of the payload; they come back masked.
    pub(super) data: Option<Vec<u8>>,
    /// How many bytes of the stream are missing after them.
    pub(super) gap: Option<u64>,
}

impl Streams {
    /// Redacts what the capture policy says to; returns what goes to the payload's stream.
    pub(super) fn admit(&mut self, policy: &Policy, event: &mut Event) -> Option<Admitted> {
        let began_ns = entered_ns(event);
        let payload = event.payload.as_mut()?;
        // Ciphertext left out on purpose is not a hole in the stream.
        let missing = (payload.length - payload.omitted_bytes.min(payload.length))
            .saturating_sub(payload.data.len() as u64);
        if !policy.enabled() || payload.data.is_empty() && missing == 0 {
            return None;
        }
        let resource = event.resource.as_ref();
        let socket = resource.is_some_and(|r| r.kind() == Kind::Socket);
        let boundary = if socket {
            Boundary::Network
        } else {
            Boundary::File
        };
        if policy.capture_mode(boundary) == CaptureMode::Metadata {
            let withheld = payload.data.len() as u32;
            withhold(payload, METADATA_ONLY, withheld);
            return None;
        }
        let file = resource.filter(|r| r.kind() == Kind::File);
        if let Some(rule) = file.and_then(|r| self.never_capture(policy, &r.name)) {
            let withheld = payload.data.len() as u32;
            withhold(payload, rule, withheld);
            return None;
        }
        let endpoint = (
            event.pid,
            event.fd,
            payload.direction() == Direction::Out,
            event.tls.is_some(),
        );
        let next_id = &mut self.next_id;
        let stream = self
            .current
            .entry(endpoint)
            .or_insert_with(|| {
                *next_id += 1;
                Live {
                    stream: *next_id,
                    began_ns,
                }
            })
            .stream;
        let data = (!payload.data.is_empty()).then(|| mem::take(&mut payload.data));
        // Bytes of the stream are missing after this piece (cut short, or a payload lost
        // whole: shed under load, unreadable). What was held before the hole is decided
        // now, fail-closed, rather than waiting with every frame after it, and what
        // follows is not joined across it.
        let gap = (payload.truncated || payload.incomplete).then_some(missing.max(1));
        Some(Admitted { stream, data, gap })
    }

    /// `policy.never_capture(path)`, remembered.
    fn never_capture(&mut self, policy: &Policy, path: &str) -> Option<&str> {
        if !self.never.contains_key(path) {
            if self.never.len() >= NEVER_REMEMBERED {
                self.never.clear();
            }
            let rule = policy.never_capture(path).map(Box::from);
            self.never.insert(path.to_owned(), rule);
        }
        self.never[path].as_deref()
    }
}
