//! `recorder verify TARGET`: is the recording complete, incomplete, or corrupt — and where.

use std::{io::Write, process::ExitCode};

use crate::record::catalog::{RecordingState, RecordingSummary};

use super::{CommandError, EXIT_CORRUPT, EXIT_INCOMPLETE};

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
    }
}
