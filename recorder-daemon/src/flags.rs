//! `recorderd`'s command line (clap derive only). A flag left out is `None`: the
//! configuration file or `recorder_config::defaults` decide, in `options`.

use std::{path::PathBuf, time::Duration};

use clap::{ArgGroup, Parser};
use recorder_common::MAX_PAYLOAD_LIMIT;
use recorder_config::{units::parse_size, Priority, TlsSetting};

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

    /// Directory for recordings, created 0700 [default: `[storage] dir` of --config, else
    /// /var/lib/recorderd/recordings].
    #[arg(long, short, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Stop after this long (e.g. 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Payload bytes kept per syscall (e.g. 64KiB, 1MiB); longer payloads are marked truncated
    /// [default: 64KiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_max_payload)]
    pub max_payload: Option<u32>,

    /// Kernel ring buffer size (a power of two, at least 4KiB) [default: 16MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_ring_bytes)]
    pub ring_bytes: Option<u32>,

    /// Start a new segment when the current one reaches this size [default: 64MiB].
    #[arg(long, value_name = "BYTES", value_parser = parse_segment_bytes)]
    pub segment_bytes: Option<u64>,

    /// Start a new segment when the current one is this old [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub segment_duration: Option<Duration>,

    /// fsync the open segment this often (0s = only when a segment is finished) [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub fsync_interval: Option<Duration>,

    /// zstd level of the recording: negative is faster and larger, 1 to 19 slower and smaller
    /// [default: 1].
    #[arg(long, value_name = "LEVEL", allow_negative_numbers = true, value_parser = parse_compression_level)]
    pub compression_level: Option<i32>,

    /// Threads that redact payloads while the pipeline decodes and writes; 0 redacts on
    /// the pipeline's thread [default: 0 with up to 2 CPUs, else 1].
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// How the pipeline (decode, redaction, writing) shares the CPU: `normal` beside the
    /// traced program, which a saturated host then slows; `background` only on CPU time
    /// nothing else wants, shedding payloads (counted) while it waits; events are kept as
    /// long as the backlog's budget holds (docs/OPERATIONS.md) [default: `[capture] priority` of --config, else normal].
    #[arg(long, value_name = "MODE", value_parser = clap::value_parser!(Priority))]
    pub priority: Option<Priority>,

    /// TLS through OpenSSL and GnuTLS: `plaintext` records what the program sent and received
    /// before encryption, and only the lengths of the ciphertext on the wire; `both` keeps the
    /// ciphertext's bytes too; `off` records the wire alone [default: `[capture] tls` of
    /// --config, else plaintext].
    #[arg(long, value_name = "MODE", value_parser = clap::value_parser!(TlsSetting))]
    pub tls: Option<TlsSetting>,

    /// Take the user stack of every recorded syscall, named where symbols are found
    /// (`recorder inspect --stacks` shows them) [default: `[capture] stacks` of --config].
    #[arg(long)]
    pub stacks: bool,

    /// Frames per stack, 1 to 64; implies --stacks [default: `[capture] stack_depth`, else 32].
    #[arg(long, value_name = "N", value_parser = parse_stack_depth)]
    pub stack_depth: Option<u32>,

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

/// Flags of a foreground recording, which the service takes from its config file instead.
pub fn foreground_only(args: &RecorderdArgs) -> Vec<&'static str> {
    let given = [
        ("--output", args.output.is_some()),
        ("--duration", args.duration.is_some()),
        ("--max-payload", args.max_payload.is_some()),
        ("--ring-bytes", args.ring_bytes.is_some()),
        ("--segment-bytes", args.segment_bytes.is_some()),
        ("--segment-duration", args.segment_duration.is_some()),
        ("--fsync-interval", args.fsync_interval.is_some()),
        ("--compression-level", args.compression_level.is_some()),
        ("--threads", args.threads.is_some()),
        ("--priority", args.priority.is_some()),
        ("--tls", args.tls.is_some()),
        ("--stacks", args.stacks),
        ("--stack-depth", args.stack_depth.is_some()),
        ("--seal-to", !args.seal_to.is_empty()),
        ("--seal-to-file", !args.seal_to_file.is_empty()),
        ("--no-follow", args.no_follow),
    ];
    given
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect()
}

impl RecorderdArgs {
    /// Whether a process, cgroup, program name or command is named: without one (and with
    /// `--config`), recorderd is the service.
    pub fn has_target(&self) -> bool {
        !self.pids.is_empty()
            || !self.command.is_empty()
            || self.cgroup.is_some()
            || self.comm.is_some()
    }
}

fn parse_compression_level(text: &str) -> Result<i32, String> {
    let level = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    recorder_store::writer::check_compression_level(level)
}

/// More workers than this would only queue behind each other (docs/BENCHMARKS.md).
const MAX_THREADS: usize = 64;

fn parse_threads(text: &str) -> Result<usize, String> {
    match text.trim().parse() {
        Ok(threads) if threads <= MAX_THREADS => Ok(threads),
        _ => Err(format!(
            "`{text}` is not a thread count from 0 to {MAX_THREADS}"
        )),
    }
}

fn parse_stack_depth(text: &str) -> Result<u32, String> {
    let depth = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of frames"))?;
    recorder_config::capture::check_stack_depth(depth)
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
        assert_eq!(parse_max_payload("64KiB"), Ok(65536));
        assert_eq!(parse_stack_depth("16"), Ok(16));
        for bad in ["0", "65", "deep"] {
            assert!(parse_stack_depth(bad).is_err(), "{bad}");
        }
        assert!(parse_max_payload("2MiB").is_err());
        assert_eq!(parse_compression_level("-3"), Ok(-3));
        assert!(parse_compression_level("0").is_err() && parse_compression_level("22").is_err());
        assert!(parse_ring_bytes("5000").is_err());
        assert_eq!(parse_ring_bytes("8KiB"), Ok(8192));
        assert_eq!((parse_threads("0"), parse_threads("4")), (Ok(0), Ok(4)));
        assert!(parse_threads("-1").is_err() && parse_threads("65").is_err());
    }

    /// The help states the defaults in words; they must be `recorder_config::defaults`.
    #[test]
    fn the_defaults_the_help_states_are_the_real_ones() {
        use clap::CommandFactory;
        use recorder_config::defaults;
        let help = RecorderdArgs::command().render_long_help().to_string();
        let stated = |flag: &str| {
            let at = help.find(flag).unwrap_or_else(|| panic!("{flag} in help"));
            let rest = &help[at..];
            let start = rest.find("[default: ").expect("a stated default") + 10;
            rest[start..start + rest[start..].find(']').unwrap()].to_owned()
        };
        let size = |flag| parse_size(&stated(flag)).unwrap();
        let duration = |flag| humantime::parse_duration(&stated(flag)).unwrap();
        assert_eq!(
            size("--max-payload"),
            u64::from(defaults::MAX_PAYLOAD_BYTES)
        );
        assert_eq!(size("--ring-bytes"), u64::from(defaults::RING_BYTES));
        assert_eq!(size("--segment-bytes"), defaults::SEGMENT_BYTES);
        assert_eq!(duration("--segment-duration"), defaults::SEGMENT_DURATION);
        assert_eq!(duration("--fsync-interval"), defaults::FSYNC_INTERVAL);
        assert_eq!(
            stated("--compression-level"),
            defaults::COMPRESSION_LEVEL.to_string()
        );
        assert_eq!(stated("--threads"), "0 with up to 2 CPUs, else 1");
        let priority = &help[help.find("--priority <MODE>").unwrap()..];
        let priority = &priority[..priority.find("\n  -").unwrap_or(priority.len())];
        assert!(priority.contains("else normal]"), "{priority}");
        assert_eq!(Priority::default(), Priority::Normal);
        let threads = [1, 2, 3, 64].map(defaults::redaction_threads);
        assert_eq!(threads, [0, 0, 1, 1]);
    }

    #[test]
    fn flags_left_out_are_none_and_service_mode_refuses_the_foreground_ones() {
        let args = RecorderdArgs::try_parse_from(["recorderd", "--config", "c.toml"]).unwrap();
        assert!(!args.has_target() && foreground_only(&args).is_empty());
        assert_eq!((args.max_payload, args.output), (None, None));
        let args = RecorderdArgs::try_parse_from([
            "recorderd",
            "--config",
            "c.toml",
            "--ring-bytes",
            "8KiB",
            "--no-follow",
        ])
        .unwrap();
        assert_eq!(foreground_only(&args), ["--ring-bytes", "--no-follow"]);
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
