//! `cargo xtask fuzz`: every cargo-fuzz target of the repository, one after the other, each
//! for the time given, from its committed seeds and a corpus kept under target/fuzz-corpus.
//! Installs cargo-fuzz when it is missing. Fails on the first target that finds something
//! (libFuzzer leaves the input under the fuzz directory's `artifacts/`).

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::setup::run_checked;
use xtask::toolchain::NIGHTLY;

/// A fuzz target: its fuzz directory (a cargo-fuzz workspace), its name and its seeds.
struct Target {
    dir: &'static str,
    name: &'static str,
    seeds: Option<&'static str>,
}

const TARGETS: [Target; 7] = [
    Target {
        dir: "fuzz",
        name: "read_segment",
        seeds: Some("fuzz/seeds/read_segment"),
    },
    Target {
        dir: "fuzz",
        name: "decode_record",
        seeds: None,
    },
    Target {
        dir: "fuzz/protocols",
        name: "parse_protocols",
        seeds: None,
    },
    Target {
        dir: "fuzz/inputs",
        name: "read_sealed",
        seeds: Some("fuzz/inputs/seeds/read_sealed"),
    },
    Target {
        dir: "fuzz/inputs",
        name: "control_request",
        seeds: None,
    },
    Target {
        dir: "fuzz/inputs",
        name: "load_config",
        seeds: Some("dist"),
    },
    Target {
        dir: "fuzz/inputs",
        name: "stream_redactor",
        seeds: None,
    },
];

/// Runs every target (or those named) for `time` each, and prints what each did.
pub fn run(root: &Path, time: Duration, only: &[String]) -> Result<()> {
    if let Some(unknown) = only
        .iter()
        .find(|name| !TARGETS.iter().any(|t| t.name == name.as_str()))
    {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
        bail!(
            "--target {unknown}: no such fuzz target; they are {}",
            names.join(", ")
        );
    }
    ensure_cargo_fuzz()?;
    let mut summary = Vec::new();
    for target in TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|name| name == t.name))
    {
        let corpus = root.join("target/fuzz-corpus").join(target.name);
        std::fs::create_dir_all(&corpus)?;
        println!(
            "fuzz: {} ({}) for {} s",
            target.name,
            target.dir,
            time.as_secs()
        );
        let mut command = Command::new("cargo");
        command
            .current_dir(root)
            .arg(format!("+{NIGHTLY}"))
            .args(["fuzz", "run", "--fuzz-dir", target.dir, target.name])
            .arg(&corpus);
        if let Some(seeds) = target.seeds {
            command.arg(root.join(seeds));
        }
        let output = command
            .args([
                "--",
                &format!("-max_total_time={}", time.as_secs()),
                "-rss_limit_mb=1024",
                "-timeout=10",
                "-print_final_stats=1",
            ])
            // The fuzz targets use none of the probes.
            .env("RECORDER_EBPF_SKIP", "1")
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running cargo fuzz for {}", target.name))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "fuzz: {} found something or could not run ({}):\n{}",
                target.name,
                output.status,
                tail.join("\n")
            );
        }
        let line = format!(
            "{:<16} {:>10} runs  {:>8} /s  cov {:>6}  corpus {:>6}  peak rss {:>5} MB",
            target.name,
            stat(&log, "stat::number_of_executed_units:"),
            stat(&log, "stat::average_exec_per_sec:"),
            final_field(&log, "cov:"),
            final_field(&log, "corp:"),
            stat(&log, "stat::peak_rss_mb:"),
        );
        println!("fuzz: {line}");
        summary.push(line);
    }
    println!(
        "fuzz: every target ran {} s without a finding:",
        time.as_secs()
    );
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

/// Installs cargo-fuzz with Cargo when `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !present {
        println!("fuzz: installing cargo-fuzz");
        run_checked(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// A `-print_final_stats` value.
fn stat<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines()
        .rev()
        .find_map(|line| line.strip_prefix(key))
        .map_or("?", str::trim)
}

/// A field of libFuzzer's last status line (`#N DONE cov: X ft: Y corp: Z/…`).
fn final_field<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines()
        .rev()
        .find(|line| line.starts_with('#') && line.contains(key))
        .and_then(|line| line.split(key).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_figures() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 1/1b exec/s: 0 rss: 30Mb\n\
                   #1000\tDONE   cov: 321 ft: 900 corp: 77/2345b lim: 4 exec/s: 500 rss: 60Mb\n\
                   Done 1000 runs in 2 second(s)\n\
                   stat::number_of_executed_units: 1000\n\
                   stat::average_exec_per_sec:     500\n\
                   stat::peak_rss_mb:              60\n";
        assert_eq!(stat(log, "stat::number_of_executed_units:"), "1000");
        assert_eq!(stat(log, "stat::average_exec_per_sec:"), "500");
        assert_eq!(final_field(log, "cov:"), "321");
        assert_eq!(final_field(log, "corp:"), "77/2345b");
        assert_eq!(stat(log, "stat::missing:"), "?");
    }
}
