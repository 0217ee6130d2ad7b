//! What the syscalls recorderd traces mean, for everyone who handles their events: the
//! capture (which kernel class the probes apply), the pipeline (what an event does to the
//! fd table and which payload stream it feeds), and the reader (how the timeline shows it).
//! Adding a syscall is a row in [`table`]. No probes, no I/O.

/// One row per traced syscall.
pub mod table;
/// Raw `sockaddr` bytes to recorded socket addresses, and back to text.
pub mod sockaddr;

pub use table::{boundary_of, by_name, by_nr, Boundary, Effect, FdSource, Stream, Syscall, View};
