//! recorderd: records what processes exchange with the outside world, in the foreground
//! (`sudo recorderd --pid N`) or as the service (`recorderd --config FILE`).
//!
//! ```text
//! recorder-capture (probes, ring buffer) ──▶ pipeline: decode ─▶ assemble ─▶ fd table
//!     ─▶ processes ─▶ redaction ──▶ recorder-store (RecordingWriter: segments on disk)
//! ```
//!
//! `session` runs one recording end to end over that path; `service` runs recordings on
//! request. Reading recordings is the `recorder` tool's (recorder-reader), which never
//! depends on this crate.

/// recorderd's command line (clap derive only).
pub mod flags;
/// One recording's settings, built from the configuration plus flags or a request.
pub mod options;
/// The synchronous path of every ring-buffer record, from bytes to a written frame.
pub mod pipeline;
/// One recording, start to finish: targets, probes, the event loop, the trailer.
pub mod session;
/// The service: recordings on request over the control socket, sweeps, reload, shutdown.
pub mod service;
/// The capabilities recorderd keeps once its probes are attached.
pub mod privileges;
/// `--priority background`: the pipeline on CPU time nothing else wants.
pub mod priority;
/// A counting global allocator, for the benchmark's allocations per event.
#[cfg(feature = "count-allocations")]
pub mod allocations;
