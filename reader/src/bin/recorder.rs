//! `recorder`: lists, inspects, verifies and exports recordings made by recorderd; sweeps,
//! holds and releases them, and checks the audit log.

use std::{
    io::{self, Write},
    process::ExitCode,
};

use clap::Parser;
use recorder_config::telemetry;
use recorder_control::Request;
use recorder_objects::Address;
use recorder_reader::remote;
use recorder_reader::{
    cli::{AuditCommand, KeyArgs, RecorderArgs, RecorderCommand, RecordingArgs},
    command::{
        self, control, conversations, export, hold, inspect, keygen, list, redact_test, stats,
        sweep, verify, CommandError,
    },
};
use recorder_store::{
    audit,
    catalog::{self, RecordingSummary},
    Keyring,
};

fn main() -> ExitCode {
    let args = RecorderArgs::parse();
    telemetry::init();
    recorder_objects::remote::set_endpoint(args.endpoint);
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
        RecorderCommand::List { dir, json, keys } => {
            list::run(&dir, json, &keyring(&keys)?, out).map(|()| ExitCode::SUCCESS)
        }
        RecorderCommand::Inspect {
            recording,
            pid,
            fd,
            kind,
            grep,
            hex,
            stacks,
            symbols,
            follow,
            keys,
        } => {
            let filter = inspect::Filter {
                pid,
                fd,
                kind,
                grep,
            };
            if let Some(dir) = symbols.as_ref().filter(|dir| !dir.is_dir()) {
                return Err(CommandError::Usage(format!(
                    "--symbols {}: not a directory; name the directory that holds the debug files",
                    dir.display()
                )));
            }
            let show = inspect::Show {
                hex,
                stacks: stacks || symbols.is_some(),
                symbols,
            };
            let (keyring, recording) = open(&recording, &keys, "read")?;
            inspect::run(&recording, &keyring, &filter, &show, follow, out)
        }
        RecorderCommand::Verify { recording, keys } => {
            verify::run(&resolve(&recording, &keyring(&keys)?)?, out)
        }
        RecorderCommand::RedactTest { config } => {
            let policy = recorder_config::redaction_policy(config.as_deref())?;
            redact_test::run(policy, &mut io::stdin().lock(), out, &mut io::stderr())
        }
        RecorderCommand::Export {
            recording,
            format,
            output,
            keys,
        } => {
            let (keyring, recording) = open(&recording, &keys, "export")?;
            match output {
                Some(path) => {
                    let mut file = io::BufWriter::new(command::create_output(&path)?);
                    let code = export::run(&recording, &keyring, format, &mut file)?;
                    file.flush()?;
                    Ok(code)
                }
                None if format == export::ExportFormat::Pcapng && keygen::stdout_is_terminal() => {
                    Err(CommandError::Usage(
                        "pcapng is binary: give --output FILE or redirect stdout".to_owned(),
                    ))
                }
                None => export::run(&recording, &keyring, format, out),
            }
        }
        RecorderCommand::Conversations {
            recording,
            proto,
            pid,
            slow,
            errors,
            json,
            keys,
        } => {
            let (keyring, recording) = open(&recording, &keys, "read")?;
            let filter = conversations::Filter {
                proto,
                pid,
                slow,
                errors,
            };
            conversations::run(&recording, &keyring, &filter, json, out)
        }
        RecorderCommand::Stats {
            recording,
            json,
            keys,
        } => {
            let (keyring, recording) = open(&recording, &keys, "read")?;
            stats::run(&recording, &keyring, json, out)
        }
        RecorderCommand::Sweep {
            dry_run,
            dir,
            config,
        } => sweep::run(dir.as_deref(), config.as_deref(), dry_run, out),
        RecorderCommand::Hold { id, dir, reason } => {
            hold::hold(&dir, &id, reason.as_deref(), out).map(|()| ExitCode::SUCCESS)
        }
        RecorderCommand::Release { id, dir } => {
            hold::release(&dir, &id, out).map(|()| ExitCode::SUCCESS)
        }
        RecorderCommand::Audit {
            command: AuditCommand::Verify { file, dir },
        } => command::audit::verify(&file.unwrap_or_else(|| audit::path_in(&dir)), out),
        RecorderCommand::Start {
            pid,
            target,
            duration,
            socket,
        } => {
            let request = Request::Start {
                pid,
                target,
                for_secs: duration.map(|d| d.as_secs().max(1)),
            };
            let response = recorder_control::ask(&socket.socket, &request)?;
            control::print(&response, out)?;
            Ok(ExitCode::SUCCESS)
        }
        RecorderCommand::Stop { id, socket } => {
            let response = recorder_control::ask(&socket.socket, &Request::Stop { id })?;
            control::print(&response, out)?;
            Ok(ExitCode::SUCCESS)
        }
        RecorderCommand::Status { json, socket } => {
            let response = recorder_control::ask(&socket.socket, &Request::Status)?;
            control::print_status(&response, json, out)?;
            Ok(ExitCode::SUCCESS)
        }
        RecorderCommand::Keygen { output } => {
            keygen::run(output.as_deref(), keygen::stdout_is_terminal(), out)
                .map(|()| ExitCode::SUCCESS)
        }
    }
}

fn keyring(keys: &KeyArgs) -> Result<Keyring, CommandError> {
    Ok(Keyring::load(&keys.identities)?)
}

/// The keyring and the recording it names, with the access noted in the audit log.
fn open(
    named: &RecordingArgs,
    keys: &KeyArgs,
    access: &str,
) -> Result<(Keyring, RecordingSummary), CommandError> {
    let keyring = keyring(keys)?;
    let recording = resolve(named, &keyring)?;
    command::audit::note_access(&recording, access);
    Ok((keyring, recording))
}

fn resolve(named: &RecordingArgs, keyring: &Keyring) -> Result<RecordingSummary, CommandError> {
    if Address::is_remote(&named.recording) {
        return remote::resolve(&named.recording, keyring);
    }
    Ok(catalog::resolve(&named.recording, &named.dir, keyring)?)
}

// Keeps the exit-code contract visible next to the binary that implements it.
const _: () = assert!(
    command::EXIT_USAGE == 2
        && command::EXIT_INCOMPLETE == 3
        && command::EXIT_CORRUPT == 4
        && command::EXIT_SEALED == 5
);
