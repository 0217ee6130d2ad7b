//! Facts about the nightly toolchain that builds the eBPF object, derived from the toolchain
//! itself so nothing here names an LLVM version.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

/// The rustup toolchain that builds `recorder-ebpf` (it needs `-Z build-std`).
pub const NIGHTLY: &str = "nightly";

/// Runs `program args...` and returns its stdout, failing with the command line on error.
pub fn output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("could not run `{program} {}`", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `rustc +nightly --print sysroot`.
pub fn nightly_sysroot() -> Result<PathBuf> {
    let sysroot = output("rustc", &[&format!("+{NIGHTLY}"), "--print", "sysroot"])?;
    Ok(PathBuf::from(sysroot.trim()))
}

/// The LLVM major version the nightly rustc was built with (`LLVM version: 22.1.4` → 22).
pub fn nightly_llvm_major() -> Result<u32> {
    let verbose = output("rustc", &[&format!("+{NIGHTLY}"), "-vV"])?;
    let version = verbose
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .context("`rustc +nightly -vV` printed no LLVM version")?;
    let major = version.split('.').next().unwrap_or_default();
    major
        .parse()
        .with_context(|| format!("unexpected LLVM version `{version}`"))
}

/// The versioned shared libLLVM that ships inside the nightly toolchain
/// (`libLLVM.so.22.1-rust-1.97.0-nightly`): the one bpf-linker must link against.
pub fn nightly_libllvm(sysroot: &Path) -> Result<PathBuf> {
    let lib = sysroot.join("lib");
    let entries = std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))?;
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("libLLVM.so.") {
            return Ok(path);
        }
    }
    bail!(
        "no libLLVM.so.* in {}: this nightly does not ship a shared LLVM",
        lib.display()
    )
}

/// Whether the nightly has rust-src (needed by `-Z build-std=core`).
pub fn has_rust_src(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib/src/rust/library/core/Cargo.toml")
        .exists()
}

/// `$CARGO_HOME`, or `~/.cargo`.
pub fn cargo_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo")
}
