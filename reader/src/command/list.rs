//! `recorder list [DIR] [--json]`: one row per recording. A sealed recording that no given
//! identity opens shows what its plain seal header says (id, start, bytes, recipients) and
//! the state `sealed`; one that opens is listed in full and marked sealed.

use std::{io::Write, path::Path, time::Duration};

use recorder_store::{
    catalog::{self, CatalogError, RecordingState, RecordingSummary},
    loss::PayloadTally,
    Keyring,
};

use super::CommandError;

pub fn run(
    dir: &Path,
    json: bool,
    keyring: &Keyring,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let (recordings, problems) = match crate::remote::is_remote(dir) {
        true => crate::remote::scan(&dir.to_string_lossy(), keyring)?,
        false => catalog::scan(dir, keyring)?,
    };
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
        let rows: Vec<serde_json::Value> = recordings.iter().map(|r| row_json(dir, r)).collect();
        writeln!(out, "{}", serde_json::Value::Array(rows))?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12}  {:<24}  {:<20}  {:>9}  {:>8}  {:>10}  {:>6}  {:>17}  STATE",
        "ID", "TARGET", "START (UTC)", "DURATION", "EVENTS", "BYTES", "LOST", "PAYLOAD KEPT"
    )?;
    for recording in &recordings {
        let locked = recording.is_locked();
        // What only the sealed frames know is shown as `-` until an identity opens them.
        let known = |value: String| if locked { "-".to_owned() } else { value };
        let mut state = state_word(&recording.state()).to_owned();
        if recording.seal().is_some() && !locked {
            state.push_str(" (sealed)");
        }
        if recorder_store::retention::is_held(dir, &recording.id) {
            state.push_str(" (held)");
        }
        writeln!(
            out,
            "{:<12}  {:<24}  {:<20}  {:>9}  {:>8}  {:>10}  {:>6}  {:>17}  {}",
            &recording.id[..recording.id.len().min(12)],
            truncate(&target(recording), 24),
            start(recording),
            known(format!(
                "{:.1}s",
                Duration::from_nanos(recording.duration_ns()).as_secs_f64()
            )),
            known(recording.events().to_string()),
            recording.file_bytes(),
            known(recording.losses().to_string()),
            known(kept_of_moved(&recording.payload())),
            state,
        )?;
    }
    Ok(())
}

fn row_json(dir: &Path, recording: &RecordingSummary) -> serde_json::Value {
    let locked = recording.is_locked();
    let known = |value: serde_json::Value| {
        if locked {
            serde_json::Value::Null
        } else {
            value
        }
    };
    serde_json::json!({
        "id": recording.id,
        "target": target(recording),
        "start": start(recording),
        "duration_ns": known(recording.duration_ns().into()),
        "events": known(recording.events().into()),
        "bytes": recording.file_bytes(),
        "losses": known(recording.losses().into()),
        "payload_bytes": known(payload_json(&recording.payload())),
        "state": state_word(&recording.state()),
        "segments": recording.segments.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>(),
        "sealed": recording.seal().is_some(),
        "held": recorder_store::retention::is_held(dir, &recording.id),
        "recipients": recording.seal().map(|s| s.recipients.clone()),
        // Without a key: whether the last segment has the (unauthenticated) end marker.
        "ended": locked.then(|| recording.segments.last().is_some_and(|s| {
            matches!(s.state, catalog::SegmentState::Sealed { ended: true, .. })
        })),
    })
}

/// `kept/moved` payload bytes, in the largest unit that keeps them short. TLS ciphertext
/// whose plaintext is recorded is left out of both: it was never meant to be kept.
fn kept_of_moved(payload: &PayloadTally) -> String {
    format!(
        "{}/{}",
        short_bytes(payload.kept),
        short_bytes(payload.moved - payload.omitted)
    )
}

fn short_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

fn payload_json(payload: &PayloadTally) -> serde_json::Value {
    serde_json::json!({
        "moved": payload.moved, "kept": payload.kept, "lost": payload.lost, "capped": payload.capped,
        "omitted": payload.omitted,
    })
}

pub fn state_word(state: &RecordingState) -> &'static str {
    match state {
        RecordingState::Complete => "complete",
        RecordingState::Incomplete { .. } => "incomplete",
        RecordingState::Corrupt { .. } => "corrupt",
        RecordingState::Sealed { .. } => "sealed",
    }
}

fn target(recording: &RecordingSummary) -> String {
    if recording.is_locked() {
        return "(sealed)".to_owned();
    }
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
