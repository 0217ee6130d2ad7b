//! Recordings on disk, written and read: docs/FORMAT.md is the contract this crate
//! implements. Nothing here knows about probes; the `recorder` tool reads through it alone.
//!
//! ```text
//! frames ─▶ RecordingWriter (rotation, disk full) ─▶ SegmentWriter (protobuf, zstd, [seal])
//!        ─▶ OutputDir (0700/0600, O_EXCL|O_NOFOLLOW, flock while written)
//! segment files ─▶ SegmentReader ─▶ catalog (recordings, state) ─▶ retention (plan, sweep)
//! every start, stop, read and deletion ─▶ audit (hash-chained JSON lines)
//! ```

/// The segment file's preamble: magic, version, name.
pub mod segment;
/// Sealing segments to age recipients, and the identities that open them.
pub mod seal;
/// A frame encoded length-delimited, each message's length computed once.
pub mod frame;
/// One segment file written: frames, zstd frames, fsync, the torn-tail rule.
pub mod writer;
/// One recording written: rotation into segments, and what happens when writing fails.
pub mod recording;
/// One segment read back, tolerant of a torn tail.
pub mod reader;
/// The output directory: checked, created and opened safely; files locked while written.
pub mod dir;
/// The recordings in a directory: their segments, summaries and states.
pub mod catalog;
/// Whose segment a file is, from its first frame.
mod identity;
/// Where a segment's bytes are read from.
mod source;
/// Which recordings a sweep deletes, and deleting them.
pub mod retention;
/// The audit log: hash-chained JSON lines of who recorded, read and deleted what.
pub mod audit;
/// Loss counts: totals and differences of Loss frames.
pub mod loss;
/// The clocks events are timed with.
pub mod clock;
/// User and group names for the audit log and the reader group.
pub mod accounts;

pub use dir::{Access, DirError, OutputDir};
pub use reader::{ReadError, SegmentReader};
pub use recording::{RecordingWriter, SegmentPolicy};
pub use seal::{Keyring, Seal};
pub use writer::{SegmentWriter, WriteError};

#[cfg(test)]
mod sealed_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod write_failure_tests;
#[cfg(test)]
mod stack_tests;

#[cfg(test)]
mod tests {
    use recorder_proto::v1::{frame::Body, Header, Trailer};

    use super::{test_support::event, *};

    /// Writes a segment of `events` events; `finish` decides whether it gets a trailer.
    fn write_segment(dir: &OutputDir, events: u64, finish: bool) -> std::path::PathBuf {
        let header = Header {
            recording_id: "ab".repeat(16),
            ..Header::default()
        };
        let mut writer = SegmentWriter::create(dir, "s.rcd", header).unwrap();
        for i in 0..events {
            writer.append(&Body::Event(Box::new(event(i)))).unwrap();
        }
        if finish {
            writer
                .finish(
                    Trailer {
                        events,
                        end_reason: "test".into(),
                        ..Trailer::default()
                    },
                    dir,
                )
                .unwrap()
        } else {
            writer.close_frame().unwrap();
            let path = writer.path().clone();
            std::mem::forget(writer);
            path
        }
    }

    fn read_all(path: &std::path::Path) -> (Vec<Body>, Result<(), ReadError>) {
        test_support::read_all(path, &Keyring::default())
    }

    #[test]
    fn round_trip_header_events_trailer() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
        let path = write_segment(&dir, 100, true);
        let (bodies, end) = read_all(&path);
        end.unwrap();
        assert_eq!(bodies.len(), 102);
        assert!(matches!(&bodies[0], Body::Header(h) if h.recording_id == "ab".repeat(16)));
        assert!(matches!(&bodies[57], Body::Event(e) if *e == Box::new(event(56))));
        assert!(matches!(&bodies[101], Body::Trailer(t) if t.events == 100));
    }

    #[test]
    fn every_compression_level_allowed_reads_back_the_same_frames() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
        for level in [-7, -1, 1, 3, 19] {
            assert_eq!(writer::check_compression_level(level), Ok(level));
            let name = format!("level{level}.rcd");
            let mut writer =
                SegmentWriter::create_with(&dir, &name, Header::default(), None, level).unwrap();
            for i in 0..20 {
                writer.append(&Body::Event(Box::new(event(i)))).unwrap();
            }
            let path = writer.finish(Trailer::default(), &dir).unwrap();
            let (bodies, end) = read_all(&path);
            end.unwrap();
            assert_eq!(bodies.len(), 22, "level {level}");
            assert!(matches!(&bodies[20], Body::Event(e) if *e == Box::new(event(19))));
        }
        for refused in [0, 20, 22] {
            assert!(writer::check_compression_level(refused).is_err());
        }
    }

    #[test]
    fn a_torn_tail_keeps_every_complete_frame() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
        let path = write_segment(&dir, 50, false);
        let full = std::fs::read(&path).unwrap();
        let (bodies, end) = read_all(&path);
        end.unwrap();
        assert_eq!(bodies.len(), 51, "no trailer, but every event");
        // Cut into the last zstd frame: the header frame (closed first) still reads.
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        let (bodies, end) = read_all(&path);
        assert!(matches!(end, Err(ReadError::Truncated { .. })), "{end:?}");
        assert!(matches!(bodies.first(), Some(Body::Header(_))));
    }

    #[test]
    fn flipped_bytes_are_corrupt_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
        let path = write_segment(&dir, 20, true);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2 + 8;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, end) = read_all(&path);
        assert!(end.is_err());
    }

    #[test]
    fn not_a_recording_and_future_versions_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let text = tmp.path().join("text");
        std::fs::write(&text, b"hello").unwrap();
        assert!(matches!(
            SegmentReader::open(&text),
            Err(ReadError::NotARecording { .. })
        ));
        let future = tmp.path().join("future");
        let mut preamble = segment::preamble();
        preamble[8] = 2;
        std::fs::write(&future, preamble).unwrap();
        let error = SegmentReader::open(&future).err().unwrap();
        assert!(error.to_string().contains("format version 2"), "{error}");
    }
}

/// Damaged recordings — truncated, with flipped bytes, spliced from two — always end in a
/// clean error or a valid prefix of what was written: never a panic, a hang, or a huge
/// allocation (the reader caps every length it reads).
#[cfg(test)]
mod damage_tests {
    use proptest::prelude::*;
    use recorder_proto::v1::{frame::Body, Event, Header, Payload, Trailer};

    use super::*;

    /// Writes a segment holding `payloads` as events, closing a zstd frame every `every`
    /// events; returns its bytes and the frames in it.
    fn segment(payloads: &[Vec<u8>], every: usize) -> (Vec<u8>, Vec<Body>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
        let header = Header {
            recording_id: "cd".repeat(16),
            ..Header::default()
        };
        let mut bodies = vec![Body::Header(Box::new(header.clone()))];
        let mut writer = SegmentWriter::create(&dir, "s.rcd", header).unwrap();
        for (i, data) in payloads.iter().enumerate() {
            let event = Event {
                mono_ns: i as u64,
                syscall: "read".into(),
                payload: Some(Payload {
                    data: data.clone(),
                    length: data.len() as u64,
                    ..Payload::default()
                }),
                ..Event::default()
            };
            bodies.push(Body::Event(Box::new(event.clone())));
            writer.append(&Body::Event(Box::new(event))).unwrap();
            if (i + 1) % every == 0 {
                writer.close_frame().unwrap();
            }
        }
        let trailer = Trailer {
            events: payloads.len() as u64,
            ..Trailer::default()
        };
        bodies.push(Body::Trailer(Box::new(trailer.clone())));
        let path = writer.finish(trailer, &dir).unwrap();
        (std::fs::read(path).unwrap(), bodies)
    }

    /// Reads `bytes` as a segment: the frames returned and whether reading ended cleanly.
    fn read(bytes: &[u8]) -> (Vec<Body>, bool) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("damaged.rcd");
        std::fs::write(&path, bytes).unwrap();
        let Ok(mut reader) = SegmentReader::open(&path) else {
            return (Vec::new(), false);
        };
        let mut bodies = Vec::new();
        loop {
            match reader.next_body() {
                Ok(Some(body)) => bodies.push(body),
                Ok(None) => return (bodies, true),
                Err(_) => return (bodies, false),
            }
        }
    }

    fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn truncation_yields_a_prefix(payloads in payloads(), every in 1usize..8, cut in any::<prop::sample::Index>()) {
            let (bytes, written) = segment(&payloads, every);
            let cut = cut.index(bytes.len());
            let (read, clean) = read(&bytes[..cut]);
            prop_assert!(read.len() <= written.len());
            prop_assert_eq!(&read[..], &written[..read.len()]);
            // A cut file never passes for a complete one.
            prop_assert!(!(clean && read.len() == written.len()));
        }

        #[test]
        fn flipped_bytes_yield_a_prefix_or_an_error(payloads in payloads(), every in 1usize..8, flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
            let (mut bytes, written) = segment(&payloads, every);
            for (at, mask) in &flips {
                let at = at.index(bytes.len());
                bytes[at] ^= mask;
            }
            let (read, _) = read(&bytes);
            // Checksummed zstd frames: what decodes is what was written, in order. (A flip
            // in the preamble's reserved bytes changes nothing, so all may still read.)
            prop_assert!(read.len() <= written.len());
            prop_assert_eq!(&read[..], &written[..read.len()]);
        }

        #[test]
        fn spliced_recordings_end_cleanly(a in payloads(), b in payloads(), at_a in any::<prop::sample::Index>(), at_b in any::<prop::sample::Index>()) {
            let (bytes_a, _) = segment(&a, 3);
            let (bytes_b, _) = segment(&b, 2);
            let mut spliced = bytes_a[..at_a.index(bytes_a.len())].to_vec();
            spliced.extend_from_slice(&bytes_b[at_b.index(bytes_b.len())..]);
            let _ = read(&spliced);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_preamble_never_panic(tail in prop::collection::vec(any::<u8>(), 0..4096)) {
            let mut bytes = segment::preamble().to_vec();
            bytes.extend_from_slice(&tail);
            let _ = read(&bytes);
        }
    }
}
