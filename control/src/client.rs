//! The client side of the control socket: one request, one answer.

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use thiserror::Error;

use crate::{Request, Response};

/// `recorder stop` waits while the recording finishes its segment; the rest answer at once.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Error)]
pub enum ControlError {
    /// The service refused the request or could not be reached; the message says why.
    #[error("{0}")]
    Service(String),
    #[error("talking to recorderd failed: {0}")]
    Io(#[from] io::Error),
}

/// Sends `request` to the service at `socket` and returns its answer; a refusal or failure
/// the service reports is an error carrying its message.
pub fn ask(socket: &Path, request: &Request) -> Result<Response, ControlError> {
    let mut stream = UnixStream::connect(socket).map_err(|error| unreachable(socket, &error))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut line = serde_json::to_vec(request).expect("requests always serialize");
    line.push(b'\n');
    if let Err(error) = stream.write_all(&line) {
        // The service answers a peer it refuses before reading its request, and may have
        // closed by now: its answer, still readable, says why.
        if error.kind() != io::ErrorKind::BrokenPipe {
            return Err(error.into());
        }
    }
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(ControlError::Service(
            "recorderd closed the connection without an answer (see `journalctl -u recorderd`)"
                .to_owned(),
        ));
    }
    match serde_json::from_str(&answer) {
        Ok(Response::Error { message }) => Err(ControlError::Service(message)),
        Ok(response) => Ok(response),
        Err(_) => Err(ControlError::Service(
            "recorderd sent an answer this recorder does not understand: are both the same version?"
                .to_owned(),
        )),
    }
}

fn unreachable(socket: &Path, error: &io::Error) -> ControlError {
    let hint = match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            "is the service running? (`systemctl status recorderd`)"
        }
        io::ErrorKind::PermissionDenied => {
            "you must be root or in the group the service's [control] group names"
        }
        _ => "see `systemctl status recorderd`",
    };
    ControlError::Service(format!(
        "cannot reach recorderd at {}: {error}: {hint}",
        socket.display()
    ))
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
}
