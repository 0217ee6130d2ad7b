//! Recordings on disk: the segment layout (`segment`), the output directory (`dir`), and the
//! writer and reader of segments. docs/FORMAT.md is the contract this module implements.

pub mod dir;
pub mod reader;
pub mod segment;
pub mod writer;

pub use dir::{DirError, OutputDir};
pub use reader::{ReadError, SegmentReader};
pub use writer::{SegmentWriter, WriteError};

#[cfg(test)]
mod tests {
    use recorder_proto::v1::{frame::Body, Event, Header, Payload, Trailer};

    use super::*;

    fn event(i: u64) -> Event {
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

    /// Writes a segment of `events` events; `finish` decides whether it gets a trailer.
    fn write_segment(dir: &OutputDir, events: u64, finish: bool) -> std::path::PathBuf {
        let header = Header {
            recording_id: "ab".repeat(16),
            ..Header::default()
        };
        let mut writer = SegmentWriter::create(dir, "s.rcd", header).unwrap();
        for i in 0..events {
            writer.append(Body::Event(event(i))).unwrap();
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
        let mut reader = SegmentReader::open(path).unwrap();
        let mut bodies = Vec::new();
        loop {
            match reader.next_body() {
                Ok(Some(body)) => bodies.push(body),
                Ok(None) => return (bodies, Ok(())),
                Err(error) => return (bodies, Err(error)),
            }
        }
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
        assert!(matches!(&bodies[57], Body::Event(e) if *e == event(56)));
        assert!(matches!(&bodies[101], Body::Trailer(t) if t.events == 100));
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
