//! `recorder`: reads recordings (list, inspect, verify, export), manages them (sweep, hold,
//! release, audit verify, keygen) and asks the recorderd service to record (start, stop,
//! status). It depends on recorder-store, recorder-proto and recorder-syscalls, never on the
//! probes: it builds with stable Rust alone.

/// The command line (clap derive only).
pub mod cli;
/// A recording's sockets as connections, their bytes reassembled (conversations, stats,
/// exports).
pub mod connections;
/// Which protocol a connection speaks, and its exchanges.
pub mod conversations;
/// One module per subcommand.
pub mod command;
/// Recorded frames as timeline lines for a person.
pub mod timeline;
/// Recordings in a bucket (`s3://…`), read by ranges.
pub mod remote;
