//! `recorder start`, `stop` and `status`: one request to the recorderd service over its
//! control socket, and its answer printed for a person (or as JSON).

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use super::CommandError;
use crate::service::protocol::{RecordingStatus, Request, Response};

/// `recorder stop` waits while the recording finishes its segment; the rest answer at once.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `request` to the service at `socket` and returns its answer; a refusal or failure
/// the service reports is an error carrying its message.
pub fn ask(socket: &Path, request: &Request) -> Result<Response, CommandError> {
    let mut stream = UnixStream::connect(socket).map_err(|error| unreachable(socket, &error))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = serde_json::to_vec(request).expect("requests always serialize");
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(CommandError::Service(
            "recorderd closed the connection without an answer (see `journalctl -u recorderd`)"
                .to_owned(),
        ));
    }
    match serde_json::from_str(&answer) {
        Ok(Response::Error { message }) => Err(CommandError::Service(message)),
        Ok(response) => Ok(response),
        Err(_) => Err(CommandError::Service(
            "recorderd sent an answer this recorder does not understand: are both the same version?"
                .to_owned(),
        )),
    }
}

fn unreachable(socket: &Path, error: &io::Error) -> CommandError {
    let hint = match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            "is the service running? (`systemctl status recorderd`)"
        }
        io::ErrorKind::PermissionDenied => {
            "you must be root or in the group the service's [control] group names"
        }
        _ => "see `systemctl status recorderd`",
    };
    CommandError::Service(format!(
        "cannot reach recorderd at {}: {error}: {hint}",
        socket.display()
    ))
}

/// Prints what `start` or `stop` answered.
pub fn print(response: &Response, out: &mut impl Write) -> io::Result<()> {
    match response {
        Response::Started { recording } => {
            writeln!(
                out,
                "recording {} started: {} for {}, into {}",
                recording.id,
                recording.target,
                humantime::format_duration(Duration::from_secs(recording.remaining_secs)),
                recording.path
            )
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
    } = response
    else {
        return Ok(());
    };
    writeln!(
        out,
        "recorderd {version}: {} of {max_concurrent} recordings running; recordings in {recordings_dir}",
        recordings.len()
    )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_says_what_to_check() {
        let error = ask(Path::new("/nonexistent/control.sock"), &Request::Status).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("cannot reach recorderd at /nonexistent/control.sock")
                && text.contains("is the service running?"),
            "{text}"
        );
    }

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
        };
        let mut out = Vec::new();
        print_status(&response, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("1 of 4 recordings running"), "{text}");
        assert!(
            text.contains("1m 30s") && text.contains("1234") && text.contains("alice"),
            "{text}"
        );
    }
}
