//! `recorder keygen [--output FILE]`: a new age X25519 identity for reading sealed recordings.
//!
//! With `--output`, the identity goes to FILE (0600, created, never overwritten) and the public
//! recipient (`age1…`) to stdout, ready for `recorderd --seal-to`. Without it, the identity
//! file's text goes to stdout only when stdout is not a terminal (a pipe into a secret store,
//! a redirect): a secret printed to a terminal stays in scrollback and session logs. The
//! recipient then goes to stderr.

use std::{
    io::{IsTerminal, Write},
    path::Path,
};

use age::x25519::Identity;

use recorder_store::seal;

use super::CommandError;

pub fn run(
    output: Option<&Path>,
    stdout_is_terminal: bool,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    if let Some(path) = output {
        let recipient = seal::write_new_identity(path)?;
        eprintln!(
            "recorder: wrote identity to {} (keep it off recording hosts); its recipient:",
            path.display()
        );
        writeln!(out, "{recipient}")?;
        return Ok(());
    }
    if stdout_is_terminal {
        return Err(CommandError::Usage(
            "refusing to print a secret identity to a terminal: pass --output FILE, or redirect stdout (`recorder keygen > FILE`)".to_owned(),
        ));
    }
    let identity = Identity::generate();
    out.write_all(seal::identity_file_text(&identity).as_bytes())?;
    eprintln!("Public key: {}", identity.to_public());
    Ok(())
}

/// Whether the process's stdout is a terminal (the binary passes this to `run`).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_terminal_and_writes_a_pipe() {
        let mut out = Vec::new();
        let error = run(None, true, &mut out).unwrap_err();
        assert!(error.to_string().contains("refusing"), "{error}");
        assert!(out.is_empty());
        run(None, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("# public key: age1"), "{text}");
        assert!(text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")));
    }

    #[test]
    fn output_file_prints_only_the_recipient() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("id.txt");
        let mut out = Vec::new();
        run(Some(&path), true, &mut out).unwrap();
        let recipient = String::from_utf8(out).unwrap();
        assert!(recipient.starts_with("age1") && recipient.ends_with('\n'));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(recipient.trim()));
        assert!(run(Some(&path), true, &mut Vec::new()).is_err());
    }
}
