//! Write failures (a full disk) through the production writer and reader: the segment ends
//! at its last complete frame, with a trailer when one fits; the recording counts what it
//! could not write and resumes in a new segment that opens with a Loss frame. See: issue #6.

use std::{path::Path, time::Duration};

use age::x25519::Identity;
use recorder_proto::v1::{frame::Body, Header, Loss, Trailer};

use super::{
    catalog::{self, RecordingState, END_DISK_FULL},
    test_support::{event, read_all},
    writer::fault,
    Keyring, OutputDir, RecordingWriter, Seal, SegmentPolicy, SegmentWriter,
};

fn header() -> Header {
    Header {
        recording_id: "d1".repeat(16),
        ..Header::default()
    }
}

fn events_in(bodies: &[Body]) -> Vec<u64> {
    bodies
        .iter()
        .filter_map(|b| match b {
            Body::Event(e) => Some(e.mono_ns),
            _ => None,
        })
        .collect()
}

/// Writes 10 events in a closed frame, then 5 more whose frame fails to close halfway
/// through a write (`failing` writes fail); cuts the segment. Returns the bytes on disk
/// before the failure, the file's path and whether the trailer landed.
fn write_then_fail(
    dir: &OutputDir,
    seal: Option<&Seal>,
    failing: u32,
) -> (Vec<u8>, std::path::PathBuf, bool) {
    let mut writer = match seal {
        Some(seal) => SegmentWriter::create_sealed(dir, "s.rcd", header(), seal).unwrap(),
        None => SegmentWriter::create(dir, "s.rcd", header()).unwrap(),
    };
    for i in 0..10 {
        writer.append(&Body::Event(Box::new(event(i)))).unwrap();
    }
    writer.close_frame().unwrap();
    let before = std::fs::read(writer.path()).unwrap();
    for i in 10..15 {
        writer.append(&Body::Event(Box::new(event(i)))).unwrap();
    }
    fault::fail_next_writes(failing);
    let error = writer.close_frame().unwrap_err();
    assert!(error.to_string().contains("No space left"), "{error}");
    assert!(
        std::fs::metadata(writer.path()).unwrap().len() > before.len() as u64,
        "half a frame reached the file"
    );
    assert!(matches!(
        writer.append(&Body::Event(Box::new(event(99)))),
        Err(super::WriteError::Stopped { .. })
    ));
    let landed = writer.cut(Trailer {
        events: 10,
        end_reason: END_DISK_FULL.into(),
        ..Trailer::default()
    });
    fault::fail_next_writes(0);
    (before, writer.path().clone(), landed)
}

#[test]
fn a_failed_frame_is_cut_away_and_the_trailer_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
    let (before, path, landed) = write_then_fail(&dir, None, 1);
    assert!(landed);
    let after = std::fs::read(&path).unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "earlier bytes untouched"
    );
    let (bodies, end) = read_all(&path, &Keyring::default());
    end.unwrap();
    assert_eq!(events_in(&bodies), (0..10).collect::<Vec<_>>());
    assert!(
        matches!(bodies.last(), Some(Body::Trailer(t)) if t.end_reason == END_DISK_FULL && t.events == 10)
    );
}

#[test]
fn when_the_trailer_does_not_fit_the_segment_ends_at_its_last_complete_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
    let (before, path, landed) = write_then_fail(&dir, None, 2);
    assert!(!landed);
    assert_eq!(std::fs::read(&path).unwrap(), before, "cut back exactly");
    let (bodies, end) = read_all(&path, &Keyring::default());
    end.unwrap();
    assert_eq!(events_in(&bodies), (0..10).collect::<Vec<_>>());
    assert!(!bodies.iter().any(|b| matches!(b, Body::Trailer(_))));
}

#[test]
fn a_sealed_segment_is_cut_at_its_last_block_and_sealed_trailer_ends_it() {
    let identity = Identity::generate();
    let seal = Seal::new(vec![identity.to_public()]).unwrap();
    let mut keyring = Keyring::default();
    keyring.add(identity);
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
    let (before, path, landed) = write_then_fail(&dir, Some(&seal), 1);
    assert!(landed);
    assert_eq!(&std::fs::read(&path).unwrap()[..before.len()], &before[..]);
    let summary = catalog::summarize(&path, &keyring).unwrap();
    assert_eq!(summary.state, catalog::SegmentState::Complete);
    let (bodies, end) = read_all(&path, &keyring);
    end.unwrap();
    assert_eq!(events_in(&bodies), (0..10).collect::<Vec<_>>());
    assert!(matches!(bodies.last(), Some(Body::Trailer(t)) if t.end_reason == END_DISK_FULL));

    // And with no room for the trailer block: every complete block, then a clean end.
    let tmp = tempfile::tempdir().unwrap();
    let dir = OutputDir::open_or_create(&tmp.path().join("r")).unwrap();
    let (before, path, landed) = write_then_fail(&dir, Some(&seal), 2);
    assert!(!landed);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let (bodies, end) = read_all(&path, &keyring);
    end.unwrap();
    assert_eq!(events_in(&bodies), (0..10).collect::<Vec<_>>());
}

/// Every tick closes the open frame, so the test decides what is on disk.
fn policy() -> SegmentPolicy {
    SegmentPolicy {
        compression_level: crate::writer::DEFAULT_COMPRESSION_LEVEL,
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(3600),
        fsync_interval: Some(Duration::ZERO),
    }
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_full_disk_suspends_counts_and_resumes_with_a_loss_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let dir_path = tmp.path().join("r");
    let dir = OutputDir::open_or_create(&dir_path).unwrap();
    let mut writer = RecordingWriter::create(dir, header(), policy(), None).unwrap();
    for i in 0..10 {
        writer.append(&Body::Event(Box::new(event(i)))).unwrap();
    }
    writer.tick(100).unwrap();
    let first = writer.paths()[0].clone();
    let before = std::fs::read(&first).unwrap();

    // Five events in the open frame when the disk fills: they are lost, and counted.
    for i in 10..15 {
        writer.append(&Body::Event(Box::new(event(i)))).unwrap();
    }
    fault::fail_next_writes(1);
    writer.tick(200).unwrap();
    assert!(writer.suspended());
    assert_eq!(writer.unwritten(), 5);
    for i in 15..22 {
        writer.append(&Body::Event(Box::new(event(i)))).unwrap();
    }
    writer
        .append(&Body::Loss(Box::new(Loss {
            syscalls: 3,
            ..Loss::default()
        })))
        .unwrap();
    assert_eq!(writer.unwritten(), 12);

    // Still full: the attempt leaves no file behind and stays suspended.
    fault::fail_next_writes(u32::MAX);
    writer.expire_resume_wait();
    writer.tick(300).unwrap();
    fault::fail_next_writes(0);
    assert!(writer.suspended());
    assert_eq!(segment_files(&dir_path), vec![first.clone()]);

    // Space is back.
    writer.expire_resume_wait();
    writer.tick(400).unwrap();
    assert!(!writer.suspended());
    writer.append(&Body::Event(Box::new(event(22)))).unwrap();
    let paths = writer.finish("test", 500).unwrap();
    assert_eq!(paths.len(), 2);
    assert_eq!(segment_files(&dir_path), paths);

    let keyring = Keyring::default();
    assert_eq!(&std::fs::read(&first).unwrap()[..before.len()], &before[..]);
    let (bodies, end) = read_all(&first, &keyring);
    end.unwrap();
    assert_eq!(events_in(&bodies), (0..10).collect::<Vec<_>>());
    let Some(Body::Trailer(trailer)) = bodies.last() else {
        panic!("no trailer in {bodies:?}");
    };
    assert_eq!(
        (trailer.end_reason.as_str(), trailer.events),
        (END_DISK_FULL, 10)
    );

    let (bodies, end) = read_all(&paths[1], &keyring);
    end.unwrap();
    assert!(matches!(&bodies[0], Body::Header(h) if h.segment_seq == 1));
    let Body::Loss(loss) = &bodies[1] else {
        panic!("segment 1 opens with {:?}", bodies[1]);
    };
    assert_eq!((loss.unwritten_frames, loss.syscalls), (12, 3));
    // From the last complete frame (the real clock) to the resume (the tick's time).
    assert!(loss.from_mono_ns > 0);
    assert_eq!(loss.to_mono_ns, 400);
    assert_eq!(events_in(&bodies), vec![22]);
    let Some(Body::Trailer(trailer)) = bodies.last() else {
        panic!("no trailer in {bodies:?}");
    };
    assert_eq!(trailer.end_reason, "test");
    assert_eq!(trailer.losses.unwrap().unwritten_frames, 12);

    let (recordings, problems) = catalog::scan(&dir_path, &keyring).unwrap();
    assert!(problems.is_empty());
    assert_eq!(recordings[0].state(), RecordingState::Complete);
    assert_eq!(recordings[0].losses(), 15);
}

#[test]
fn without_room_for_a_trailer_the_recording_still_reads_across_the_gap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir_path = tmp.path().join("r");
    let dir = OutputDir::open_or_create(&dir_path).unwrap();
    let mut writer = RecordingWriter::create(dir, header(), policy(), None).unwrap();
    writer.append(&Body::Event(Box::new(event(0)))).unwrap();
    writer.tick(100).unwrap();
    writer.append(&Body::Event(Box::new(event(1)))).unwrap();
    fault::fail_next_writes(2);
    writer.tick(200).unwrap();
    fault::fail_next_writes(0);
    assert!(writer.suspended());
    let paths = writer.finish("test", 300).unwrap();
    assert_eq!(paths.len(), 2, "finish resumes when it can");

    let keyring = Keyring::default();
    let (bodies, end) = read_all(&paths[0], &keyring);
    end.unwrap();
    assert_eq!(events_in(&bodies), vec![0]);
    assert!(!bodies.iter().any(|b| matches!(b, Body::Trailer(_))));
    let (recordings, _) = catalog::scan(&dir_path, &keyring).unwrap();
    assert_eq!(recordings[0].state(), RecordingState::Complete);
    assert_eq!(recordings[0].losses(), 1);
}

#[test]
fn finishing_while_the_disk_is_still_full_keeps_what_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir_path = tmp.path().join("r");
    let dir = OutputDir::open_or_create(&dir_path).unwrap();
    let mut writer = RecordingWriter::create(dir, header(), policy(), None).unwrap();
    writer.append(&Body::Event(Box::new(event(0)))).unwrap();
    writer.tick(100).unwrap();
    fault::fail_next_writes(u32::MAX);
    writer.append(&Body::Event(Box::new(event(1)))).unwrap();
    writer.tick(200).unwrap();
    assert!(writer.suspended());
    let paths = writer.finish("test", 300).unwrap();
    fault::fail_next_writes(0);
    assert_eq!(segment_files(&dir_path), paths);
    assert_eq!(paths.len(), 1);
    let (bodies, end) = read_all(&paths[0], &Keyring::default());
    end.unwrap();
    assert_eq!(events_in(&bodies), vec![0]);
}

#[test]
fn resume_attempts_back_off_to_a_minute_and_start_again_once_writing_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir_path = tmp.path().join("r");
    let dir = OutputDir::open_or_create(&dir_path).unwrap();
    let mut writer = RecordingWriter::create(dir, header(), policy(), None).unwrap();
    writer.append(&Body::Event(Box::new(event(0)))).unwrap();
    fault::fail_next_writes(1);
    writer.tick(100).unwrap();
    assert!(writer.suspended());
    assert_eq!(writer.resume_wait(), Duration::from_secs(1));
    // A tick before the wait is over makes no attempt (one would fail and double it).
    fault::fail_next_writes(u32::MAX);
    writer.tick(150).unwrap();
    assert_eq!(writer.resume_wait(), Duration::from_secs(1));

    // Every failed attempt doubles the wait, up to a minute.
    let mut waits = Vec::new();
    for _ in 0..8 {
        writer.expire_resume_wait();
        writer.tick(200).unwrap();
        waits.push(writer.resume_wait().as_secs());
    }
    fault::fail_next_writes(0);
    assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60, 60]);
    assert_eq!(writer.resume_wait(), Duration::from_secs(60));
    assert!(writer.suspended());

    // Space is back: the next attempt resumes, and once a frame is on disk a later failure
    // starts again from one second.
    writer.expire_resume_wait();
    writer.tick(400).unwrap();
    assert!(!writer.suspended());
    writer.append(&Body::Event(Box::new(event(1)))).unwrap();
    writer.tick(500).unwrap();
    assert_eq!(writer.resume_wait(), Duration::from_secs(1));
}
