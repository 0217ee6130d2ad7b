//! `cargo xtask`: setup, builds, tests, the demo and benchmarks for recorderd.

mod bench;
mod compare;
mod disk;
mod fuzz;
mod layout;
mod setup;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use setup::run_checked;
use xtask::{ebpf, toolchain};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, test and demo recorderd")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what this machine lacks: nightly rust-src, bpf-linker, Debian packages.
    Setup,
    /// Build recorderd's eBPF object (what CI on staging pipelines runs).
    BuildEbpf,
    /// Build the eBPF object and every binary in release mode.
    Build,
    /// Run setup, then formatting, lints, unit tests and the privileged integration tests.
    Test,
    /// Record a small sample workload with recorderd and print its timeline (needs root).
    Demo,
    /// Run the benchmarks and write their tables into docs/BENCHMARKS.md.
    Bench {
        /// A small sample that only checks the harness runs; nothing is written.
        #[arg(long)]
        quick: bool,
    },
    /// Boot another kernel under qemu and run the privileged tests in it (needs root).
    VmTest {
        /// debian-6.1 (Debian 12's, fetched by apt), host, a kernel image .deb, or a
        /// directory unpacked from one.
        #[arg(long, default_value = vm::DEFAULT_KERNEL)]
        kernel: String,
        /// How qemu runs the guest.
        #[arg(long, value_enum, default_value = "auto")]
        accel: vm::Accel,
        /// Run only this test (a file of tests/tests/ without .rs); repeatable.
        #[arg(long = "test", value_name = "NAME")]
        tests: Vec<String>,
        /// Boot a Debian root (made by debootstrap) with systemd as PID 1, install the
        /// service as docs/OPERATIONS.md says and drive it: instead of the tests, or after
        /// those named with --test.
        #[arg(long)]
        systemd: bool,
        /// Run this shell script in the guest, from the workspace, instead of the tests
        /// (a measurement on another kernel: xtask/attach-cost.sh); its exit status is the
        /// result.
        #[arg(long, conflicts_with_all = ["tests", "systemd"])]
        script: Option<PathBuf>,
    },
    /// Record a mixed workload with the service for N minutes and fail on growth in
    /// recorderd's memory, descriptors or CPU, unaccounted loss, or a leaked secret (root).
    Soak {
        #[arg(long, default_value_t = 3)]
        minutes: u64,
    },
    /// Run every cargo-fuzz target for a while each (installs cargo-fuzz if missing).
    Fuzz {
        /// How long each target runs, as `60s`, `10m`.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        time: std::time::Duration,
        /// Run only this target; repeatable.
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
    },
}

fn main() -> Result<()> {
    let outcome = run(Cli::parse().command);
    match (outcome, disk::note_if_full(&workspace_root())) {
        (Err(error), Some(note)) => Err(error.context(note)),
        (outcome, _) => outcome,
    }
}

fn run(task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::run(),
        Task::BuildEbpf => build_ebpf(ebpf::OBJECT_NAME).map(drop),
        Task::Build => build(),
        Task::Test => test(),
        Task::Demo => demo(),
        Task::Bench { quick } => bench::run(&workspace_root(), quick),
        Task::VmTest {
            kernel,
            accel,
            script: Some(script),
            ..
        } => vm::run_script(&workspace_root(), &kernel, accel, &script),
        Task::VmTest {
            kernel,
            accel,
            tests,
            systemd,
            script: None,
        } => vm::run(&workspace_root(), &kernel, accel, &tests, systemd),
        Task::Fuzz { time, targets } => fuzz::run(&workspace_root(), time, &targets),
        Task::Soak { minutes } => soak(minutes),
    }
}

/// The soak is an ignored test of its own (tests/tests/soak.rs): it prints its samples.
fn soak(minutes: u64) -> Result<()> {
    if !setup::is_root() {
        bail!("the soak loads eBPF probes and needs root: run `sudo -E cargo xtask soak`");
    }
    if minutes < 2 {
        bail!("--minutes {minutes}: the soak needs at least 2 (the first is its warm-up)");
    }
    build_ebpf(ebpf::OBJECT_NAME)?;
    cargo(&["build", "--workspace", "--exclude", ebpf::PACKAGE, "--bins"])?;
    std::env::set_var("RECORDER_SOAK_MINUTES", minutes.to_string());
    cargo(&[
        "test",
        "--package",
        "recorder-tests",
        "--test",
        "soak",
        "--",
        "--ignored",
        "--nocapture",
    ])
}

/// `cargo build` arguments for what a recording runs: recorderd, recorder and our workloads.
const RECORDING_BINS: &[&str] = &[
    "--package",
    "recorder-daemon",
    "--package",
    "recorder-reader",
    "--package",
    "recorder-tests",
    "--bins",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Builds one of recorder-ebpf's objects (`ebpf::OBJECT_NAME`, what recorderd embeds, or
/// `ebpf::FLOOR_OBJECT_NAME`, the benchmark's) and says with what, where and how big.
fn build_ebpf(object: &str) -> Result<PathBuf> {
    if let Some(missing) = ebpf::missing_tools() {
        bail!("cannot build the eBPF object {object}: {missing}; run `cargo xtask setup`");
    }
    let root = workspace_root();
    println!(
        "build-ebpf: {} with {}",
        toolchain::output("rustc", &["+nightly", "-V"])?.trim(),
        toolchain::output("bpf-linker", &["--version"])?.trim()
    );
    let object = ebpf::build_object(&root, &ebpf::target_dir(&root), object)?;
    let size = std::fs::metadata(&object)?.len();
    println!("build-ebpf: {} ({size} bytes)", object.display());
    Ok(object)
}

fn cargo(args: &[&str]) -> Result<()> {
    run_checked(
        Command::new("cargo")
            .args(args)
            .current_dir(workspace_root()),
    )
}

fn build() -> Result<()> {
    build_ebpf(ebpf::OBJECT_NAME)?;
    cargo(&[
        "build",
        "--release",
        "--workspace",
        "--exclude",
        ebpf::PACKAGE,
        "--bins",
    ])
}

fn test() -> Result<()> {
    disk::warn_if_short(&workspace_root(), disk::TEST_RUN_BYTES);
    setup::run()?;
    build_ebpf(ebpf::OBJECT_NAME)?;
    cargo(&["fmt", "--all", "--check"])?;
    layout::check(&workspace_root())?;
    cargo(&[
        "clippy",
        "--workspace",
        "--exclude",
        ebpf::PACKAGE,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // --lib --bins --tests: there are no doctests, and an empty doctest run would be the
    // last line CI reads.
    cargo(&[
        "test",
        "--workspace",
        "--exclude",
        ebpf::PACKAGE,
        "--exclude",
        "recorder-tests",
        "--lib",
        "--bins",
        "--tests",
    ])?;
    bench::run(&workspace_root(), true)?;
    if !setup::is_root() {
        bail!("the privileged integration tests load probes and need root: run `sudo -E cargo xtask test`");
    }
    // The privileged tests run the binaries of other packages, which `cargo test` alone
    // does not build.
    cargo(&["build", "--workspace", "--exclude", ebpf::PACKAGE, "--bins"])?;
    // One test thread: the tests share the kernel's tracepoints and the machine's two cores,
    // and their timelines are easier to read one at a time.
    cargo(&[
        "test",
        "--package",
        "recorder-tests",
        "--tests",
        "--",
        "--test-threads=1",
    ])
}

fn demo() -> Result<()> {
    if !setup::is_root() {
        bail!("the demo loads eBPF probes and needs root: run `sudo -E cargo xtask demo`");
    }
    setup::run()?;
    cargo(&[&["build", "--release"], RECORDING_BINS].concat())?;
    let root = workspace_root();
    let bin = root.join("target/release");
    let output = root.join("target/demo-recordings");
    let recorded = Command::new(bin.join("recorderd"))
        // cargo's LD_LIBRARY_PATH would send the demo's loader through target/ first.
        .env_remove("LD_LIBRARY_PATH")
        .arg("--output")
        .arg(&output)
        .arg("--")
        .arg(bin.join("recorder-workload"))
        .arg("demo")
        .output()
        .context("running recorderd")?;
    if !recorded.status.success() {
        bail!(
            "recorderd failed: {}",
            String::from_utf8_lossy(&recorded.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&recorded.stdout);
    let recording = stdout
        .lines()
        .find_map(|line| line.strip_prefix("recording: "))
        .context("recorderd did not say where the recording went")?
        .trim()
        .to_owned();
    println!("recorded {recording}\n");
    run_checked(Command::new(bin.join("recorder")).args(["inspect", &recording]))
}
