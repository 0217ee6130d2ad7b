//! `recorderd`: records the processes named on the command line until they exit, a signal,
//! or `--duration`; or, given only `--config FILE`, runs as the service.

use std::process::ExitCode;

use clap::Parser;
use recorder_config::telemetry;
use recorder_daemon::{
    flags::{self, RecorderdArgs},
    options::Options,
    service,
    session::{self, Outcome},
};

#[cfg(feature = "count-allocations")]
#[global_allocator]
static ALLOCATOR: recorder_daemon::allocations::Counting = recorder_daemon::allocations::Counting;

fn main() -> ExitCode {
    let args = RecorderdArgs::parse();
    telemetry::init();
    if !args.has_target() {
        return match &args.config {
            Some(config) => run_service(config, &flags::foreground_only(&args)),
            None => {
                eprintln!("recorderd: nothing to record: give --pid, --cgroup, --comm or -- CMD, or --config FILE to run as a service");
                ExitCode::from(2)
            }
        };
    }
    let options = match Options::foreground(args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("recorderd: {}", one_line(&error));
            return ExitCode::from(2);
        }
    };
    match session::run(options) {
        Ok(outcome) => {
            report(&outcome);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("recorderd: {}", one_line(&error));
            ExitCode::from(if error.is_bad_input() { 2 } else { 1 })
        }
    }
}

/// The stop line, and where the recording is.
fn report(outcome: &Outcome) {
    eprintln!(
        "recorderd: stopped ({}): {} events, {} records lost",
        outcome.end_reason, outcome.events, outcome.lost
    );
    if let Some(allocations) = outcome.allocations {
        eprintln!(
            "recorderd: {allocations} heap allocations while recording ({:.2} per event)",
            allocations as f64 / outcome.events.max(1) as f64
        );
    }
    if outcome.unwritten > 0 {
        eprintln!(
            "recorderd: {} records could not be written (disk full or write errors); the recording says where",
            outcome.unwritten
        );
    }
    let (sockets, why) = &outcome.not_decrypted;
    if *sockets > 0 {
        eprintln!(
            "recorderd: {sockets} TLS connection{} recorded as ciphertext: {} (docs/CAPTURE.md)",
            if *sockets == 1 { " was" } else { "s were" },
            why.join("; ")
        );
    }
    if let Some(code) = outcome.exit_code {
        eprintln!("recorderd: the command exited with status {code}");
    }
    for path in &outcome.paths {
        println!("recording: {}", path.display());
    }
}

fn run_service(config: &std::path::Path, foreground_only: &[&str]) -> ExitCode {
    if !foreground_only.is_empty() {
        eprintln!(
            "recorderd: {} applies to a recording in the foreground; the service takes its settings from {}",
            foreground_only.join(", "),
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
