//! `recorder list [DIR] [--json]`: one row per recording.

use std::{io::Write, path::Path, time::Duration};

use crate::record::catalog::{self, CatalogError, RecordingState, RecordingSummary};

use super::CommandError;

pub fn run(dir: &Path, json: bool, out: &mut impl Write) -> Result<(), CommandError> {
    let (recordings, problems) = catalog::scan(dir)?;
    for problem in &problems {
        eprintln!("recorder: skipped {problem}");
    }
    if recordings.is_empty() {
        return Err(CatalogError::Empty {
            path: dir.to_owned(),
        }
        .into());
    }
    if json {
        let rows: Vec<serde_json::Value> = recordings.iter().map(row_json).collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12}  {:<24}  {:<20}  {:>9}  {:>8}  {:>10}  {:>6}  STATE",
        "ID", "TARGET", "START (UTC)", "DURATION", "EVENTS", "BYTES", "LOST"
    )?;
    for recording in &recordings {
        writeln!(
            out,
            "{:<12}  {:<24}  {:<20}  {:>9}  {:>8}  {:>10}  {:>6}  {}",
            &recording.id[..recording.id.len().min(12)],
            truncate(&target(recording), 24),
            start(recording),
            format!(
                "{:.1}s",
                Duration::from_nanos(recording.duration_ns()).as_secs_f64()
            ),
            recording.events(),
            recording.file_bytes(),
            recording.losses(),
            state_word(&recording.state()),
        )?;
    }
    Ok(())
}

fn row_json(recording: &RecordingSummary) -> serde_json::Value {
    serde_json::json!({
        "id": recording.id,
        "target": target(recording),
        "start": start(recording),
        "duration_ns": recording.duration_ns(),
        "events": recording.events(),
        "bytes": recording.file_bytes(),
        "losses": recording.losses(),
        "state": state_word(&recording.state()),
        "segments": recording.segments.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>(),
    })
}

pub fn state_word(state: &RecordingState) -> &'static str {
    match state {
        RecordingState::Complete => "complete",
        RecordingState::Incomplete { .. } => "incomplete",
        RecordingState::Corrupt { .. } => "corrupt",
    }
}

fn target(recording: &RecordingSummary) -> String {
    let target = recording.header().target.clone().unwrap_or_default();
    if target.command.is_empty() {
        let pids: Vec<String> = target.pids.iter().map(u32::to_string).collect();
        format!("pid {}", pids.join(","))
    } else {
        target.command.join(" ")
    }
}

fn start(recording: &RecordingSummary) -> String {
    let realtime_ns = recording
        .header()
        .clock
        .as_ref()
        .map_or(0, |c| c.realtime_ns)
        .max(0) as u64;
    let at = std::time::UNIX_EPOCH + Duration::from_nanos(realtime_ns);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}
