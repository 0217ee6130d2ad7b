//! How fast the pipeline's redaction stage takes payloads of many streams, with the shards
//! on the pipeline's thread (`--threads 0`) and on worker threads: HTTP requests (a bearer
//! token, a JSON body with an email) written round-robin on STREAMS sockets, pushed and
//! released as the pipeline does, without the kernel or the writer.
//!
//! `cargo run --release -p recorder-daemon --example redaction_stage [-- STREAMS MIB THREADS...]`
//! (defaults: 8 streams, 64 MiB, threads 0 1 2). Prints MiB/s for each thread count; the
//! best of three runs.

use std::{sync::Arc, time::Instant};

use recorder_daemon::pipeline::{redaction::Redactor, spare::Spare};
use recorder_proto::v1::{
    frame::Body, payload::Direction, resource::Kind, Event, Payload, Resource,
};
use recorder_redact::{Config, Policy};

/// Records per batch from the ring, about (the drain's batches vary with load).
const RING_BATCH: usize = 64;

fn request(i: usize) -> Vec<u8> {
    let body = format!(
        r#"{{"order":{i},"email":"buyer{i}@example.com","items":[{{"sku":"A-{i}","qty":2}}],"note":"ring twice"}}"#
    );
    format!(
        "POST /orders/{i} HTTP/1.1\r\nHost: shop.internal\r\nAuthorization: Bearer \
         eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ7fSJ9.c2lnbmF0dXJl{i}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn event(stream: usize, data: Vec<u8>) -> Body {
    let length = data.len() as u64;
    Body::Event(Box::new(Event {
        pid: 1000,
        fd: 10 + stream as i64,
        syscall: "write".to_owned(),
        syscall_nr: recorder_syscalls::by_name("write").expect("write").nr as u32,
        ret: length as i64,
        resource: Some(Box::new(Resource {
            kind: Kind::Socket.into(),
            ..Resource::default()
        })),
        payload: Some(Payload {
            direction: Direction::Out.into(),
            data,
            length,
            ..Payload::default()
        }),
        ..Event::default()
    }))
}

/// Seconds to push and write out `requests` round-robin over `streams`.
fn run(policy: &Arc<Policy>, threads: usize, streams: usize, requests: &[Vec<u8>]) -> f64 {
    let mut redactor = Redactor::new(policy.clone(), threads);
    let mut spare = Spare::default();
    let mut written = 0usize;
    let started = Instant::now();
    for (i, data) in requests.iter().enumerate() {
        redactor.push(event(i % streams, data.clone()), i as u64);
        // The pipeline releases after every frame it pushes, and flushes after each
        // batch from the ring.
        if i % RING_BATCH == RING_BATCH - 1 {
            redactor.flush();
        }
        written += release(&mut redactor, &mut spare);
    }
    redactor.finish();
    written += release(&mut redactor, &mut spare);
    assert_eq!(written, requests.len(), "every frame is written");
    started.elapsed().as_secs_f64()
}

/// Frames the redactor has decided, written nowhere; returns how many.
fn release(redactor: &mut Redactor, spare: &mut Spare) -> usize {
    let mut written = 0;
    redactor
        .release(spare, |_, _| {
            written += 1;
            Ok::<_, ()>(())
        })
        .expect("writes cannot fail here");
    written
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("STREAMS MIB THREADS... are numbers"))
        .collect();
    let streams = args.first().copied().unwrap_or(8).max(1);
    let mib = args.get(1).copied().unwrap_or(64);
    let threads = match args.get(2..) {
        Some(list) if !list.is_empty() => list.to_vec(),
        _ => vec![0, 1, 2],
    };
    let policy = Arc::new(Policy::new(&Config::default()).expect("the default policy"));
    let mut requests = Vec::new();
    let mut bytes = 0;
    while bytes < mib << 20 {
        let next = request(requests.len());
        bytes += next.len();
        requests.push(next);
    }
    for threads in threads {
        let best = (0..3)
            .map(|_| run(&policy, threads, streams, &requests))
            .fold(f64::MAX, f64::min);
        let rate = bytes as f64 / best / (1 << 20) as f64;
        let noun = if streams == 1 { "stream" } else { "streams" };
        println!("{streams} {noun}, --threads {threads}: {rate:.1} MiB/s");
    }
}
