//! The `recorder` tool's subcommands. Each reads recordings through recorder-store and
//! never touches the probes.
//!
//! Exit codes (documented in docs/FORMAT.md): 0 success; 1 error (not a recording, I/O);
//! 2 usage (including a bad identity or config file); 3 the recording is incomplete (the writer stopped
//! without a trailer); 4 corrupt; 5 sealed, and no identity given opens it.

pub mod audit;
pub mod control;
pub mod conversations;
pub mod export;
pub mod hold;
pub mod inspect;
pub mod keygen;
pub mod list;
pub mod redact_test;
pub mod stats;
pub mod sweep;
pub mod verify;

use std::{io, process::ExitCode};

use thiserror::Error;

use recorder_store::{catalog::CatalogError, seal::KeyError, Keyring, ReadError};

pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INCOMPLETE: u8 = 3;
pub const EXIT_CORRUPT: u8 = 4;
pub const EXIT_SEALED: u8 = 5;

#[derive(Debug, Error)]
pub enum CommandError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}")]
    Usage(String),
    #[error("writing output failed: {0}")]
    Output(#[from] io::Error),
    #[error(transparent)]
    Config(#[from] recorder_config::ConfigError),
    #[error(transparent)]
    Dir(#[from] recorder_store::DirError),
    #[error(transparent)]
    Retention(#[from] recorder_config::RetentionError),
    #[error(transparent)]
    Sweep(#[from] recorder_store::retention::SweepError),
    #[error(transparent)]
    Audit(#[from] recorder_store::audit::AuditError),
    #[error(transparent)]
    AuditLog(#[from] recorder_store::audit::VerifyError),
    #[error("recording {id} is already held ({path}); nothing changed")]
    AlreadyHeld {
        id: String,
        path: std::path::PathBuf,
    },
    #[error("recording {id} is not held; nothing changed")]
    NotHeld { id: String },
    /// The service refused a request or could not be reached; the message says why.
    #[error(transparent)]
    Control(#[from] recorder_control::ControlError),
    /// A bucket could not be reached or read; the message says which and why.
    #[error("{0}")]
    Remote(String),
}

impl CommandError {
    /// The exit code for this failure; `None` for a closed output pipe, which is the
    /// reader's choice (`recorder inspect x | head`) and not an error.
    pub fn exit_code(&self) -> Option<ExitCode> {
        match self {
            CommandError::Output(error) if error.kind() == io::ErrorKind::BrokenPipe => None,
            CommandError::Read(error) | CommandError::Catalog(CatalogError::Read(error)) => {
                Some(read_exit(error))
            }
            CommandError::Key(KeyError::Exists { .. } | KeyError::Write { .. }) => {
                Some(ExitCode::from(EXIT_ERROR))
            }
            // A config file recorderd would refuse with 2 is refused with 2 here too.
            CommandError::Key(_)
            | CommandError::Config(_)
            | CommandError::Usage(_)
            | CommandError::Retention(_)
            | CommandError::Dir(_)
            | CommandError::Sweep(recorder_store::retention::SweepError::Dir(_)) => {
                Some(ExitCode::from(EXIT_USAGE))
            }
            _ => Some(ExitCode::from(EXIT_ERROR)),
        }
    }
}

fn read_exit(error: &ReadError) -> ExitCode {
    match error {
        ReadError::Truncated { .. } => ExitCode::from(EXIT_INCOMPLETE),
        ReadError::Corrupt { .. } => ExitCode::from(EXIT_CORRUPT),
        ReadError::Sealed { .. } => ExitCode::from(EXIT_SEALED),
        _ => ExitCode::from(EXIT_ERROR),
    }
}

/// A new file for an export, 0600 from its creation (it holds recorded bytes); an existing
/// file is never overwritten.
pub fn create_output(path: &std::path::Path) -> Result<std::fs::File, CommandError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| {
            CommandError::Usage(format!(
                "cannot create {}: {error} (an existing file is never overwritten)",
                path.display()
            ))
        })
}

/// A recording's connections, with what a reader should know of what they lack.
pub struct Reassembled {
    /// The exit code of reading the recording (3 when it ends without a trailer: what was
    /// recorded is still here).
    pub code: ExitCode,
    /// The first segment's clock.
    pub clock: crate::timeline::Clock,
    pub connections: Vec<crate::connections::Connection>,
    /// Syscall records lost (Loss frames): a connection may lack bytes no gap marks.
    pub lost_syscalls: u64,
    /// TLS plaintext payloads whose descriptor is unknown, in no connection.
    pub unplaced_tls_events: u64,
}

/// Every connection of `recording` with its bytes reassembled.
pub fn connections_of(
    recording: &recorder_store::catalog::RecordingSummary,
    keyring: &Keyring,
) -> Result<Reassembled, CommandError> {
    use recorder_proto::v1::frame::Body;
    let mut connections = crate::connections::Connections::default();
    let mut clock = None;
    let code = walk(recording, keyring, false, |_, body| {
        if let (Body::Header(header), None) = (body, &clock) {
            clock = Some(crate::timeline::Clock::new(header.clock.as_ref()));
        }
        connections.visit(body);
        Ok(())
    })?;
    // Saturating: a damaged recording's counts can be anything.
    let lost_syscalls = connections
        .losses
        .iter()
        .map(|l| l.syscalls)
        .fold(0, u64::saturating_add);
    let unplaced_tls_events = connections.unplaced_tls_events;
    Ok(Reassembled {
        code,
        clock: clock.unwrap_or_default(),
        connections: connections.finish(),
        lost_syscalls,
        unplaced_tls_events,
    })
}

/// How long `--follow` waits before looking for more of a segment being written.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Waits for more of a segment being written; true when its writer has let go of it (it
/// finished, or died), so that what is in the file now is all there will be.
fn wait_for_writer(path: &std::path::Path) -> bool {
    // A segment that cannot be opened any more (swept) has no writer either.
    if !recorder_store::dir::is_locked(path).unwrap_or(false) {
        return true;
    }
    std::thread::sleep(FOLLOW_POLL);
    false
}

/// Visits every frame of every segment of `recording`, in order. With `follow`, waits for
/// frames (and segments) still being written until the recording's final trailer. Returns
/// exit code 3 when the recording ends without a trailer. Sealed segments are opened with
/// `keyring`.
pub fn walk(
    recording: &recorder_store::catalog::RecordingSummary,
    keyring: &Keyring,
    follow: bool,
    mut visit: impl FnMut(u32, &recorder_proto::v1::frame::Body) -> Result<(), CommandError>,
) -> Result<ExitCode, CommandError> {
    use recorder_proto::v1::frame::Body;

    use recorder_store::catalog;

    let mut seq = 0u32;
    let mut path = recording.segments[0].path.clone();
    loop {
        let mut reader = crate::remote::open_segment(&path, keyring)?;
        let mut end_reason = None;
        // Set once the segment's writer no longer holds its lock: what it wrote before it
        // let go is read, and then no more can come.
        let mut writer_gone = false;
        loop {
            match reader.next_body() {
                Ok(Some(body)) => {
                    if let Body::Trailer(trailer) = &body {
                        end_reason = Some(trailer.end_reason.clone());
                    }
                    visit(seq, &body)?;
                }
                Ok(None) if follow && end_reason.is_none() && !writer_gone => {
                    writer_gone = wait_for_writer(&path);
                    reader.refresh();
                }
                Err(error) if follow && error.is_truncation() && !writer_gone => {
                    writer_gone = wait_for_writer(&path);
                    reader.refresh();
                }
                Ok(None) => break,
                Err(error) => return Err(error.into()),
            }
        }
        // A segment cut short by a failed write (with or without the trailer saying so)
        // continues in the next one, if writing resumed.
        if end_reason
            .as_deref()
            .is_none_or(catalog::ended_by_write_failure)
        {
            let resumed = recording
                .segments
                .iter()
                .find(|s| s.header.segment_seq == seq + 1);
            if let Some(next) = resumed {
                seq += 1;
                path = next.path.clone();
                continue;
            }
        }
        match end_reason {
            Some(reason) if reason == catalog::END_ROTATED => {
                seq += 1;
                let next = recording
                    .segments
                    .iter()
                    .find(|s| s.header.segment_seq == seq)
                    .map(|s| s.path.clone());
                path = match (next, follow) {
                    (Some(next), _) => next,
                    (None, true) => loop {
                        let dir = path.parent().unwrap_or(std::path::Path::new("."));
                        if let Some(found) = catalog::find_segment(dir, &recording.id, seq) {
                            break found;
                        }
                        std::thread::sleep(FOLLOW_POLL);
                    },
                    (None, false) => {
                        eprintln!(
                            "recorder: recording {} is incomplete: segment {seq} is missing",
                            recording.id
                        );
                        return Ok(ExitCode::from(EXIT_INCOMPLETE));
                    }
                };
            }
            Some(_) => return Ok(ExitCode::SUCCESS),
            None => {
                eprintln!(
                    "recorder: {} is incomplete: the writer stopped without a trailer",
                    path.display()
                );
                return Ok(ExitCode::from(EXIT_INCOMPLETE));
            }
        }
    }
}
