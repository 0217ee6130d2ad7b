//! `recorder redact-test [--config FILE] < input`: what the configured policy would mask.
//! The input goes through the same stream redactor a recording uses, as one stream; the
//! masked bytes go to stdout and one line per redaction to `notes` (stderr).

use std::{
    io::{Read, Write},
    process::ExitCode,
    sync::Arc,
};

use recorder_redact::{Policy, StreamRedactor};

use super::CommandError;

pub fn run(
    policy: Arc<Policy>,
    input: &mut impl Read,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let mut stream = StreamRedactor::new(policy);
    let ticket = stream.push(&bytes, 0);
    // The input is complete: nothing more can arrive to finish a partial match.
    stream.close();
    let redacted = stream
        .take(ticket)
        .expect("a closed stream has decided every byte");
    out.write_all(&redacted.bytes)?;
    for redaction in &redacted.redactions {
        writeln!(
            notes,
            "redacted bytes {}..{} ({} bytes) by {}",
            redaction.offset,
            redaction.offset + redaction.length,
            redaction.length,
            redaction.rule
        )?;
    }
    writeln!(notes, "{} redactions", redacted.redactions.len())?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_names_what_it_masked() {
        let policy = Arc::new(Policy::new(&recorder_redact::Config::default()).unwrap());
        let input = b"GET /?q=1 HTTP/1.1\r\nCookie: session=abcdef0123456789\r\n\r\n";
        let (mut out, mut notes) = (Vec::new(), Vec::new());
        run(policy, &mut &input[..], &mut out, &mut notes).unwrap();
        let (out, notes) = (
            String::from_utf8(out).unwrap(),
            String::from_utf8(notes).unwrap(),
        );
        assert_eq!(out.len(), input.len());
        assert!(
            !out.contains("abcdef0123456789") && out.contains("Cookie: "),
            "{out}"
        );
        assert!(
            notes.contains("by http-header") && notes.ends_with("1 redactions\n"),
            "{notes}"
        );
    }
}
