//! What the protocol-view tests share: recording a command, running `recorder` and
//! reading its JSON, exporting, and tshark.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;

/// Records `command` (run by recorderd) into `dir`; returns the segment.
pub fn record(dir: &Path, options: &[&str], command: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let mut args = vec!["--output", dir.to_str().unwrap()];
    args.extend_from_slice(options);
    args.push("--");
    args.extend_from_slice(command);
    crate::Recorder::start_with_env(&args, env).finish()
}

/// Runs `recorder ARGS`, which must succeed; returns its stdout.
pub fn recorder(args: &[&str]) -> String {
    let output = Command::new(crate::binary("recorder"))
        .args(args)
        .output()
        .unwrap();
    text_of(&output, &format!("recorder {args:?}"))
}

/// A finished command's stdout, which must have succeeded (its stderr says why not).
pub fn text_of(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `recorder conversations --json SEGMENT [options]`: one object per connection.
pub fn conversations(segment: &Path, options: &[&str]) -> Vec<Value> {
    let mut args = vec!["conversations", "--json", segment.to_str().unwrap()];
    args.extend_from_slice(options);
    recorder(&args)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Every exchange of the connections, in order.
pub fn exchanges(connections: &[Value]) -> Vec<Value> {
    connections
        .iter()
        .flat_map(|c| c["exchanges"].as_array().unwrap().clone())
        .collect()
}

/// `recorder export --format FORMAT --output FILE SEGMENT`.
pub fn export(segment: &Path, format: &str, file: &Path) {
    recorder(&[
        "export",
        "--format",
        format,
        "--output",
        file.to_str().unwrap(),
        segment.to_str().unwrap(),
    ]);
}

/// tshark on a pcapng export, which must succeed.
pub fn tshark(pcapng: &Path, args: &[&str]) -> String {
    let output = Command::new("tshark")
        .arg("-r")
        .arg(pcapng)
        .args(args)
        .output()
        .expect("tshark (cargo xtask setup installs it)");
    text_of(&output, &format!("tshark {args:?}"))
}
