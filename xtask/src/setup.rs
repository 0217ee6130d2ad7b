//! `cargo xtask setup`: installs what a brand-new machine lacks, idempotently, and returns in
//! seconds when everything is already there.

use std::{os::unix::fs::symlink, path::Path, process::Command, time::Instant};

use anyhow::{bail, Context as _, Result};
use xtask::toolchain::{self, NIGHTLY};

/// bpf-linker release known to link with the nightly's own LLVM (see shared toolchain notes).
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages the tests and the benchmark harness run: the real clients and servers the
/// privileged tests record (curl, python3's http.server, PostgreSQL with psql, Redis with
/// redis-cli, nginx over TLS, gnutls-cli) and the tools they use.
pub const APT_PACKAGES: &[&str] = &[
    "curl",
    "python3",
    "iproute2",
    "procps",
    "postgresql",
    "postgresql-client",
    "redis-server",
    "redis-tools",
    // TLS plaintext (tests/tests/tls.rs): nginx serves HTTPS, gnutls-cli is the GnuTLS client.
    "nginx",
    "gnutls-bin",
    // Protocol views (tests/tests/protocol_views.rs): tshark reads the pcapng export, dnsmasq
    // is the test's own DNS server and dig its client, psycopg sends an extended query;
    // python3-pip installs the HAR library (PYTHON_PACKAGES) where pip is missing.
    "tshark",
    "dnsmasq",
    "bind9-dnsutils",
    "python3-psycopg",
    "python3-pip",
    // systemd-analyze checks dist/recorderd.service (tests/tests/service_unit.rs); setpriv
    // runs the control-socket tests as another user.
    "systemd",
    "util-linux",
    // Stacks (tests/tests/stacks.rs): gcc builds the test's C program, binutils strips it
    // and splits off its debug file, and a Node.js script shows JIT frames by perf map.
    "gcc",
    "binutils",
    "nodejs",
    // 32-bit programs (tests/tests/under_abuse.rs): gcc -m32 -static builds an i386 one.
    "gcc-multilib",
];

/// Python packages the tests use that Debian does not ship: haralyzer reads the HAR export
/// (tests/tests/protocol_views.rs); moto, in server mode with flask, is the S3-compatible
/// server of the upload tests (tests/tests/upload.rs). Installed with pip into
/// `PYTHON_PACKAGES_DIR` under the workspace, never into the system's Python; the tests put
/// it on PYTHONPATH. (module, requirement)
pub const PYTHON_PACKAGES: &[(&str, &str)] = &[
    ("haralyzer", "haralyzer==2.4.0"),
    ("moto", "moto[s3,iam]==5.2.5"),
    ("flask", "flask==3.1.3"),
    ("flask_cors", "flask-cors==6.0.5"),
];

/// Where PYTHON_PACKAGES go, relative to the workspace root (tests read the same path).
pub const PYTHON_PACKAGES_DIR: &str = "target/python";

/// What `cargo xtask bench` compares recorderd with, and its HTTP workload. Installed by the
/// full bench only: `cargo xtask test` (CI) runs `bench --quick` with whatever is present.
pub const BENCH_PACKAGES: &[&str] = &["strace", "linux-perf", "bpftrace", "wrk"];

pub fn run() -> Result<()> {
    let started = Instant::now();
    ensure_nightly()?;
    let sysroot = toolchain::nightly_sysroot()?;
    ensure_rust_src(&sysroot)?;
    ensure_bpf_linker(&sysroot)?;
    ensure_apt_packages(APT_PACKAGES)?;
    ensure_python_packages(&crate::workspace_root().join(PYTHON_PACKAGES_DIR))?;
    println!(
        "setup: all present ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn ensure_nightly() -> Result<()> {
    let toolchains = toolchain::output("rustup", &["toolchain", "list"])?;
    if toolchains
        .lines()
        .any(|line| line.starts_with(&format!("{NIGHTLY}-")))
    {
        return Ok(());
    }
    println!("setup: installing the {NIGHTLY} toolchain");
    run_checked(Command::new("rustup").args([
        "toolchain",
        "install",
        NIGHTLY,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
    ]))
}

fn ensure_rust_src(sysroot: &Path) -> Result<()> {
    if toolchain::has_rust_src(sysroot) {
        return Ok(());
    }
    println!("setup: adding rust-src to {NIGHTLY}");
    run_checked(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        NIGHTLY,
    ]))
}

/// bpf-linker must link the very libLLVM the nightly rustc uses. Debian's LLVM is older, so it
/// is built against the shared library inside the toolchain, reached through a prefix that
/// outlives any checkout (its rpath points there).
fn ensure_bpf_linker(sysroot: &Path) -> Result<()> {
    let libllvm = toolchain::nightly_libllvm(sysroot)?;
    let lib_name = libllvm
        .file_name()
        .context("libLLVM path has no file name")?
        .to_string_lossy()
        .into_owned();
    if bpf_linker_links(&lib_name) {
        return Ok(());
    }
    let major = toolchain::nightly_llvm_major()?;
    let prefix = toolchain::cargo_home()
        .join("recorderd-llvm")
        .join(&lib_name);
    let lib_dir = prefix.join("lib");
    std::fs::create_dir_all(&lib_dir).with_context(|| format!("creating {}", lib_dir.display()))?;
    for link in [lib_dir.join("libLLVM.so"), lib_dir.join(&lib_name)] {
        let _ = std::fs::remove_file(&link);
        symlink(&libllvm, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    println!("setup: building bpf-linker {BPF_LINKER_VERSION} against {lib_name} (about a minute)");
    run_checked(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("RUSTFLAGS"),
    )?;
    if !bpf_linker_links(&lib_name) {
        bail!("bpf-linker was installed but does not load {lib_name}: check `ldd $(which bpf-linker)`");
    }
    Ok(())
}

/// True when bpf-linker runs and its dynamic libLLVM is exactly `lib_name`.
fn bpf_linker_links(lib_name: &str) -> bool {
    let Ok(path) = toolchain::output("sh", &["-c", "command -v bpf-linker"]) else {
        return false;
    };
    let Ok(ldd) = toolchain::output("ldd", &[path.trim()]) else {
        return false;
    };
    ldd.contains(lib_name)
        && !ldd.contains("not found")
        && toolchain::output("bpf-linker", &["--version"]).is_ok()
}

pub fn ensure_apt_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; run `sudo apt-get install {}` or rerun setup as root",
            missing.join(" "),
            missing.join(" ")
        );
    }
    println!("setup: installing {}", missing.join(" "));
    run_checked(Command::new("apt-get").args(["update", "-qq"]))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn ensure_python_packages(dir: &Path) -> Result<()> {
    let missing: Vec<&str> = PYTHON_PACKAGES
        .iter()
        .filter(|(module, _)| !dir.join(module).is_dir())
        .map(|&(_, requirement)| requirement)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!(
        "setup: installing {} into {}",
        missing.join(" "),
        dir.display()
    );
    run_checked(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(dir)
            .args(&missing),
    )
}

fn dpkg_installed(package: &str) -> bool {
    toolchain::output("dpkg-query", &["-W", "-f=${Status}", package])
        .map(|status| status.contains("install ok installed"))
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn run_checked(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("could not run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}
