//! `recorderd`: records the processes named on the command line until they exit, a signal,
//! or `--duration`.

use std::process::ExitCode;

use clap::Parser;
use recorder_daemon::{
    capture::Limits,
    cli::RecorderdArgs,
    config,
    record::{seal, SegmentPolicy},
    session::{self, Options},
    telemetry,
};

fn main() -> ExitCode {
    let args = RecorderdArgs::parse();
    telemetry::init();
    let redaction = match config::redaction_policy(args.config.as_deref()) {
        Ok(policy) => policy,
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
        redaction,
        pids: args.pids,
        command: args.command,
        cgroup: args.cgroup,
        comm: args.comm,
        follow: !args.no_follow,
        output: args.output,
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
