//! Writes `seeds/read_sealed/segment.rcd`: a sealed segment to the fuzz identity (key.rs)
//! with a Header, events with payloads, a Loss and a Trailer, all made up here (no host's
//! details), as the real writer writes it. Run from fuzz/inputs:
//! `cargo run --release --bin make_seed`.

use std::{path::Path, str::FromStr};

use recorder_proto::v1::{frame::Body, Event, Header, Loss, Payload, Trailer};
use recorder_store::{OutputDir, Seal, SegmentWriter};

#[path = "key.rs"]
mod key;

fn main() {
    let identity = age::x25519::Identity::from_str(key::IDENTITY).expect("the fuzz identity");
    let seal = Seal::new(vec![identity.to_public()]).expect("one recipient");
    let scratch = std::env::temp_dir().join(format!("recorder-make-seed-{}", std::process::id()));
    let dir = OutputDir::open_or_create(&scratch).expect("a scratch directory");
    let header = Header {
        recording_id: "f0".repeat(16),
        ..Header::default()
    };
    let mut writer =
        SegmentWriter::create_sealed(&dir, "seed.rcd", header, &seal).expect("a sealed segment");
    for i in 0..8u64 {
        let event = Event {
            mono_ns: 1000 + i,
            syscall: "write".into(),
            payload: Some(Payload {
                data: format!("payload {i}\n").into_bytes(),
                length: 10,
                ..Payload::default()
            }),
            ..Event::default()
        };
        writer.append(&Body::Event(Box::new(event))).expect("append");
        if i == 3 {
            writer.close_frame().expect("a first block");
        }
    }
    writer
        .append(&Body::Loss(Box::new(Loss {
            syscalls: 2,
            ..Loss::default()
        })))
        .expect("append");
    let trailer = Trailer {
        events: 8,
        end_reason: "seed".into(),
        ..Trailer::default()
    };
    writer.end(trailer, &dir).expect("the trailer");
    let out = Path::new("seeds/read_sealed/segment.rcd");
    std::fs::copy(scratch.join("seed.rcd"), out).expect("copying the seed");
    std::fs::remove_dir_all(&scratch).expect("removing the scratch directory");
    println!("wrote {}", out.display());
}
