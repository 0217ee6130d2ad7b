//! The tracing subscriber for the binaries (libraries never install one). Log lines carry
//! counts and names, never recorded payloads, paths or addresses.

use tracing_subscriber::EnvFilter;

/// Logs to stderr at `warn` unless `RUST_LOG` says otherwise.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
