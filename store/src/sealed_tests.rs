//! Sealed segments end to end through the production writer and reader: they read back with
//! any of their identities and no other, hide their payloads, and keep the crash-safety
//! rules of unsealed segments (a torn tail yields every complete block; damage is reported
//! at the offset of the block where it starts). See: issue #7.

use std::path::{Path, PathBuf};

use age::x25519::Identity;
use proptest::prelude::*;
use rand::{rngs::StdRng, RngCore, SeedableRng};
use recorder_proto::v1::{frame::Body, ClockBase, Event, Header, Payload, Trailer};

use super::{
    catalog::{self, SegmentState},
    seal,
    test_support::read_all,
    Keyring, OutputDir, ReadError, Seal, SegmentReader, SegmentWriter,
};

const HOST: &str = "db-primary.secret.internal";

fn header() -> Header {
    Header {
        recording_id: "5e".repeat(16),
        segment_seq: 0,
        host: HOST.into(),
        clock: Some(ClockBase {
            monotonic_ns: 1,
            realtime_ns: 1_795_000_000_000_000_000,
        }),
        ..Header::default()
    }
}

fn event(i: u64, data: Vec<u8>) -> Event {
    Event {
        mono_ns: i,
        syscall: "write".into(),
        payload: Some(Payload {
            length: data.len() as u64,
            data,
            ..Payload::default()
        }),
        ..Event::default()
    }
}

fn keyring(identities: &[&Identity]) -> Keyring {
    let mut keyring = Keyring::default();
    for identity in identities {
        keyring.add((*identity).clone());
    }
    keyring
}

/// Writes a segment sealed to `seal` holding `payloads`, closing a block every `every`
/// events; `finish` decides whether it gets a trailer. Returns its path and its frames.
fn write_sealed(
    dir: &Path,
    seal: &Seal,
    payloads: &[Vec<u8>],
    every: usize,
    finish: bool,
) -> (PathBuf, Vec<Body>) {
    let dir = OutputDir::open_or_create(dir).unwrap();
    let mut bodies = vec![Body::Header(Box::new(header()))];
    let mut writer = SegmentWriter::create_sealed(&dir, "s.rcd", header(), seal).unwrap();
    for (i, data) in payloads.iter().enumerate() {
        let event = event(i as u64, data.clone());
        bodies.push(Body::Event(Box::new(event.clone())));
        writer.append(&Body::Event(Box::new(event))).unwrap();
        if (i + 1) % every == 0 {
            writer.close_frame().unwrap();
        }
    }
    if !finish {
        writer.close_frame().unwrap();
        let path = writer.path().clone();
        // A killed writer: no trailer, no end marker.
        std::mem::forget(writer);
        return (path, bodies);
    }
    let trailer = Trailer {
        events: payloads.len() as u64,
        end_reason: "test".into(),
        ..Trailer::default()
    };
    bodies.push(Body::Trailer(Box::new(trailer.clone())));
    (writer.finish(trailer, &dir).unwrap(), bodies)
}

fn payloads(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("GET /orders/{i} HTTP/1.1\r\n\r\n").into_bytes())
        .collect()
}

/// File offsets of the sealed blocks of `bytes` (a whole sealed segment), end marker last.
fn block_offsets(bytes: &[u8]) -> Vec<usize> {
    let header_len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let mut offset = 20 + header_len;
    let mut offsets = Vec::new();
    while offset + 4 <= bytes.len() {
        offsets.push(offset);
        let len = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        offset += 4 + len;
    }
    offsets
}

#[test]
fn round_trip_through_seal_and_read() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = Identity::generate();
    let seal = Seal::new(vec![identity.to_public()]).unwrap();
    let (path, written) = write_sealed(tmp.path(), &seal, &payloads(50), 7, true);
    let (read, end) = read_all(&path, &keyring(&[&identity]));
    end.unwrap();
    assert_eq!(read, written);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[10], 1, "flags bit 0 marks the segment sealed");
    // Header block, 8 event blocks (7 full, the last with the trailer), the end marker.
    assert_eq!(block_offsets(&bytes).len(), 1 + 8 + 1);
}

#[test]
fn a_wrong_identity_is_refused_with_the_recipients_named() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = Identity::generate();
    let recipient = identity.to_public().to_string();
    let seal = Seal::new(vec![identity.to_public()]).unwrap();
    let (path, _) = write_sealed(tmp.path(), &seal, &payloads(3), 2, true);
    for keyring in [Keyring::default(), keyring(&[&Identity::generate()])] {
        let error = SegmentReader::open_with(&path, &keyring).err().unwrap();
        let message = error.to_string();
        assert!(matches!(error, ReadError::Sealed { .. }), "{message}");
        assert!(
            message.contains(&format!("is sealed for {recipient}")),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
    let message = SegmentReader::open(&path).err().unwrap().to_string();
    assert!(message.contains("--identity FILE"), "{message}");
}

#[test]
fn raw_bytes_hide_payloads_and_secret_header_fields() {
    let tmp = tempfile::tempdir().unwrap();
    // Random bytes do not compress: zstd stores them verbatim, so an unsealed segment shows
    // them (checked below) and only sealing can hide them.
    let mut secret = vec![0u8; 4096];
    StdRng::seed_from_u64(7).fill_bytes(&mut secret);
    let payloads = vec![b"password=hunter2".to_vec(), secret.clone()];
    let identity = Identity::generate();
    let seal = Seal::new(vec![identity.to_public()]).unwrap();
    let (path, _) = write_sealed(&tmp.path().join("sealed"), &seal, &payloads, 1, true);
    let sealed = std::fs::read(path).unwrap();

    let dir = OutputDir::open_or_create(&tmp.path().join("plain")).unwrap();
    let mut writer = SegmentWriter::create(&dir, "p.rcd", header()).unwrap();
    writer
        .append(&Body::Event(Box::new(event(0, secret.clone()))))
        .unwrap();
    let plain = std::fs::read(writer.finish(Trailer::default(), &dir).unwrap()).unwrap();

    let contains = |haystack: &[u8], needle: &[u8]| {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    };
    assert!(
        contains(&plain, &secret[..64]),
        "control: unsealed shows it"
    );
    assert!(!contains(&sealed, &secret[..64]));
    assert!(!contains(&sealed, b"hunter2"));
    assert!(!contains(&sealed, HOST.as_bytes()));
    // What the seal header reveals, by design.
    assert!(contains(&sealed, "5e".repeat(16).as_bytes()));
    assert!(contains(
        &sealed,
        identity.to_public().to_string().as_bytes()
    ));
}

#[test]
fn a_truncated_segment_yields_its_complete_blocks_and_says_incomplete() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = Identity::generate();
    let keys = keyring(&[&identity]);
    let seal = Seal::new(vec![identity.to_public()]).unwrap();
    let (path, written) = write_sealed(tmp.path(), &seal, &payloads(30), 4, true);
    let full = std::fs::read(&path).unwrap();
    let offsets = block_offsets(&full);
    // Every cut near a block boundary, inside the plain header, and a spread in between.
    let mut cuts: Vec<usize> = offsets
        .iter()
        .flat_map(|&o| [o.saturating_sub(1), o, o + 1, o + 3, o + 4, o + 5])
        .chain(0..40)
        .chain((0..full.len()).step_by(full.len() / 60))
        .filter(|&cut| cut < full.len())
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    // The header block, seven blocks of 4 events, then 2 events and the trailer.
    let frames_per_block = [1, 4, 4, 4, 4, 4, 4, 4, 3];
    assert_eq!(
        offsets.len(),
        frames_per_block.len() + 1,
        "and the end marker"
    );
    let end_marker = *offsets.last().unwrap();
    let cut_path = tmp.path().join("cut.rcd");
    for cut in cuts {
        std::fs::write(&cut_path, &full[..cut]).unwrap();
        let (read, end) = read_all(&cut_path, &keys);
        // Exactly the frames of the blocks wholly before the cut.
        let whole = offsets.windows(2).filter(|w| w[1] <= cut).count();
        let expected: usize = frames_per_block[..whole].iter().sum();
        assert_eq!(read.len(), expected, "cut at {cut}");
        assert_eq!(&read[..], &written[..read.len()], "cut at {cut}");
        match end {
            Err(ReadError::Truncated { offset, .. }) => {
                assert!(!offsets.contains(&cut), "cut at {cut}");
                assert!(offset as usize <= cut, "cut at {cut}: torn at {offset}");
            }
            Err(ReadError::NotARecording { .. }) => assert!(cut < 16),
            // A cut exactly between blocks is a clean end of what is there; without the
            // trailer, the catalog calls it incomplete.
            Ok(()) => {
                assert!(offsets.contains(&cut), "cut at {cut}");
                if whole == 0 {
                    // Not even the Header block: the catalog skips it as no recording.
                    continue;
                }
                let summary = catalog::summarize(&cut_path, &keys).unwrap();
                let expected_state = match cut {
                    // Only the end marker is missing: the trailer was read.
                    c if c == end_marker => SegmentState::Complete,
                    _ => SegmentState::Incomplete { damage: None },
                };
                assert_eq!(summary.state, expected_state, "cut at {cut}");
            }
            Err(other) => panic!("cut at {cut}: {other}"),
        }
    }
}

#[test]
fn a_killed_writer_leaves_every_closed_block_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = Identity::generate();
    let seal = Seal::new(vec![identity.to_public()]).unwrap();
    let (path, written) = write_sealed(tmp.path(), &seal, &payloads(10), 3, false);
    let (read, end) = read_all(&path, &keyring(&[&identity]));
    end.unwrap();
    assert_eq!(read, written, "every closed block, no trailer");
    let summary = catalog::summarize(&path, &Keyring::default()).unwrap();
    assert!(matches!(
        summary.state,
        SegmentState::Sealed { ended: false, .. }
    ));
}

#[test]
fn two_recipients_open_with_either_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let (team, escrow) = (Identity::generate(), Identity::generate());
    let seal = Seal::new(vec![team.to_public(), escrow.to_public()]).unwrap();
    let (path, written) = write_sealed(tmp.path(), &seal, &payloads(12), 5, true);
    for identity in [&team, &escrow] {
        let (read, end) = read_all(&path, &keyring(&[identity]));
        end.unwrap();
        assert_eq!(read, written);
    }
    let summary = catalog::summarize(&path, &Keyring::default()).unwrap();
    assert!(matches!(
        summary.state,
        SegmentState::Sealed { ended: true, .. }
    ));
    assert_eq!(summary.seal.unwrap().recipients.len(), 2);
    assert_eq!(summary.header.recording_id, "5e".repeat(16));
}

#[test]
fn a_corrupt_block_is_named_by_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = Identity::generate();
    let keys = keyring(&[&identity]);
    let seal = Seal::new(vec![identity.to_public()]).unwrap();
    let (path, written) = write_sealed(tmp.path(), &seal, &payloads(20), 4, true);
    let original = std::fs::read(&path).unwrap();
    let mut bytes = original.clone();
    let offsets = block_offsets(&bytes);
    // Block 3 (events 9..12): flip a byte in its ciphertext, past the age header.
    let victim = offsets[3];
    let next = offsets[4];
    bytes[next - 10] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (read, end) = read_all(&path, &keys);
    assert_eq!(
        read,
        written[..1 + 2 * 4],
        "the header block and two event blocks"
    );
    match end {
        Err(ReadError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, victim as u64, "{reason}");
            assert!(reason.contains("does not decrypt"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // A block dropped from the middle is caught by the index inside the next one.
    let mut dropped = original[..offsets[1]].to_vec();
    dropped.extend_from_slice(&original[offsets[2]..]);
    std::fs::write(&path, &dropped).unwrap();
    let (_, end) = read_all(&path, &keys);
    assert!(
        matches!(&end, Err(ReadError::Corrupt { reason, offset, .. })
            if reason.contains("reordered") && *offset == offsets[1] as u64),
        "{end:?}"
    );
}

#[test]
fn a_seal_header_that_lies_about_the_recording_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let identity = Identity::generate();
    let seal = Seal::new(vec![identity.to_public()]).unwrap();
    let (path, _) = write_sealed(tmp.path(), &seal, &payloads(2), 1, true);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(10).position(|w| w == b"recording ").unwrap();
    bytes[at + 10] = b'f';
    std::fs::write(&path, &bytes).unwrap();
    let (read, end) = read_all(&path, &keyring(&[&identity]));
    assert!(read.is_empty());
    assert!(
        matches!(&end, Err(ReadError::Corrupt { reason, .. }) if reason.contains("seal header says")),
        "{end:?}"
    );
}

#[test]
fn per_block_overhead_is_the_age_header_and_tags() {
    // Per block: our 4-byte length and 4-byte index; age's header — "age-encryption.org/v1\n"
    // (22), a 98-byte stanza per recipient, the MAC line (48) — its 16-byte nonce and a
    // 16-byte tag per 64 KiB chunk. age also adds one random "grease" stanza to every
    // header (13 to 192 bytes) so that parsers keep accepting unknown stanzas.
    for recipients in [1usize, 2, 3] {
        let seal = Seal::new(
            (0..recipients)
                .map(|_| Identity::generate().to_public())
                .collect(),
        )
        .unwrap();
        let fixed = 8 + 22 + 98 * recipients + 48 + 16 + 16;
        for _ in 0..20 {
            let mut framed = Vec::new();
            seal::write_block(seal.open_block(0).unwrap(), &mut framed).unwrap();
            let grease = framed.len() - fixed;
            assert!(
                (13..=192).contains(&grease),
                "{recipients} recipients: {}",
                framed.len()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn flipped_bytes_yield_a_prefix_or_an_error(flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let identity = Identity::generate();
        let seal = Seal::new(vec![identity.to_public()]).unwrap();
        let (path, written) = write_sealed(tmp.path(), &seal, &payloads(12), 3, true);
        let mut bytes = std::fs::read(&path).unwrap();
        for (at, mask) in &flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        std::fs::write(&path, &bytes).unwrap();
        let (read, _) = read_all(&path, &keyring(&[&identity]));
        // Authenticated blocks: what decrypts is what was written, in order.
        prop_assert!(read.len() <= written.len());
        prop_assert_eq!(&read[..], &written[..read.len()]);
    }
}
