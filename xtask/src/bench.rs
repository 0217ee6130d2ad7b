//! `cargo xtask bench [--quick]`: runs the benchmarks and, unless `--quick`, writes their
//! tables into docs/BENCHMARKS.md with the command and the machine that produced them.

use std::{path::Path, process::Command};

use anyhow::{bail, Context as _, Result};

pub(crate) const DOC: &str = "docs/BENCHMARKS.md";

pub fn run(root: &Path, quick: bool) -> Result<()> {
    crate::compare::run(root, quick)?;
    let mut cargo = Command::new("cargo");
    cargo
        .args([
            "bench",
            "--package",
            "recorder-store",
            "--bench",
            "writer",
            "--",
        ])
        .current_dir(root);
    if quick {
        cargo.arg("--quick");
    }
    let output = cargo.output().context("running the writer benchmark")?;
    if !output.status.success() {
        bail!(
            "writer benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let rows: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(str::to_owned)
        .collect();
    if rows.is_empty() {
        bail!("the writer benchmark printed no results");
    }
    for row in &rows {
        println!("{row}");
    }
    if quick {
        println!(
            "bench --quick: the harness runs ({} result rows); figures not recorded",
            rows.len()
        );
        return redaction(root, quick);
    }
    let table = format!(
        "Command: `cargo xtask bench` — {}\n\n| what | input | rate | throughput | time |\n| --- | --- | --- | --- | --- |\n{}\n",
        machine(),
        rows.join("\n")
    );
    replace_section(&root.join(DOC), "writer", &table)?;
    println!("bench: wrote the writer table into {DOC}");
    redaction(root, quick)
}

/// Redaction throughput on one core: the redactor's `throughput` example streams a corpus
/// through one `StreamRedactor` in pieces of a given size, as syscalls would hand them over:
/// mixed (ordinary traffic and planted secrets), ordinary traffic alone (the false-positive
/// corpus), secret-dense traffic, and the HTTP row's request and nginx's response to it, one
/// per piece.
/// Then the pipeline's redaction stage, on its threads.
fn redaction(root: &Path, quick: bool) -> Result<()> {
    let mib = if quick { "2" } else { "64" };
    let mut rows = Vec::new();
    let mut goals = Vec::new();
    let runs = ["mixed", "ordinary", "dense"]
        .into_iter()
        .flat_map(|mode| ["4096", "512", "64"].map(|piece| (mode, piece)))
        .chain([("http", "0"), ("response", "0")]);
    for (mode, piece) in runs {
        let output = Command::new("cargo")
            .args([
                "run",
                "--quiet",
                "--release",
                "--package",
                "recorder-redact",
            ])
            .args(["--example", "throughput", "--", piece, mib, mode])
            .current_dir(root)
            .output()
            .context("running the redaction benchmark")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // "64 MiB in 4096-byte pieces: 0.954 s, 67.1 MiB/s (123 redactions)"
        let rate = stdout
            .split(", ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .filter(|_| output.status.success());
        let Some(rate) = rate else {
            bail!(
                "redaction benchmark failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        };
        // The redactor's goals, on one core in 4096-byte pieces (MiB/s).
        let goal = match (mode, piece) {
            ("ordinary", "4096") => Some(("ordinary traffic ≥ 1 GiB/s", 1024.0)),
            ("dense", "4096") => Some(("secret-dense traffic ≥ 300 MiB/s", 300.0)),
            _ => None,
        };
        if let Some((what, target)) = goal {
            let met = rate.parse::<f64>().is_ok_and(|r| r >= target);
            let result = if met { "met" } else { "**not met**" };
            goals.push(format!(
                "| redactor on one core, {what} | {rate} MiB/s | {result} |"
            ));
        }
        let input = match mode {
            "http" => format!("{mib} MiB of the HTTP row's request, one per piece"),
            "response" => format!("{mib} MiB of the HTTP row's response, one per piece"),
            _ => format!("{mib} MiB {mode} corpus in {piece}-byte pieces"),
        };
        rows.push(format!(
            "| redaction | {input} | {rate} MiB/s on one core |"
        ));
    }
    rows.extend(redaction_stage(root, quick)?);
    let goals = format!(
        "| goal | figure | result |\n| --- | --- | --- |\n{}",
        goals.join("\n")
    );
    for row in rows.iter().chain([&goals]) {
        println!("{row}");
    }
    if quick {
        return Ok(());
    }
    let table = format!(
        "Command: `cargo xtask bench` — {}\n\n| what | input | throughput |\n| --- | --- | --- |\n{}\n\n{goals}\n",
        machine(),
        rows.join("\n")
    );
    replace_section(&root.join(DOC), "redaction", &table)?;
    println!("bench: wrote the redaction table into {DOC}");
    Ok(())
}

/// The pipeline's redaction stage (recorder-daemon's `redaction_stage` example): HTTP
/// requests over one stream and over eight, with the redactor on the pipeline's thread
/// (`--threads 0`) and on worker threads. Debug and short with `--quick`, which only
/// checks that it runs.
fn redaction_stage(root: &Path, quick: bool) -> Result<Vec<String>> {
    let mib = if quick { "1" } else { "64" };
    let mut rows = Vec::new();
    for (streams, threads) in [("1", &["0", "1"][..]), ("8", &["0", "1", "2"][..])] {
        let mut cargo = Command::new("cargo");
        cargo.args(["run", "--quiet", "--package", "recorder-daemon"]);
        if !quick {
            cargo.arg("--release");
        }
        let output = cargo
            .args(["--example", "redaction_stage", "--", streams, mib])
            .args(threads)
            .current_dir(root)
            .output()
            .context("running the redaction stage benchmark")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // "8 streams, --threads 2: 72.3 MiB/s"
        let lines: Vec<&str> = stdout
            .lines()
            .filter(|l| l.contains(" --threads "))
            .collect();
        if !output.status.success() || lines.len() != threads.len() {
            bail!(
                "redaction stage benchmark failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        for line in lines {
            let (what, rate) = line.split_once(": ").unwrap_or((line, ""));
            rows.push(format!(
                "| redaction stage | {mib} MiB of HTTP requests, {what} | {rate} |"
            ));
        }
    }
    Ok(rows)
}

/// Replaces the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in `path`.
pub(crate) fn replace_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (start, end) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    let (Some(from), Some(to)) = (text.find(&start), text.find(&end)) else {
        bail!("{} lacks the {start} / {end} markers", path.display());
    };
    let updated = format!("{}{start}\n{body}{}", &text[..from], &text[to..]);
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

/// CPU model, core count and kernel, from /proc.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .and_then(|rest| rest.split(':').nth(1))
        })
        .unwrap_or("unknown CPU")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cores} cores, Linux {}", kernel.trim())
}
