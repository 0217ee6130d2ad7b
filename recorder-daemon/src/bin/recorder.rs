//! `recorder`: reads recordings made by recorderd.

use std::{
    io::{self, Write},
    process::ExitCode,
};

use clap::Parser;
use recorder_daemon::{
    cli::{RecorderArgs, RecorderCommand},
    record::{ReadError, SegmentReader},
    telemetry, timeline,
};
use recorder_proto::v1::frame::Body;

fn main() -> ExitCode {
    let args = RecorderArgs::parse();
    telemetry::init();
    let result = match args.command {
        RecorderCommand::Inspect { file } => inspect(&file),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`recorder inspect x | head`) is the reader's choice, not an error.
        Err(Failure::Output(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("recorder: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("writing output failed: {0}")]
    Output(#[from] io::Error),
}

fn inspect(file: &std::path::Path) -> Result<ExitCode, Failure> {
    let mut reader = SegmentReader::open(file)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut clock = timeline::Clock::default();
    let mut complete = false;
    loop {
        let body = match reader.next_body() {
            Ok(Some(body)) => body,
            Ok(None) => break,
            Err(error) => {
                // Everything readable was printed; say where and why it stopped.
                out.flush()?;
                return Err(error.into());
            }
        };
        match body {
            Body::Header(header) => {
                clock = timeline::Clock::new(header.clock.as_ref());
                writeln!(out, "{}", timeline::header(&header))?;
            }
            Body::Event(event) => writeln!(out, "{}", timeline::event(&clock, &event))?,
            Body::Loss(loss) => writeln!(out, "{}", timeline::loss(&clock, &loss))?,
            Body::Trailer(trailer) => {
                complete = true;
                writeln!(out, "{}", timeline::trailer(&trailer))?;
            }
        }
    }
    out.flush()?;
    if !complete {
        eprintln!(
            "recorder: {} is incomplete: the writer stopped without a trailer",
            file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
