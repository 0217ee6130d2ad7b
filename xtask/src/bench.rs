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
            "recorder-daemon",
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
        return Ok(());
    }
    let table = format!(
        "Command: `cargo xtask bench` — {}\n\n| what | input | rate | throughput | time |\n| --- | --- | --- | --- | --- |\n{}\n",
        machine(),
        rows.join("\n")
    );
    replace_section(&root.join(DOC), "writer", &table)?;
    println!("bench: wrote the writer table into {DOC}");
    Ok(())
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
