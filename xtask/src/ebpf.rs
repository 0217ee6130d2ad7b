//! The one recipe that builds `recorder-ebpf`'s objects, one per `[[bin]]`, as BPF ELF files.
//!
//! [`build`] makes recorderd's object: `cargo xtask build-ebpf` (verbose, the CI entry point)
//! and `capture/build.rs` (which embeds the result) both call it, so they always agree.
//! [`build_object`] is the same recipe for any of the crate's objects; `cargo xtask bench`
//! uses it for the floor probe, which recorderd's object does not contain.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::toolchain::{self, NIGHTLY};

pub const PACKAGE: &str = "recorder-ebpf";
/// The `[[bin]]` name of recorderd's eBPF object, and so its file name.
pub const OBJECT_NAME: &str = "recorder";
/// The `[[bin]]` name of the benchmark's floor probe (`recorder-ebpf/src/floor.rs`): built and
/// loaded only by `cargo xtask bench`.
pub const FLOOR_OBJECT_NAME: &str = "recorder-floor";
pub const TARGET: &str = "bpfel-unknown-none";

/// Why the eBPF object cannot be built on this machine, if it cannot: the caller decides
/// whether that is fatal (xtask) or a warning with a stub object (build.rs).
pub fn missing_tools() -> Option<String> {
    let sysroot = match toolchain::nightly_sysroot() {
        Ok(sysroot) => sysroot,
        Err(error) => return Some(format!("no {NIGHTLY} toolchain ({error:#})")),
    };
    if !toolchain::has_rust_src(&sysroot) {
        return Some(format!("the {NIGHTLY} toolchain has no rust-src component"));
    }
    if let Err(error) = toolchain::output("bpf-linker", &["--version"]) {
        return Some(format!("bpf-linker does not run ({error:#})"));
    }
    None
}

/// Builds recorderd's object ([`OBJECT_NAME`]) and returns its path; see [`build_object`].
pub fn build(workspace_root: &Path, target_dir: &Path) -> Result<PathBuf> {
    build_object(workspace_root, target_dir, OBJECT_NAME)
}

/// Builds the object of `recorder-ebpf`'s `[[bin]]` named `bin` (always `--release`: debug BPF
/// code does not pass the verifier) and returns its path. Only that bin is compiled: building
/// recorderd's object never builds the floor. `target_dir` must differ from the calling
/// cargo's target directory, or the nested cargo would wait forever on its lock.
pub fn build_object(workspace_root: &Path, target_dir: &Path, bin: &str) -> Result<PathBuf> {
    let mut cargo = Command::new("rustup");
    cargo
        .args([
            "run",
            NIGHTLY,
            "cargo",
            "build",
            "--release",
            "--package",
            PACKAGE,
            "--bin",
            bin,
        ])
        .args(["--target", TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(workspace_root);
    // The calling cargo exports RUSTC, RUSTFLAGS, CARGO_* and friends for the host build;
    // any of them would leak into the BPF build and break it, so start from a clean slate.
    cargo.env_clear();
    for keep in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "TERM",
        "CARGO_TERM_COLOR",
    ] {
        if let Some(value) = std::env::var_os(keep) {
            cargo.env(keep, value);
        }
    }
    // BTF in the object: the kernel needs its func_info for programs with bpf_loop callbacks,
    // and it lets tools name the programs' types.
    cargo.env(
        "CARGO_ENCODED_RUSTFLAGS",
        "-Cdebuginfo=2\x1f-Clink-arg=--btf",
    );
    let status = cargo
        .status()
        .context("could not run `rustup run nightly cargo`")?;
    if !status.success() {
        bail!("building {PACKAGE}'s {bin} failed ({status})");
    }
    let object = target_dir.join(TARGET).join("release").join(bin);
    if !object.is_file() {
        bail!(
            "{PACKAGE}'s {bin} built, but {} is missing",
            object.display()
        );
    }
    Ok(object)
}

/// Where builds driven from `workspace_root` put the BPF target directory.
pub fn target_dir(workspace_root: &Path) -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"));
    base.join("ebpf")
}

/// The source directories whose changes must rebuild the object.
pub fn sources(workspace_root: &Path) -> Vec<PathBuf> {
    ["recorder-ebpf", "recorder-common"]
        .iter()
        .map(|dir| workspace_root.join(dir))
        .collect()
}
