//! Exec arguments, redacted as whole buffers (no stream to follow): each argument on its
//! own, and the one after a flag that names a secret (`--password VALUE`) whole.

use recorder_proto::v1::{Event, Redaction};
use recorder_redact::Policy;

use super::redaction;

/// Rule name for the argument after a flag that names a secret (`--password VALUE`).
const SECRET_FLAG_VALUE: &str = "secret-flag-value";
/// Words that make a command-line flag's next argument a secret.
const SECRET_FLAG_WORDS: [&str; 7] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "credential",
    "privatekey",
];

/// Redacts an exec's arguments in place: each as a buffer, and the one after a flag that
/// names a secret (`--password VALUE`, `-token VALUE`) whole.
pub fn redact_argv(policy: &Policy, event: &mut Event) {
    let mut redactions = Vec::new();
    let masked = redact_args(policy, &event.argv, &mut redactions);
    event.argv = masked;
    event.redactions.extend(redactions);
}

/// The command line, redacted, for the Header and the start message.
pub fn redact_command(policy: &Policy, argv: &[String]) -> Vec<String> {
    if !policy.enabled() {
        return argv.to_vec();
    }
    redact_args(policy, argv, &mut Vec::new())
}

fn redact_args(policy: &Policy, argv: &[String], redactions: &mut Vec<Redaction>) -> Vec<String> {
    let mut secret_next = false;
    argv.iter()
        .enumerate()
        .map(|(i, arg)| {
            let field = format!("argv[{i}]");
            let masked = if secret_next {
                redactions.push(redaction(SECRET_FLAG_VALUE, 0, arg.len() as u32, field));
                "*".repeat(arg.len())
            } else {
                let redacted = policy.redact_buffer(arg.as_bytes());
                for r in &redacted.redactions {
                    redactions.push(redaction(&r.rule, r.offset, r.length, field.clone()));
                }
                String::from_utf8_lossy(&redacted.bytes).into_owned()
            };
            secret_next = names_a_secret(arg);
            masked
        })
        .collect()
}

/// `--password`, `-p`-less spellings like `--db-password`, `--api_token`: a flag (no `=`)
/// whose name holds a secret word, whatever its case or separators.
fn names_a_secret(arg: &str) -> bool {
    let Some(name) = arg.strip_prefix('-') else {
        return false;
    };
    if name.contains('=') {
        return false;
    }
    let normalized: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_FLAG_WORDS
        .iter()
        .any(|word| normalized.contains(word))
}
