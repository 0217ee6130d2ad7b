//! `cargo xtask test`'s layout check: the `recorder` reader must build without the eBPF
//! toolchain, so nothing that loads or builds probes may be in its dependency tree.

use std::process::Command;

use anyhow::{bail, Context as _, Result};

/// The reader tool's package.
const READER: &str = "recorder-reader";
/// Packages that pull in aya, the probes or their nightly build.
const CAPTURE_SIDE: [&str; 5] = [
    "aya",
    "aya-obj",
    "recorder-capture",
    "recorder-ebpf",
    "xtask",
];

pub fn check(root: &std::path::Path) -> Result<()> {
    let output = Command::new("cargo")
        .args(["tree", "--package", READER, "--edges", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(root)
        .output()
        .context("running cargo tree")?;
    if !output.status.success() {
        bail!(
            "cargo tree -p {READER} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let offending: Vec<&str> = tree
        .lines()
        .filter(|line| {
            let name = line.split_whitespace().next().unwrap_or_default();
            CAPTURE_SIDE.contains(&name)
        })
        .collect();
    if !offending.is_empty() {
        bail!(
            "{READER} depends on the capture side ({}): the reader must build with stable Rust alone; see docs/ARCHITECTURE.md",
            offending.join(", ")
        );
    }
    println!("layout: {READER} depends on no probe or aya crate");
    Ok(())
}
