//! `recorder`: lists, inspects, verifies and exports recordings made by recorderd.

use std::{
    io::{self, Write},
    process::ExitCode,
};

use clap::Parser;
use recorder_daemon::{
    cli::{RecorderArgs, RecorderCommand, TargetArgs},
    command::{self, export, inspect, list, redact_test, verify, CommandError},
    config,
    record::catalog::{self, RecordingSummary},
    telemetry,
};

fn main() -> ExitCode {
    let args = RecorderArgs::parse();
    telemetry::init();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = run(args.command, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    let _ = out.flush();
    match result {
        Ok(code) => code,
        Err(error) => match error.exit_code() {
            None => ExitCode::SUCCESS,
            Some(code) => {
                eprintln!("recorder: {error}");
                code
            }
        },
    }
}

fn run(command: RecorderCommand, out: &mut impl Write) -> Result<ExitCode, CommandError> {
    match command {
        RecorderCommand::List { dir, json } => {
            list::run(&dir, json, out).map(|()| ExitCode::SUCCESS)
        }
        RecorderCommand::Inspect {
            target,
            pid,
            fd,
            kind,
            grep,
            hex,
            follow,
        } => {
            let filter = inspect::Filter {
                pid,
                fd,
                kind,
                grep,
            };
            inspect::run(&resolve(&target)?, &filter, hex, follow, out)
        }
        RecorderCommand::Verify { target } => verify::run(&resolve(&target)?, out),
        RecorderCommand::RedactTest { config } => {
            let policy = config::redaction_policy(config.as_deref())?;
            redact_test::run(policy, &mut io::stdin().lock(), out, &mut io::stderr())
        }
        RecorderCommand::Export {
            target,
            format: export::ExportFormat::Jsonl,
        } => export::run(&resolve(&target)?, out),
    }
}

fn resolve(target: &TargetArgs) -> Result<RecordingSummary, CommandError> {
    Ok(catalog::resolve(&target.target, &target.dir)?)
}

// Keeps the exit-code contract visible next to the binary that implements it.
const _: () = assert!(command::EXIT_INCOMPLETE == 3 && command::EXIT_CORRUPT == 4);
