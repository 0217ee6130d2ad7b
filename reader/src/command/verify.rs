//! `recorder verify TARGET`: is the recording complete, incomplete, or corrupt — and where.
//! A sealed recording is verified only with an identity that opens it (its blocks are
//! authenticated only by decrypting them).

use std::{io::Write, process::ExitCode};

use recorder_store::catalog::{RecordingState, RecordingSummary};

use super::{CommandError, EXIT_CORRUPT, EXIT_INCOMPLETE, EXIT_SEALED};

pub fn run(recording: &RecordingSummary, out: &mut impl Write) -> Result<ExitCode, CommandError> {
    let segments = recording.segments.len();
    match recording.state() {
        RecordingState::Complete => {
            writeln!(
                out,
                "complete: recording {} ({segments} segments, {} events, {} lost)",
                recording.id,
                recording.events(),
                recording.losses()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        RecordingState::Incomplete { detail } => {
            writeln!(
                out,
                "incomplete: recording {}: {detail}; {} events readable",
                recording.id,
                recording.events()
            )?;
            Ok(ExitCode::from(EXIT_INCOMPLETE))
        }
        RecordingState::Corrupt { detail } => {
            writeln!(out, "corrupt: recording {}: {detail}", recording.id)?;
            Ok(ExitCode::from(EXIT_CORRUPT))
        }
        RecordingState::Sealed { detail } => {
            writeln!(out, "sealed: recording {}: {detail}", recording.id)?;
            Ok(ExitCode::from(EXIT_SEALED))
        }
    }
}
