//! Writer and reader throughput on a realistic HTTP/JSON recording: frames/s, payload MB/s,
//! and the compression ratio (payload bytes per byte on disk). Prints a Markdown table row;
//! `--quick` runs a small sample to check the harness.

use std::time::Instant;

use rand::{rngs::StdRng, Rng, SeedableRng};
use recorder_daemon::record::{OutputDir, SegmentReader, SegmentWriter};
use recorder_proto::v1::{
    frame::Body, payload::Direction, resource::Kind, Event, Header, Payload, Resource,
    SocketAddress, Trailer,
};

/// An HTTP/1.1 request or response with a JSON body, as a service on a staging host sends
/// them: mostly the same keys, with ids, timestamps and amounts that change.
fn http_payload(rng: &mut StdRng, i: u64) -> (Direction, Vec<u8>) {
    let order = rng.random_range(100_000..999_999);
    let items: Vec<String> = (0..rng.random_range(1..8))
        .map(|n| {
            format!(
                r#"{{"sku":"SKU-{:05}","qty":{},"price_cents":{},"name":"item {n}"}}"#,
                rng.random_range(0..99_999),
                rng.random_range(1..5),
                rng.random_range(100..99_999)
            )
        })
        .collect();
    let body = format!(
        r#"{{"order_id":{order},"customer":{{"id":"c-{:08x}","tier":"gold"}},"items":[{}],"created_at":"2026-11-22T13:{:02}:{:02}.{:03}Z","currency":"EUR"}}"#,
        rng.random::<u32>(),
        items.join(","),
        i % 60,
        (i / 60) % 60,
        i % 1000
    );
    if i.is_multiple_of(2) {
        let head = format!(
            "POST /api/v1/orders HTTP/1.1\r\nHost: orders.staging.internal\r\nContent-Type: application/json\r\nUser-Agent: checkout/4.2\r\nX-Request-Id: {:032x}\r\nContent-Length: {}\r\n\r\n",
            rng.random::<u128>(),
            body.len()
        );
        (
            Direction::Out,
            [head.into_bytes(), body.into_bytes()].concat(),
        )
    } else {
        let head = format!(
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nDate: Sun, 22 Nov 2026 13:{:02}:{:02} GMT\r\nContent-Length: {}\r\n\r\n",
            i % 60,
            (i / 60) % 60,
            body.len()
        );
        (
            Direction::In,
            [head.into_bytes(), body.into_bytes()].concat(),
        )
    }
}

fn event(rng: &mut StdRng, i: u64) -> Event {
    let (direction, data) = http_payload(rng, i);
    let out = direction == Direction::Out;
    Event {
        mono_ns: 1_000_000_000 + i * 50_000,
        duration_ns: rng.random_range(2_000..40_000),
        pid: 4242,
        tid: 4242 + (i % 4) as u32,
        syscall: if out { "sendto" } else { "recvfrom" }.into(),
        syscall_nr: if out { 44 } else { 45 },
        args: vec![7, 0x7ffd_1234_0000 + i, data.len() as u64, 0, 0, 0],
        ret: data.len() as i64,
        fd: 7,
        resource: Some(Resource {
            kind: Kind::Socket.into(),
            name: "socket".into(),
            peer: Some(SocketAddress {
                family: 2,
                ip: vec![10, 1, 2, 3],
                port: 8080,
                unix_path: String::new(),
            }),
            socket_family: 2,
            socket_type: 1,
            ..Resource::default()
        }),
        payload: Some(Payload {
            direction: direction.into(),
            length: data.len() as u64,
            data,
            ..Payload::default()
        }),
        ..Event::default()
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let count: u64 = if quick { 5_000 } else { 200_000 };
    let mut rng = StdRng::seed_from_u64(7);
    let events: Vec<Event> = (0..count).map(|i| event(&mut rng, i)).collect();
    let payload_bytes: u64 = events
        .iter()
        .map(|e| e.payload.as_ref().unwrap().data.len() as u64)
        .sum();

    let tmp = std::env::temp_dir().join(format!("recorder-bench-{}", std::process::id()));
    let dir = OutputDir::open_or_create(&tmp).expect("bench directory");
    let header = Header {
        recording_id: "00".repeat(16),
        ..Header::default()
    };
    let started = Instant::now();
    let mut writer = SegmentWriter::create(&dir, "bench.rcd", header).expect("create");
    for event in events {
        writer.append(Body::Event(event)).expect("append");
    }
    let path = writer
        .finish(
            Trailer {
                events: count,
                ..Trailer::default()
            },
            &dir,
        )
        .expect("finish");
    let write_secs = started.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&path).expect("segment").len();

    let started = Instant::now();
    let mut reader = SegmentReader::open(&path).expect("open");
    let mut frames = 0u64;
    while reader.next_body().expect("read").is_some() {
        frames += 1;
    }
    let read_secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&tmp);
    assert_eq!(frames, count + 2, "header, every event, trailer");

    let mb = payload_bytes as f64 / 1e6;
    println!("| writer | {count} events, {:.1} MB of HTTP/JSON payload | {:.0} frames/s | {:.1} MB/s | {:.2} s |", mb, count as f64 / write_secs, mb / write_secs, write_secs);
    println!(
        "| reader | same segment | {:.0} frames/s | {:.1} MB/s | {:.2} s |",
        count as f64 / read_secs,
        mb / read_secs,
        read_secs
    );
    println!("| on disk | {file_bytes} bytes | compression ratio {:.1} : 1 ({:.1} % of payload bytes) | | |", payload_bytes as f64 / file_bytes as f64, 100.0 * file_bytes as f64 / payload_bytes as f64);
}
