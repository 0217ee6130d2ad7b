//! recorderd's pipeline on the records the probes write for `recorder-bench-load syscalls`
//! (a pipe, a socket pair and a file, each written and read SIZE bytes at a time), made
//! here and replayed through `Pipeline::handle` into a real recording: decode, assemble,
//! fd table, redaction, protobuf and zstd, without the kernel, the ring or other load.
//!
//! `cargo run --release -p recorder-daemon --example pipeline_replay [-- SIZE ITERS]`
//! (defaults: 64 bytes, 100000 iterations of six syscalls). Prints the time per event.
//! `xtask/count-pipeline.sh` runs it under callgrind (`--toggle-collect=pipeline_replay::replay*`)
//! at two ITERS: their difference gives the instructions per event exactly, which a syscall
//! loop under recorderd, timed by its CPU ticks, varies too much between runs to show.

use std::{
    fs::File,
    io::pipe,
    mem::{offset_of, size_of},
    os::{fd::AsRawFd, unix::net::UnixStream},
    path::PathBuf,
    time::Instant,
};

use recorder_common::{kind, record::flags, DataRecord, EventHeader, SyscallRecord, CHUNK_BYTES};
use recorder_daemon::pipeline::{
    fdtable::FdTable, processes::Processes, redaction::Redactor, Pipeline, PipelineStats,
};
use recorder_proto::v1::Header;
use recorder_redact::{Config, Policy};
use recorder_store::{OutputDir, RecordingWriter, SegmentPolicy, SegmentReader, WriteError};
use recorder_syscalls::Syscall;

/// recorderd's default payload cap (`--max-payload`).
const MAX_PAYLOAD_BYTES: usize = recorder_config::defaults::MAX_PAYLOAD_BYTES as usize;
/// Records per call of `end_batch`: about what the drain hands over per millisecond in the
/// syscall loop under recorderd.
const BATCH_RECORDS: usize = 512;
/// Time between two syscalls, as in the loop under recorderd, and between the pipeline's
/// ticks (recorderd's is 250 ms).
const SYSCALL_NS: u64 = 2_400;
const TICK_NS: u64 = 250_000_000;

/// Records made as the probes lay them out (`#[repr(C)]`, little-endian), field by field,
/// into one buffer that each record reuses.
#[derive(Default)]
struct Records(Vec<u8>);

impl Records {
    fn start(&mut self, kind: u32, len: usize, ns: u64, pid: u32) -> &mut Records {
        self.0.clear();
        self.u32(kind).u32(len as u32).u64(ns).u32(pid).u32(pid)
    }
    fn u32(&mut self, value: u32) -> &mut Records {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }
    fn u64(&mut self, value: u64) -> &mut Records {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// One payload chunk: `chunk`, at `offset` in its syscall's payload.
    fn data(&mut self, nr: u32, ns: u64, pid: u32, offset: usize, chunk: &[u8]) -> &[u8] {
        let len = size_of::<DataRecord>() + chunk.len();
        self.start(kind::DATA, len, ns, pid)
            .u32(nr)
            .u32(chunk.len() as u32)
            .u64(offset as u64);
        self.0.extend_from_slice(chunk);
        &self.0
    }

    fn syscall(&mut self, row: &Syscall, args: [u64; 6], ret: i64, ns: u64, pid: u32) -> &[u8] {
        let len = size_of::<SyscallRecord>();
        let truncated = ret > MAX_PAYLOAD_BYTES as i64;
        self.start(kind::SYSCALL, len, ns, pid)
            .u32(row.nr as u32)
            .u32(if truncated {
                flags::PAYLOAD_TRUNCATED
            } else {
                0
            });
        for arg in args {
            self.u64(arg);
        }
        self.u64(ret as u64)
            .u64(ns - SYSCALL_NS / 2)
            .u32(0)
            .u32(u32::from(row.class));
        &self.0
    }
}

/// The syscalls of one iteration of the loop, with their arguments.
type LoopBody = [(&'static Syscall, [u64; 6]); 6];

/// Hands the pipeline `iters` iterations of the loop as the drain would, in batches, with
/// its ticks, and finishes the recording: the part a profile should count
/// (`callgrind --toggle-collect=*replay*`). Returns the pipeline's stats, the segment files
/// and how many frames were not written.
#[inline(never)]
fn replay(
    mut pipeline: Pipeline,
    body: &LoopBody,
    payload: &[u8],
    iters: u64,
    pid: u32,
) -> Result<(PipelineStats, Vec<PathBuf>, u64), WriteError> {
    let mut records = Records::default();
    let (mut ns, mut in_batch, mut next_tick) = (1_000_000_000u64, 0, 0);
    for _ in 0..iters {
        for &(row, args) in body {
            ns += SYSCALL_NS;
            // As the probes copy it: up to the cap, in chunks.
            let kept = &payload[..payload.len().min(MAX_PAYLOAD_BYTES)];
            for (i, chunk) in kept.chunks(CHUNK_BYTES).enumerate() {
                let offset = i * CHUNK_BYTES;
                pipeline.handle(records.data(row.nr as u32, ns, pid, offset, chunk))?;
            }
            let ret = payload.len() as i64;
            pipeline.handle(records.syscall(row, args, ret, ns, pid))?;
            in_batch += 2;
            if in_batch >= BATCH_RECORDS {
                pipeline.end_batch()?;
                pipeline.seen_to(ns);
                in_batch = 0;
            }
            if ns >= next_tick {
                pipeline.expire()?;
                pipeline.tick(ns)?;
                next_tick = ns + TICK_NS;
            }
        }
    }
    pipeline.end_batch()?;
    let stats = pipeline.stats();
    let (paths, unwritten) = pipeline.finish("replay", ns)?;
    Ok((stats, paths, unwritten))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The offsets `Records` writes each field at.
    assert_eq!(size_of::<EventHeader>(), 24, "the record layout changed");
    assert_eq!(
        offset_of!(DataRecord, offset),
        32,
        "the record layout changed"
    );
    assert_eq!(size_of::<DataRecord>(), 40, "the record layout changed");
    assert_eq!(
        offset_of!(SyscallRecord, args),
        32,
        "the record layout changed"
    );
    assert_eq!(
        offset_of!(SyscallRecord, aux_len),
        96,
        "the record layout changed"
    );
    assert_eq!(size_of::<SyscallRecord>(), 104, "the record layout changed");
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let iters: u64 = args.next().map_or(Ok(100_000), |a| a.parse())?;

    // Real descriptors, so the fd table names them as it names the loop's.
    let scratch = tempfile::tempdir()?;
    let (pipe_r, pipe_w) = pipe()?;
    let (sock_a, sock_b) = UnixStream::pair()?;
    let file = File::create(scratch.path().join("replay.bin"))?;
    let pid = std::process::id();
    let line = br#"{"order":8841,"sku":"A-1177","qty":3,"price":"19.90","note":"leave at door"}
"#;
    let payload: Vec<u8> = line.iter().copied().cycle().take(size).collect();
    let len = size as u64;
    let buf = 0x7ffd_1234_5000u64;
    let fd = |raw: &dyn AsRawFd| raw.as_raw_fd() as u64;
    let row = |name| recorder_syscalls::by_name(name).expect("a known syscall");
    let loop_body: LoopBody = [
        (row("write"), [fd(&pipe_w), buf, len, 0, 0, 0]),
        (row("read"), [fd(&pipe_r), buf, len, 0, 0, 0]),
        (row("write"), [fd(&sock_a), buf, len, 0, 0, 0]),
        (row("read"), [fd(&sock_b), buf, len, 0, 0, 0]),
        (row("pwrite64"), [fd(&file), buf, len, 0, 0, 0]),
        (row("pread64"), [fd(&file), buf, len, 0, 0, 0]),
    ];

    let dir = OutputDir::open_or_create(&scratch.path().join("out"))?;
    let header = Header {
        recording_id: "replay".into(),
        ..Header::default()
    };
    let segments = SegmentPolicy {
        max_bytes: recorder_config::defaults::SEGMENT_BYTES,
        max_age: std::time::Duration::from_secs(3600),
        fsync_interval: Some(recorder_config::defaults::FSYNC_INTERVAL),
        compression_level: recorder_config::defaults::COMPRESSION_LEVEL,
    };
    let writer = RecordingWriter::create(dir, header, segments, None)?;
    let policy = std::sync::Arc::new(Policy::new(&Config::default())?);
    let mut fds = FdTable::default();
    fds.seed(pid);
    let redactor = Redactor::new(policy, 0);
    let pipeline = Pipeline::new(
        MAX_PAYLOAD_BYTES as u32,
        fds,
        Processes::new([pid]),
        redactor,
        writer,
    );

    let started = Instant::now();
    let (stats, paths, unwritten) = replay(pipeline, &loop_body, &payload, iters, pid)?;
    let secs = started.elapsed().as_secs_f64();

    // The records were made right: every one decoded, every syscall is an event, and its
    // payload came whole from its chunks (up to the cap), not only its length from the
    // syscall's result.
    assert_eq!(
        stats.decode_errors, 0,
        "records the pipeline could not decode"
    );
    assert_eq!(unwritten, 0, "frames not written");
    let kept = len.min(MAX_PAYLOAD_BYTES as u64);
    let mut events = 0u64;
    for path in &paths {
        let mut reader = SegmentReader::open(path)?;
        while let Some(body) = reader.next_body()? {
            if let recorder_proto::v1::frame::Body::Event(event) = body {
                events += 1;
                let payload = event.payload.ok_or("an event without its payload")?;
                assert_eq!(payload.length, len, "payload length");
                assert_eq!(payload.data.len() as u64, kept, "payload bytes recorded");
                assert!(
                    !payload.incomplete && payload.lost_bytes == 0,
                    "a chunk was lost"
                );
                assert_eq!(payload.truncated, len > kept, "payload cut at the cap");
            }
        }
    }
    assert_eq!(events, 6 * iters, "events in the recording");
    println!(
        "{events} events of {size} B: {secs:.3} s, {:.0} ns per event",
        secs * 1e9 / events as f64
    );
    Ok(())
}
