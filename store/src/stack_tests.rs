//! Stacks (`--stacks`) are written once per segment, before the first event there that
//! refers to them, and again in every segment after a rotation. See: issue #19.

use std::time::Duration;

use recorder_proto::v1::{frame::Body, Header, Stack, StackFrame};

use super::{test_support::read_all, Keyring, OutputDir, RecordingWriter, SegmentPolicy};

#[test]
fn each_segment_holds_the_stacks_its_events_use_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
    let policy = SegmentPolicy {
        compression_level: crate::writer::DEFAULT_COMPRESSION_LEVEL,
        max_bytes: 64 * 1024,
        max_age: Duration::from_secs(3600),
        fsync_interval: None,
    };
    let header = Header {
        recording_id: "5a".repeat(16),
        ..Header::default()
    };
    let mut writer = RecordingWriter::create(dir, header, policy, None).unwrap();
    for id in [1, 2] {
        writer.add_stack(Stack {
            id,
            frames: vec![StackFrame {
                function: format!("caller_{id}"),
                ..StackFrame::default()
            }],
        });
    }
    // Incompressible payloads, so that segments fill; stack 2 only on every tenth event.
    let mut state = 1u32;
    for i in 0..3000u64 {
        let mut event = super::test_support::event(i);
        let payload = event.payload.as_mut().unwrap();
        payload.data = (0..256)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (state >> 16) as u8
            })
            .collect();
        event.stack_id = if i % 10 == 0 { 2 } else { 1 };
        writer.append(&Body::Event(Box::new(event))).unwrap();
    }
    let paths = writer.finish("test", 1).unwrap();
    assert!(paths.len() >= 3, "{} segments", paths.len());
    for path in paths {
        let (bodies, end) = read_all(&path, &Keyring::default());
        end.unwrap();
        let mut written = Vec::new();
        for body in bodies {
            match body {
                Body::Stack(stack) => {
                    assert!(!written.contains(&stack.id), "stack {} twice", stack.id);
                    assert_eq!(stack.frames[0].function, format!("caller_{}", stack.id));
                    written.push(stack.id);
                }
                Body::Event(event) => assert!(
                    written.contains(&event.stack_id),
                    "event {} uses stack {} before {} holds it",
                    event.mono_ns,
                    event.stack_id,
                    path.display()
                ),
                _ => {}
            }
        }
        assert!(!written.is_empty());
    }
}
