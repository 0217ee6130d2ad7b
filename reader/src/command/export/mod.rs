//! `recorder export --format jsonl|har|pcapng TARGET`: a recording in a format other tools
//! read. jsonl is every frame; har the HTTP exchanges; pcapng the TCP and UDP traffic as
//! packets.

pub mod har;
pub mod jsonl;
pub mod pcapng;

use std::{io::Write, process::ExitCode};

use recorder_store::{catalog::RecordingSummary, Keyring};

use super::CommandError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per frame (docs/FORMAT.md).
    Jsonl,
    /// HAR 1.2: one entry per HTTP exchange (browsers' devtools, HAR viewers).
    Har,
    /// pcapng: TCP connections and UDP sockets as packets (Wireshark, tshark).
    Pcapng,
}

pub fn run(
    recording: &RecordingSummary,
    keyring: &Keyring,
    format: ExportFormat,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    match format {
        ExportFormat::Jsonl => jsonl::run(recording, keyring, out),
        ExportFormat::Har => har::run(recording, keyring, out),
        ExportFormat::Pcapng => pcapng::run(recording, keyring, out),
    }
}
