//! recorderd records what processes exchange with the outside world.
//!
//! ```text
//! kernel probes ──ring buffer──▶ capture ──▶ event::decode ──▶ event::Assembler
//!     ──▶ fdtable ──▶ redaction ──▶ record::SegmentWriter (protobuf frames in zstd, 0600 file)
//! ```
//!
//! `session` runs one recording end to end; `record::SegmentReader` and `timeline` are the
//! reading side used by the `recorder` tool, and never touch the probes.

pub mod accounts;
pub mod audit;
pub mod capture;
pub mod cli;
pub mod command;
pub mod config;
pub mod event;
pub mod fdtable;
pub mod host_info;
pub mod pipeline;
pub mod privileges;
pub mod processes;
pub mod record;
pub mod redaction;
pub mod retention;
pub mod service;
pub mod session;
pub mod target;
pub mod telemetry;
pub mod timeline;
