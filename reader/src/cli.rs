//! `recorder`'s command line (clap derive only).

use std::{path::PathBuf, time::Duration};

use clap::{ArgGroup, Parser, Subcommand};
use recorder_config::defaults::{CONTROL_SOCKET, OUTPUT_DIR};

use crate::command::{conversations::ProtoFilter, export::ExportFormat, inspect::EventKind};

/// recorder: read recorderd recordings.
#[derive(Debug, Parser)]
#[command(name = "recorder", version)]
pub struct RecorderArgs {
    #[command(subcommand)]
    pub command: RecorderCommand,
    /// The S3-compatible endpoint for s3:// addresses, over AWS_ENDPOINT_URL_S3,
    /// AWS_ENDPOINT_URL and the profile's endpoint_url.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RecorderCommand {
    /// One row per recording in DIR: id, target, start, duration, events, bytes, losses, state.
    List {
        /// Directory of recordings.
        #[arg(default_value = OUTPUT_DIR)]
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
        recording: RecordingArgs,
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
        /// Show each event's stack (recorded with `recorderd --stacks`), innermost first.
        #[arg(long)]
        stacks: bool,
        /// Name the frames the recording left unnamed from the binaries and debug files in
        /// this directory (found by build id, also as DIR/.build-id/xx/rest.debug); implies
        /// --stacks.
        #[arg(long, value_name = "DIR")]
        symbols: Option<PathBuf>,
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
        recording: RecordingArgs,
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
    /// Write a recording for other tools: JSON lines (one object per frame), HAR (HTTP
    /// exchanges) or pcapng (TCP and UDP traffic as packets, for Wireshark and tshark).
    Export {
        #[command(flatten)]
        recording: RecordingArgs,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Write to this file (created 0600; an existing file is never overwritten) instead
        /// of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// The recording's connections as protocols: per connection its protocol and peer, then
    /// one line per exchange — HTTP request and status, SQL and its result, Redis command
    /// and reply, DNS question and answer — with its latency and sizes.
    Conversations {
        #[command(flatten)]
        recording: RecordingArgs,
        /// Only this protocol.
        #[arg(long, value_enum)]
        proto: Option<ProtoFilter>,
        /// Only connections of this process.
        #[arg(long)]
        pid: Option<u32>,
        /// Only exchanges that took at least this long, or got no answer (e.g. 100ms).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        slow: Option<Duration>,
        /// Only exchanges that failed: HTTP 4xx/5xx, SQL errors, Redis errors, DNS other
        /// than NOERROR.
        #[arg(long)]
        errors: bool,
        /// One JSON object per connection (docs/FORMAT.md).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// A recording summed up: bytes per process and per peer, the busiest files, and
    /// exchanges per protocol with latency percentiles.
    Stats {
        #[command(flatten)]
        recording: RecordingArgs,
        /// One JSON object (docs/FORMAT.md).
        #[arg(long)]
        json: bool,
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
        #[arg(long, value_name = "DIR", default_value = OUTPUT_DIR)]
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
        #[arg(long, value_name = "DIR", default_value = OUTPUT_DIR)]
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
        #[arg(long, value_name = "DIR", default_value = OUTPUT_DIR)]
        dir: PathBuf,
    },
}

/// Where the recorderd service listens.
#[derive(Debug, clap::Args)]
pub struct SocketArgs {
    /// The service's control socket.
    #[arg(long, value_name = "PATH", default_value = CONTROL_SOCKET, env = "RECORDER_SOCKET")]
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
pub struct RecordingArgs {
    /// A segment file, a directory with one recording, or a recording id (or unique prefix).
    pub recording: String,
    /// Where to look up a recording id.
    #[arg(long, value_name = "DIR", default_value = OUTPUT_DIR)]
    pub dir: PathBuf,
}
