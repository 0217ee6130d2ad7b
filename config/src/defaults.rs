//! The defaults that flags, the configuration file and the service share, in one place so
//! `recorderd --pid N` and a service recording start from the same settings.

use std::time::Duration;

/// Where recordings go unless `--output` or `[storage] dir` says otherwise.
pub const OUTPUT_DIR: &str = "/var/lib/recorderd/recordings";
/// Payload bytes kept per syscall.
pub const MAX_PAYLOAD_BYTES: u32 = 64 * 1024;
/// The kernel ring buffer.
pub const RING_BYTES: u32 = 16 * 1024 * 1024;
/// Frames of user stack taken per syscall with `--stacks`.
pub const STACK_DEPTH: u32 = 32;
/// A new segment starts at this size ...
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// ... or this age.
pub const SEGMENT_DURATION: Duration = Duration::from_secs(3600);
/// The zstd level of every frame (the writer's own default, by measurement).
pub const COMPRESSION_LEVEL: i32 = recorder_store::writer::DEFAULT_COMPRESSION_LEVEL;
/// Redaction worker threads of a recording that may use `cpus` CPUs; 0 redacts on the
/// pipeline's own thread. On two CPUs a worker made an unpaced burst lose syscall records
/// more often (docs/BENCHMARKS.md, "Redaction on worker threads"): the drain, the
/// pipeline, a worker and the traced program would share them. With more, one worker
/// redacts beside the pipeline.
pub fn redaction_threads(cpus: usize) -> usize {
    usize::from(cpus > 2)
}
/// How often the open segment is fsync-ed.
pub const FSYNC_INTERVAL: Duration = Duration::from_secs(5);
/// The service's control socket.
pub const CONTROL_SOCKET: &str = "/run/recorderd/control.sock";
/// `[limits]`: the longest `recorder start --for`, the length without it, and how many at once.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const DEFAULT_DURATION: Duration = Duration::from_secs(600);
pub const MAX_CONCURRENT: usize = 4;
