//! Command-line definitions for `recorderd` and `recorder` (clap derive only; validation of
//! combinations lives in the binaries' conversion to `session::Options`).

use std::{path::PathBuf, time::Duration};

use clap::{ArgGroup, Parser, Subcommand};
use recorder_common::MAX_PAYLOAD_LIMIT;

use crate::command::{export::ExportFormat, inspect::EventKind};

/// Where recordings go unless `--output` says otherwise.
pub const DEFAULT_OUTPUT: &str = "/var/lib/recorderd/recordings";

/// The service records with the foreground defaults below (a test checks they agree).
pub const DEFAULT_MAX_PAYLOAD: u32 = 64 * 1024;
pub const DEFAULT_RING_BYTES: u32 = 16 * 1024 * 1024;
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
pub const DEFAULT_SEGMENT_DURATION: Duration = Duration::from_secs(3600);
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(5);

/// recorderd: record what a process exchanges with the outside world, from the kernel.
#[derive(Debug, Parser)]
#[command(name = "recorderd", version)]
#[command(group(ArgGroup::new("target").multiple(true).args(["pids", "command", "cgroup", "comm"])))]
#[command(
    after_help = "With --config FILE and no target, recorderd runs as a service: it records on request from `recorder start` (docs/OPERATIONS.md)."
)]
pub struct RecorderdArgs {
    /// Record this process (and all its threads). Repeatable.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Record every process in this cgroup v2 (e.g. /system.slice/app.service), at any depth.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,

    /// Record processes running a program with this name (as `ps -o comm` shows it), and
    /// those that start it later.
    #[arg(long, value_name = "NAME")]
    pub comm: Option<String>,

    /// Do not record the children that targeted processes start (threads are always recorded).
    #[arg(long)]
    pub no_follow: bool,

    /// Configuration file (TOML): the redaction policy (docs/REDACTION.md) and, without a
    /// target, the service's settings (docs/OPERATIONS.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory for recordings (created 0700).
    #[arg(long, short, value_name = "DIR", default_value = DEFAULT_OUTPUT)]
    pub output: PathBuf,

    /// Stop after this long (e.g. 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Payload bytes kept per syscall (e.g. 64KiB, 1MiB); longer payloads are marked truncated.
    #[arg(long, value_name = "BYTES", default_value = "64KiB", value_parser = parse_max_payload)]
    pub max_payload: u32,

    /// Kernel ring buffer size (a power of two, at least 4KiB).
    #[arg(long, value_name = "BYTES", default_value = "16MiB", value_parser = parse_ring_bytes)]
    pub ring_bytes: u32,

    /// Start a new segment when the current one reaches this size.
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_segment_bytes)]
    pub segment_bytes: u64,

    /// Start a new segment when the current one is this old.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub segment_duration: Duration,

    /// fsync the open segment this often (0s = only when a segment is finished).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub fsync_interval: Duration,

    /// Seal every segment to this age recipient (age1…, see `recorder keygen`): only its
    /// identity can read the recording, and this host cannot. Repeatable.
    #[arg(long = "seal-to", value_name = "RECIPIENT")]
    pub seal_to: Vec<String>,

    /// Seal to every recipient in this file (one age1… per line, # comments). Repeatable.
    #[arg(long = "seal-to-file", value_name = "FILE")]
    pub seal_to_file: Vec<PathBuf>,

    /// Spawn this command and record it from its first instruction.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// recorder: read recorderd recordings.
#[derive(Debug, Parser)]
#[command(name = "recorder", version)]
pub struct RecorderArgs {
    #[command(subcommand)]
    pub command: RecorderCommand,
}

#[derive(Debug, Subcommand)]
pub enum RecorderCommand {
    /// One row per recording in DIR: id, target, start, duration, events, bytes, losses, state.
    List {
        /// Directory of recordings.
        #[arg(default_value = DEFAULT_OUTPUT)]
        dir: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Print a recording as a timeline.
    Inspect {
        #[command(flatten)]
        target: TargetArgs,
        /// Only events of this process.
        #[arg(long)]
        pid: Option<u32>,
        /// Only events on this file descriptor.
        #[arg(long)]
        fd: Option<i64>,
        /// Only events of this boundary.
        #[arg(long, value_enum)]
        kind: Option<EventKind>,
        /// Only events whose payload contains this text.
        #[arg(long, value_name = "TEXT")]
        grep: Option<String>,
        /// Show whole payloads as hex dumps.
        #[arg(long)]
        hex: bool,
        /// Keep printing as a recording still being written grows.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Check a recording: exit 0 complete, 3 incomplete (writer stopped without a trailer),
    /// 4 corrupt (names the segment and byte offset), 5 sealed (no identity given opens it).
    Verify {
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Show what the redaction policy would mask in the bytes on stdin: the masked bytes go to
    /// stdout, one line per redaction to stderr.
    RedactTest {
        /// Configuration file whose `[redaction]` policy to use (defaults without one).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Write a recording as JSON lines, one object per frame.
    Export {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Delete expired and over-quota recordings now, by the `[retention]` policy of the
    /// config (defaults without one); prints each deletion and why. Held recordings and
    /// those being written are kept.
    Sweep {
        /// Print what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Directory of recordings (default: `[storage] dir` of the config, else /var/lib/recorderd/recordings).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Configuration file whose `[retention]` and `[storage]` tables to use.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Put a recording under legal hold: sweeps keep it until `recorder release`.
    Hold {
        /// Recording id (or a unique prefix of one).
        id: String,
        /// Directory of recordings.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_OUTPUT)]
        dir: PathBuf,
        /// Why it is held (a case or ticket); kept in the hold file and the audit log.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Lift the legal hold on a recording.
    Release {
        /// Recording id (or a unique prefix of one).
        id: String,
        /// Directory of recordings.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_OUTPUT)]
        dir: PathBuf,
    },
    /// The audit log of a recordings directory.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Ask the recorderd service to record a process (or a configured target) for a while.
    /// Members of the service's control group may do this without root.
    #[command(group(ArgGroup::new("what").required(true).args(["pid", "target"])))]
    Start {
        /// The process to record (it must be one of the service's [[targets]]).
        #[arg(long)]
        pid: Option<u32>,
        /// A target named in the service's config, recorded as a whole.
        #[arg(long, value_name = "NAME")]
        target: Option<String>,
        /// How long to record (e.g. 10m); the service's default without it.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Stop a recording the service is making, and wait until its segment is finished.
    Stop {
        /// The recording id (or a unique prefix), as `recorder status` shows it.
        id: String,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// What the recorderd service is recording now.
    Status {
        /// Print the service's JSON answer instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Make an age identity for reading sealed recordings; prints its recipient (age1…) for
    /// `recorderd --seal-to`. Keep the identity off the recording hosts.
    Keygen {
        /// Write the identity here (created 0600; an existing file is never overwritten).
        /// Without it, the identity goes to stdout, and only if stdout is not a terminal.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every entry's hash and its link to the one before: prints `audit log OK: N
    /// entries`, or names the first broken entry and exits 4.
    Verify {
        /// An audit log file (default: DIR/audit.log).
        #[arg(value_name = "FILE", conflicts_with = "dir")]
        file: Option<PathBuf>,
        /// Directory of recordings whose audit.log to check.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_OUTPUT)]
        dir: PathBuf,
    },
}

/// Where the recorderd service listens.
#[derive(Debug, clap::Args)]
pub struct SocketArgs {
    /// The service's control socket.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONTROL_SOCKET, env = "RECORDER_SOCKET")]
    pub socket: PathBuf,
}

/// Identities that open sealed recordings.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// An age identity file (`recorder keygen` writes one) to open sealed recordings.
    /// Repeatable; defaults to $RECORDER_IDENTITY.
    #[arg(
        long = "identity",
        short = 'i',
        value_name = "FILE",
        env = "RECORDER_IDENTITY"
    )]
    pub identities: Vec<PathBuf>,
}

/// A recording named by segment file, directory holding one recording, or recording id.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// A segment file, a directory with one recording, or a recording id (or unique prefix).
    pub target: String,
    /// Where to look up a recording id.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUTPUT)]
    pub dir: PathBuf,
}

/// `4096`, `64K`, `64KiB`, `1M`, `1MiB` → bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 64KiB"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1024,
        "m" | "mib" | "mb" => 1024 * 1024,
        "g" | "gib" | "gb" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown size unit `{other}`; use KiB, MiB or GiB")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("`{text}` is too large"))
}

fn parse_max_payload(text: &str) -> Result<u32, String> {
    let bytes = parse_size(text)?;
    if bytes > u64::from(MAX_PAYLOAD_LIMIT) {
        return Err(format!("at most {} KiB", MAX_PAYLOAD_LIMIT / 1024));
    }
    Ok(bytes as u32)
}

fn parse_segment_bytes(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text)?;
    if bytes < 64 * 1024 {
        return Err("at least 64KiB".to_owned());
    }
    Ok(bytes)
}

fn parse_ring_bytes(text: &str) -> Result<u32, String> {
    let bytes = parse_size(text)?;
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err("must be a power of two between 4KiB and 1GiB".to_owned());
    }
    Ok(bytes as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_max_payload("2MiB").is_err());
        assert!(parse_ring_bytes("5000").is_err());
        assert_eq!(parse_ring_bytes("8KiB"), Ok(8192));
    }

    #[test]
    fn service_defaults_are_the_flag_defaults() {
        let args = RecorderdArgs::try_parse_from(["recorderd", "--pid", "1"]).unwrap();
        assert_eq!(args.max_payload, DEFAULT_MAX_PAYLOAD);
        assert_eq!(args.ring_bytes, DEFAULT_RING_BYTES);
        assert_eq!(args.segment_bytes, DEFAULT_SEGMENT_BYTES);
        assert_eq!(args.segment_duration, DEFAULT_SEGMENT_DURATION);
        assert_eq!(args.fsync_interval, DEFAULT_FSYNC_INTERVAL);
    }

    #[test]
    fn recorderd_targets() {
        let args =
            RecorderdArgs::try_parse_from(["recorderd", "--pid", "1", "--pid", "2"]).unwrap();
        assert_eq!(args.pids, [1, 2]);
        let args =
            RecorderdArgs::try_parse_from(["recorderd", "--duration", "2s", "--", "cat", "-n"])
                .unwrap();
        assert_eq!(
            (args.command.len(), args.duration),
            (2, Some(Duration::from_secs(2)))
        );
        assert!(RecorderdArgs::try_parse_from(["recorderd", "--pid", "x"]).is_err());
        let args = RecorderdArgs::try_parse_from([
            "recorderd",
            "--pid",
            "1",
            "--seal-to",
            "age1a",
            "--seal-to",
            "age1b",
            "--seal-to-file",
            "r.txt",
        ])
        .unwrap();
        assert_eq!((args.seal_to.len(), args.seal_to_file.len()), (2, 1));
    }
}
