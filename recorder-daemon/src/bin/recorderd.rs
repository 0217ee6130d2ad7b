//! `recorderd`: records the processes named on the command line until they exit, a signal,
//! or `--duration`; or, given only `--config FILE`, runs as the service.

use std::process::ExitCode;

use clap::{parser::ValueSource, ArgMatches, CommandFactory, FromArgMatches};
use recorder_daemon::{
    audit,
    capture::Limits,
    cli::RecorderdArgs,
    config, host_info,
    record::{seal, SegmentPolicy},
    service,
    session::{self, Options},
    telemetry,
};

/// Flags of a foreground recording, which the service takes from its config file instead.
const FOREGROUND_ONLY: [&str; 10] = [
    "output",
    "duration",
    "max_payload",
    "ring_bytes",
    "segment_bytes",
    "segment_duration",
    "fsync_interval",
    "seal_to",
    "seal_to_file",
    "no_follow",
];

fn main() -> ExitCode {
    let matches = RecorderdArgs::command().get_matches();
    let args = match RecorderdArgs::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(error) => error.exit(),
    };
    telemetry::init();
    let has_target = !args.pids.is_empty()
        || !args.command.is_empty()
        || args.cgroup.is_some()
        || args.comm.is_some();
    if !has_target {
        return match &args.config {
            Some(config) => run_service(config, &matches),
            None => {
                eprintln!("recorderd: nothing to record: give --pid, --cgroup, --comm or -- CMD, or --config FILE to run as a service");
                ExitCode::from(2)
            }
        };
    }
    let loaded = config::load(args.config.as_deref()).and_then(|config| {
        let redaction = config::compile_redaction(&config, args.config.as_deref())?;
        Ok((config, redaction))
    });
    let (config, redaction) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("recorderd: {error}");
            return ExitCode::from(2);
        }
    };
    // --output wins; then the config's [storage] dir; then the default.
    let output = match (matches.value_source("output"), &config.storage.dir) {
        (Some(ValueSource::CommandLine), _) | (_, None) => args.output,
        (_, Some(dir)) => dir.clone(),
    };
    let access = match config.storage.access() {
        Ok(access) => access,
        Err(error) => {
            eprintln!("recorderd: {error}");
            return ExitCode::from(2);
        }
    };
    // Checked before anything is loaded: a bad key is the user's to fix, on one line.
    let seal = match seal::from_args(&args.seal_to, &args.seal_to_file) {
        Ok(seal) => seal,
        Err(error) => {
            eprintln!("recorderd: {}", one_line(&error));
            return ExitCode::from(2);
        }
    };
    let options = Options {
        recording_id: host_info::new_recording_id(),
        requested_by: audit::invoker(),
        redaction,
        pids: args.pids,
        command: args.command,
        cgroup: args.cgroup,
        comm: args.comm,
        follow: !args.no_follow,
        output,
        access,
        duration: args.duration,
        limits: Limits {
            max_payload_bytes: args.max_payload,
            ring_bytes: args.ring_bytes,
        },
        segments: SegmentPolicy {
            max_bytes: args.segment_bytes,
            max_age: args.segment_duration,
            fsync_interval: Some(args.fsync_interval).filter(|every| !every.is_zero()),
        },
        seal,
    };
    match session::run(options) {
        Ok(outcome) => {
            eprintln!(
                "recorderd: stopped ({}): {} events, {} records lost",
                outcome.end_reason, outcome.events, outcome.lost
            );
            if outcome.unwritten > 0 {
                eprintln!(
                    "recorderd: {} records could not be written (disk full or write errors); the recording says where",
                    outcome.unwritten
                );
            }
            if let Some(code) = outcome.exit_code {
                eprintln!("recorderd: the command exited with status {code}");
            }
            for path in &outcome.paths {
                println!("recording: {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("recorderd: {}", one_line(&error));
            ExitCode::from(if error.is_bad_input() { 2 } else { 1 })
        }
    }
}

fn run_service(config: &std::path::Path, matches: &ArgMatches) -> ExitCode {
    let given: Vec<String> = FOREGROUND_ONLY
        .iter()
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if !given.is_empty() {
        eprintln!(
            "recorderd: {} applies to a recording in the foreground; the service takes its settings from {}",
            given.join(", "),
            config.display()
        );
        return ExitCode::from(2);
    }
    match service::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("recorderd: {}", one_line(&error));
            ExitCode::from(if error.is_bad_input() { 2 } else { 1 })
        }
    }
}

/// The error and its causes on one line.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}
