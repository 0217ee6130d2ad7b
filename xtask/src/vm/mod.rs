//! `cargo xtask vm-test`: the privileged integration tests on another kernel, booted under
//! qemu with the host's root filesystem shared read-only over 9p and a RAM overlay on top.
//!
//! The guest runs the test executables this machine built, so what differs is the kernel
//! alone. Its console comes back here, each line prefixed with the guest's `uname -r`.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::ValueEnum;

use crate::setup::{self, run_checked};

mod initramfs;
mod kernel;
mod rootfs;

use initramfs::Stage2;
use kernel::Kernel;

/// What booting a guest takes from Debian: qemu, busybox for the initramfs, and debootstrap
/// for `--systemd`'s root.
pub const VM_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "debootstrap"];

/// The kernel `--kernel` names by default: Debian 12's, from its `linux-image-amd64`.
pub const DEFAULT_KERNEL: &str = "debian-6.1";

/// A TCG boot reaches the guest's script in about 10 s on this machine (systemd's, about
/// 60 s); past this, it is stuck.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The whole run, boot to power-off: a guest that hangs in a test fails rather than holding
/// CI until its own limit.
const RUN_TIMEOUT: Duration = Duration::from_secs(40 * 60);

const GUEST_MEMORY: &str = "4G";

/// What the guest prints last: the number of test executables (or checks) that failed.
const RESULT: &str = "vm-test: result ";

#[derive(Clone, Copy, ValueEnum)]
pub enum Accel {
    /// KVM where it can run a stock kernel, TCG otherwise (said on one line).
    Auto,
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// qemu's emulator: slow, works everywhere.
    Tcg,
}

/// Boots `kernel` and runs the privileged tests in it (`tests`, or all of them unless
/// `systemd` alone is asked for); with `systemd`, then boots it again on a Debian root with
/// systemd as PID 1 and checks the service there. The Debian root is made while the tests
/// run, so asking for both costs little more than the longer of the two.
pub fn run(root: &Path, kernel: &str, accel: Accel, tests: &[String], systemd: bool) -> Result<()> {
    let (kernel, accel, vm_dir) = prepare(root, kernel, accel)?;
    let run_dir = vm_dir.join("run");
    let rootfs = systemd.then(|| {
        let vm_dir = vm_dir.clone();
        std::thread::spawn(move || rootfs::ensure(&vm_dir))
    });
    let guest = Guest {
        kernel: &kernel,
        accel: &accel,
        run_dir: &run_dir,
        root,
    };
    let tests_result = if systemd && tests.is_empty() {
        build_binaries(root)
    } else {
        build_tests(root, tests)
            .and_then(|executables| guest.boot(Stage2::Tests(&executables, accel.time_scale())))
    };
    let Some(rootfs) = rootfs else {
        return tests_result;
    };
    let systemd_result = rootfs
        .join()
        .map_err(|_| anyhow::anyhow!("making the Debian root panicked"))?
        .and_then(|rootfs| guest.boot(Stage2::Systemd(&rootfs)));
    match (tests_result, systemd_result) {
        (Ok(()), result) | (result, Ok(())) => result,
        (Err(tests), Err(systemd)) => bail!("{tests:#}\n{systemd:#}"),
    }
}

/// Boots `kernel` and runs `script` in it with sh, from the workspace, instead of the tests
/// (`vm-test --script`): a measurement on another kernel, say. The binaries the tests use
/// are built first; the script finds the rest of the workspace as the host left it.
pub fn run_script(root: &Path, kernel: &str, accel: Accel, script: &Path) -> Result<()> {
    let script = fs::canonicalize(script)
        .with_context(|| format!("--script {}: no such file", script.display()))?;
    let (kernel, accel, vm_dir) = prepare(root, kernel, accel)?;
    build_binaries(root)?;
    let guest = Guest {
        kernel: &kernel,
        accel: &accel,
        run_dir: &vm_dir.join("run"),
        root,
    };
    guest.boot(Stage2::Script(&script))
}

/// What every run needs before it boots: root, qemu, the kernel and the accelerator; and
/// where vm-test keeps its kernels and runs (`target/vm`).
fn prepare(root: &Path, kernel: &str, accel: Accel) -> Result<(Kernel, Chosen, PathBuf)> {
    if !setup::is_root() {
        bail!("vm-test shares the host's root with the guest and runs the privileged tests: run `sudo -E cargo xtask vm-test`");
    }
    setup::ensure_apt_packages(VM_PACKAGES)?;
    let vm_dir = root.join("target/vm");
    let kernel = kernel::resolve(&vm_dir, kernel)?;
    let accel = choose_accel(accel)?;
    Ok((kernel, accel, vm_dir))
}

/// What every boot of one run shares.
struct Guest<'a> {
    kernel: &'a Kernel,
    accel: &'a Chosen,
    run_dir: &'a Path,
    root: &'a Path,
}

impl Guest<'_> {
    /// Writes the initramfs for `stage2`, says what boots, and boots it.
    fn boot(&self, stage2: Stage2) -> Result<()> {
        let (what, run) = match &stage2 {
            Stage2::Tests(executables, _) => (
                format!("{} test executables", executables.len()),
                Run::Tests,
            ),
            Stage2::Script(script) => (format!("the script {}", script.display()), Run::Script),
            Stage2::Systemd(rootfs) => (
                format!("systemd as PID 1 in {}", rootfs.display()),
                Run::Systemd,
            ),
        };
        println!(
            "vm-test: booting {} ({}) with {what} under {}",
            self.kernel.release,
            self.kernel.image.display(),
            self.accel.name()
        );
        let initramfs = initramfs::write(self.run_dir, self.kernel, self.root, stage2)?;
        boot(self.kernel, self.accel, &initramfs, run)
    }
}

/// What a boot runs, for what its result means.
#[derive(Clone, Copy, PartialEq)]
enum Run {
    Tests,
    Script,
    Systemd,
}

impl Run {
    fn passed(self) -> &'static str {
        match self {
            Run::Tests => "every test passed",
            Run::Script => "the script exited with 0",
            Run::Systemd => "the service's check under systemd passed",
        }
    }

    fn failed(self, result: u32) -> String {
        match self {
            Run::Script => format!("the script exited with {result}"),
            Run::Tests | Run::Systemd => format!("{result} test executable(s) failed"),
        }
    }
}

/// How the guest runs: the accelerator and the CPU model that goes with it.
struct Chosen {
    kvm: bool,
}

impl Chosen {
    /// The factor for the tests' failure deadlines: emulated, the suite ran about ten times
    /// slower than on the host, and 60 s steps (20,000 paced writes, an unpaced dd) ran out.
    fn time_scale(&self) -> u32 {
        if self.kvm {
            1
        } else {
            5
        }
    }

    fn name(&self) -> &'static str {
        if self.kvm {
            "KVM"
        } else {
            "TCG (emulated, several times slower than KVM)"
        }
    }

    fn qemu_args(&self) -> [&'static str; 4] {
        if self.kvm {
            ["-accel", "kvm", "-cpu", "host"]
        } else {
            // One host thread for all vCPUs: with a thread each (MTTCG), the kernel's live
            // patching of a tracepoint's jump while the other vCPU ran syscalls left both
            // spinning in syscall_trace_enter (soft lockups) on 6.1.
            ["-accel", "tcg,thread=single", "-cpu", "max"]
        }
    }
}

fn choose_accel(accel: Accel) -> Result<Chosen> {
    let kvm_opens = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    // PVM (kvm_pvm) runs only guest kernels built for it: a stock kernel crawls through its
    // early boot (minutes) and then stops on an instruction PVM cannot emulate (cmpxchg16b).
    let pvm = Path::new("/sys/module/kvm_pvm").exists();
    match accel {
        Accel::Tcg => Ok(Chosen { kvm: false }),
        Accel::Kvm if !kvm_opens => bail!("--accel kvm: /dev/kvm cannot be opened for writing"),
        Accel::Kvm => Ok(Chosen { kvm: true }),
        Accel::Auto if kvm_opens && !pvm => Ok(Chosen { kvm: true }),
        Accel::Auto => {
            let why = if pvm {
                "this host's KVM is PVM (kvm_pvm), which cannot run a stock kernel"
            } else {
                "/dev/kvm cannot be opened"
            };
            println!("vm-test: {why}: using TCG, qemu's emulator, instead");
            Ok(Chosen { kvm: false })
        }
    }
}

/// Builds recorderd, recorder and the workloads the tests run.
fn build_binaries(root: &Path) -> Result<()> {
    run_checked(
        Command::new("cargo")
            .args([
                "build",
                "--workspace",
                "--exclude",
                "recorder-ebpf",
                "--bins",
            ])
            .current_dir(root),
    )
}

/// Builds the binaries the tests run and the test executables, and returns the
/// executables' paths (those whose name is in `only`, when it is not empty).
fn build_tests(root: &Path, only: &[String]) -> Result<Vec<PathBuf>> {
    build_binaries(root)?;
    let output = Command::new("cargo")
        .args([
            "test",
            "--package",
            "recorder-tests",
            "--tests",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !output.status.success() {
        bail!("building the privileged tests failed");
    }
    let mut executables = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = test_target_name(line) else {
            continue;
        };
        if let Some(executable) = json_string(line, "\"executable\":\"") {
            executables.insert(name, PathBuf::from(executable));
        }
    }
    if let Some(unknown) = only.iter().find(|name| !executables.contains_key(*name)) {
        bail!(
            "--test {unknown}: no such test; the tests are {}",
            executables.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(executables
        .into_iter()
        .filter(|(name, _)| only.is_empty() || only.contains(name))
        .map(|(_, path)| path)
        .collect())
}

/// The target name of a cargo `compiler-artifact` message for an integration test.
fn test_target_name(line: &str) -> Option<String> {
    if !line.contains("\"reason\":\"compiler-artifact\"") || !line.contains("\"kind\":[\"test\"]") {
        return None;
    }
    let target = &line[line.find("\"target\":")?..];
    json_string(target, "\"name\":\"")
}

/// The string value after `key` in one line of cargo's JSON (paths and names here hold no
/// escaped quotes).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(key)? + key.len();
    let end = line[start..].find('"')?;
    Some(line[start..start + end].to_owned())
}

/// Boots the guest and relays its console, each line prefixed with its release; fails when
/// it does not come up, stops without a result, or reports failed tests.
fn boot(kernel: &Kernel, chosen: &Chosen, initramfs: &Path, run: Run) -> Result<()> {
    let systemd = run == Run::Systemd;
    // systemd would start a login prompt on the serial console the host reads.
    let cmdline = if systemd {
        "console=ttyS0 quiet panic=-1 systemd.mask=serial-getty@ttyS0.service"
    } else {
        "console=ttyS0 quiet panic=-1"
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(chosen.qemu_args())
        .args(["-m", GUEST_MEMORY, "-smp", &cpus.to_string()])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .args(["-serial", "stdio", "-no-reboot"])
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", cmdline])
        .args([
            "-fsdev",
            "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device",
            "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let console = qemu.stdout.take().context("qemu's stdout")?;
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(console).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut up = false;
    let mut result = None;
    let mut last_lines: Vec<String> = Vec::new();
    loop {
        let line = match received.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if started.elapsed() > RUN_TIMEOUT {
                    let _ = qemu.kill();
                    bail!(
                        "the guest ({}) did not finish within {} min: see its last lines above",
                        kernel.release,
                        RUN_TIMEOUT.as_secs() / 60
                    );
                }
                if !up && started.elapsed() > BOOT_TIMEOUT {
                    let _ = qemu.kill();
                    bail!(
                        "the guest ({}) did not reach its test script within {} s; its last lines: {:?}",
                        kernel.release,
                        BOOT_TIMEOUT.as_secs(),
                        last_lines
                    );
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if !up {
            up = line.contains(&format!("vm-test: guest {} up", kernel.release));
            last_lines.push(line.clone());
            if last_lines.len() > 20 {
                last_lines.remove(0);
            }
        }
        // Under systemd the line comes with the console's timestamp and the unit's name first.
        if let Some(at) = line.find(RESULT) {
            result = line[at + RESULT.len()..].trim().parse::<u32>().ok();
        }
        if up {
            println!("[{}] {line}", kernel.release);
        }
    }
    let status = qemu.wait()?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    match result {
        Some(0) => {
            println!(
                "vm-test: {} on {} ({minutes:.1} min)",
                run.passed(),
                kernel.release
            );
            Ok(())
        }
        Some(255) if run != Run::Script => bail!(
            "vm-test: the guest ({}) could not run the tests: see its last lines above",
            kernel.release
        ),
        Some(failed) => bail!(
            "vm-test: {} on {} (lines above start with [{}])",
            run.failed(failed),
            kernel.release,
            kernel.release
        ),
        None if !up => bail!(
            "the guest ({}) stopped before its test script ({status}); its last lines: {last_lines:?}",
            kernel.release
        ),
        None => bail!(
            "the guest ({}) stopped before the tests finished ({status}): see its last lines above",
            kernel.release
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_integration_test_executables_in_cargo_messages() {
        let line = r#"{"reason":"compiler-artifact","package_id":"x","target":{"kind":["test"],"crate_types":["bin"],"name":"first_recording","src_path":"/w/tests/tests/first_recording.rs"},"executable":"/w/target/debug/deps/first_recording-abc"}"#;
        assert_eq!(test_target_name(line).as_deref(), Some("first_recording"));
        assert_eq!(
            json_string(line, "\"executable\":\"").as_deref(),
            Some("/w/target/debug/deps/first_recording-abc")
        );
        let lib = line.replace(r#""kind":["test"]"#, r#""kind":["lib"]"#);
        assert_eq!(test_target_name(&lib), None);
    }
}
