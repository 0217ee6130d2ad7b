//! How `recorder start`, `stop` and `status` print the service's answers.

use std::{
    io::{self, Write},
    time::Duration,
};

use recorder_control::{RecordingStatus, Response, UploadStatus};

/// Prints what `start` or `stop` answered.
pub fn print(response: &Response, out: &mut impl Write) -> io::Result<()> {
    match response {
        Response::Started { recording, notices } => {
            writeln!(
                out,
                "recording {} started: {} for {}, into {}",
                recording.id,
                recording.target,
                humantime::format_duration(Duration::from_secs(recording.remaining_secs)),
                recording.path
            )?;
            for notice in notices {
                writeln!(out, "note: {notice}")?;
            }
            Ok(())
        }
        Response::Stopped { recording } => {
            writeln!(
                out,
                "recording {} stopped ({}): {} events, {} records lost",
                recording.id, recording.end_reason, recording.events, recording.lost
            )?;
            for path in &recording.paths {
                writeln!(out, "recording: {path}")?;
            }
            Ok(())
        }
        Response::Status { .. } => print_status(response, false, out),
        Response::Error { message } => writeln!(out, "error: {message}"),
    }
}

/// Prints a status answer as a table, or as the service's JSON with `json`.
pub fn print_status(response: &Response, json: bool, out: &mut impl Write) -> io::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, response)?;
        return writeln!(out);
    }
    let Response::Status {
        version,
        recordings_dir,
        max_concurrent,
        recordings,
        upload,
    } = response
    else {
        return Ok(());
    };
    writeln!(
        out,
        "recorderd {version}: {} of {max_concurrent} recordings running; recordings in {recordings_dir}",
        recordings.len()
    )?;
    if let Some(upload) = upload {
        print_upload(upload, out)?;
    }
    if recordings.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "{:<32}  {:<20}  {:>9}  {:>10}  {:<12}  TARGET",
        "ID", "STARTED", "LEFT", "EVENTS", "BY"
    )?;
    for RecordingStatus {
        id,
        target,
        started,
        remaining_secs,
        events,
        requested_by,
        ..
    } in recordings
    {
        writeln!(
            out,
            "{id:<32}  {started:<20}  {:>9}  {events:>10}  {requested_by:<12}  {target}",
            humantime::format_duration(Duration::from_secs(*remaining_secs)).to_string()
        )?;
    }
    Ok(())
}

/// The upload lines of a status: the queue, what is in flight, totals, the last failure.
fn print_upload(upload: &UploadStatus, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "upload to {}: {} queued ({} bytes), {} in flight; since start {} uploaded, {} dropped, {} refused (unsealed); audit shipped to entry {}",
        upload.bucket,
        upload.queued,
        upload.queued_bytes,
        upload.in_flight.as_deref().unwrap_or("nothing"),
        upload.uploaded,
        upload.dropped,
        upload.refused,
        upload.audit_shipped_seq
    )?;
    if let Some(error) = &upload.last_error {
        writeln!(out, "upload last error: {error}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_lists_each_recording() {
        let response = Response::Status {
            version: "1.0".into(),
            recordings_dir: "/var/lib/recorderd/recordings".into(),
            max_concurrent: 4,
            recordings: vec![RecordingStatus {
                id: "ab".repeat(16),
                target: "pid 42".into(),
                path: "/x.rcd".into(),
                started: "2026-11-22T10:00:00Z".into(),
                remaining_secs: 90,
                events: 1234,
                requested_by: "alice".into(),
            }],
            upload: Some(UploadStatus {
                bucket: "s3://fleet".into(),
                queued: 2,
                dropped: 1,
                last_error: Some("2026-12-04T15:00:00Z upload of x.rcd failed: 503".into()),
                ..UploadStatus::default()
            }),
        };
        let mut out = Vec::new();
        print_status(&response, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("1 of 4 recordings running"), "{text}");
        assert!(
            text.contains("1m 30s") && text.contains("1234") && text.contains("alice"),
            "{text}"
        );
        assert!(
            text.contains("upload to s3://fleet: 2 queued") && text.contains("1 dropped"),
            "{text}"
        );
        assert!(
            text.contains("upload last error: 2026-12-04T15:00:00Z"),
            "{text}"
        );
    }
}
