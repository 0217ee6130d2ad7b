//! `cargo xtask vm-test`: the privileged integration tests on another kernel, booted under
//! qemu with the host's root filesystem shared read-only over 9p and a RAM overlay on top.
//!
//! The guest runs the test executables this machine built, so what differs is the kernel
//! alone. Its console comes back here, each line prefixed with the guest's `uname -r`.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use clap::ValueEnum;

use crate::setup::{self, run_checked};

/// What booting a guest takes from Debian: qemu, and busybox for the initramfs.
pub const VM_PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static"];

/// The kernel `--kernel` names by default: Debian 12's, from its `linux-image-amd64`.
pub const DEFAULT_KERNEL: &str = "debian-6.1";

/// Modules the initramfs loads to reach the host's root (their dependencies come along).
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// A TCG boot reaches the guest's script in about 10 s on this machine; past this, it is stuck.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);

const GUEST_MEMORY: &str = "4G";

#[derive(Clone, Copy, ValueEnum)]
pub enum Accel {
    /// KVM where it can run a stock kernel, TCG otherwise (said on one line).
    Auto,
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// qemu's emulator: slow, works everywhere.
    Tcg,
}

/// A kernel to boot: its image, its modules and its release.
struct Kernel {
    image: PathBuf,
    modules: PathBuf,
    release: String,
}

pub fn run(root: &Path, kernel: &str, accel: Accel, tests: &[String]) -> Result<()> {
    if !setup::is_root() {
        bail!("vm-test shares the host's root with the guest and runs the privileged tests: run `sudo -E cargo xtask vm-test`");
    }
    setup::ensure_apt_packages(VM_PACKAGES)?;
    let vm_dir = root.join("target/vm");
    let kernel = resolve_kernel(&vm_dir, kernel)?;
    let accel = choose_accel(accel)?;
    let executables = build_tests(root, tests)?;
    let run_dir = vm_dir.join("run");
    let initramfs = write_initramfs(&run_dir, &kernel, root, &executables)?;
    println!(
        "vm-test: booting {} ({}) with {} test executables under {}",
        kernel.release,
        kernel.image.display(),
        executables.len(),
        accel.name()
    );
    boot(&kernel, &accel, &initramfs)
}

/// `debian-6.1`, `host`, a `.deb` of a kernel image, or a directory unpacked from one.
fn resolve_kernel(vm_dir: &Path, name: &str) -> Result<Kernel> {
    let unpacked = match name {
        "debian-6.1" => fetch_debian_kernel(vm_dir, "6.1.")?,
        "host" => {
            let release = crate::toolchain::output("uname", &["-r"])?.trim().to_owned();
            let image = PathBuf::from(format!("/boot/vmlinuz-{release}"));
            if !image.is_file() {
                bail!("--kernel host: no image of the running kernel at {} (the host suite, `cargo xtask test`, already runs on {release})", image.display());
            }
            return Ok(Kernel {
                image,
                modules: PathBuf::from(format!("/lib/modules/{release}")),
                release,
            });
        }
        path if path.ends_with(".deb") => unpack_deb(vm_dir, Path::new(path))?,
        path if Path::new(path).is_dir() => PathBuf::from(path),
        other => bail!(
            "--kernel {other}: not debian-6.1, host, a kernel image .deb or a directory unpacked from one"
        ),
    };
    kernel_in(&unpacked)
}

/// A kernel in an unpacked image package: `boot/vmlinuz-R` and `lib/modules/R/`.
fn kernel_in(dir: &Path) -> Result<Kernel> {
    let boot = dir.join("boot");
    let image = fs::read_dir(&boot)
        .with_context(|| format!("{} has no boot/ directory", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let release = image
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("vmlinuz-"))
        .context("kernel image name")?
        .to_owned();
    let modules = dir.join("lib/modules").join(&release);
    if !modules.is_dir() {
        bail!("{} has no modules for {release}", dir.display());
    }
    Ok(Kernel {
        image,
        modules,
        release,
    })
}

/// Downloads Debian's current kernel image package (what `linux-image-amd64` depends on) and
/// unpacks it under `vm_dir`, without installing it; checks it is the `series` asked for.
fn fetch_debian_kernel(vm_dir: &Path, series: &str) -> Result<PathBuf> {
    let depends = crate::toolchain::output("apt-cache", &["depends", "linux-image-amd64"])?;
    let package = depends
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends: "))
        .find(|package| package.starts_with("linux-image-"))
        .context("apt-cache knows no linux-image-amd64: is this Debian?")?
        .to_owned();
    if !package.starts_with(&format!("linux-image-{series}")) {
        bail!("Debian's linux-image-amd64 here is {package}, not {series}x (Debian 12's): pass its .deb with --kernel");
    }
    let dir = vm_dir.join("kernels").join(&package);
    if dir.join("boot").is_dir() {
        return Ok(dir);
    }
    let downloads = vm_dir.join("downloads");
    fs::create_dir_all(&downloads)?;
    println!("vm-test: downloading {package}");
    run_checked(
        Command::new("apt-get")
            // As root, so that apt does not warn that its own user cannot write here.
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", &package])
            .current_dir(&downloads),
    )?;
    let deb = fs::read_dir(&downloads)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
    unpack_into(&deb, &dir)?;
    Ok(dir)
}

fn unpack_deb(vm_dir: &Path, deb: &Path) -> Result<PathBuf> {
    let stem = deb
        .file_stem()
        .context("a .deb path with a file name")?
        .to_string_lossy()
        .into_owned();
    let dir = vm_dir.join("kernels").join(stem);
    if !dir.join("boot").is_dir() {
        unpack_into(deb, &dir)?;
    }
    Ok(dir)
}

/// `dpkg-deb -x` into a fresh directory, renamed into place only when complete.
fn unpack_into(deb: &Path, dir: &Path) -> Result<()> {
    let partial = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial)?;
    run_checked(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?;
    fs::rename(&partial, dir).with_context(|| format!("moving into {}", dir.display()))
}

/// How the guest runs: the accelerator and the CPU model that goes with it.
struct Chosen {
    kvm: bool,
}

impl Chosen {
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

/// Builds the binaries the tests run and the test executables, and returns the
/// executables' paths (those whose name is in `only`, when it is not empty).
fn build_tests(root: &Path, only: &[String]) -> Result<Vec<PathBuf>> {
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
    )?;
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

/// Lays out the initramfs (busybox, the boot modules, the two stages and the test list)
/// and packs it as a newc cpio archive.
fn write_initramfs(
    run_dir: &Path,
    kernel: &Kernel,
    root: &Path,
    executables: &[PathBuf],
) -> Result<PathBuf> {
    let staging = run_dir.join("initramfs");
    let _ = fs::remove_dir_all(&staging);
    for dir in ["bin", "modules", "proc", "dev", "lower", "upper", "newroot"] {
        fs::create_dir_all(staging.join(dir))?;
    }
    fs::copy("/usr/bin/busybox", staging.join("bin/busybox"))
        .context("copying /usr/bin/busybox (Debian's busybox-static)")?;
    let modules = boot_modules(&kernel.modules)?;
    for (name, path) in &modules {
        fs::copy(path, staging.join("modules").join(format!("{name}.ko")))?;
    }
    let names: Vec<&str> = modules.iter().map(|(name, _)| name.as_str()).collect();
    let init = include_str!("../vm/init.sh").replace("@MODULES@", &names.join(" "));
    write_executable(&staging.join("init"), &init)?;
    write_executable(&staging.join("guest.sh"), include_str!("../vm/guest.sh"))?;
    write_executable(&staging.join("tests.sh"), &tests_script(root, executables))?;

    let archive = run_dir.join("initramfs.cpio");
    let mut listing = String::from(".\n");
    list_files(&staging, &staging, &mut listing)?;
    let mut cpio = Command::new("busybox")
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(&staging)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&archive)?)
        .stderr(Stdio::null())
        .spawn()
        .context("running busybox cpio")?;
    cpio.stdin
        .take()
        .context("cpio's stdin")?
        .write_all(listing.as_bytes())?;
    if !cpio.wait()?.success() {
        bail!("busybox cpio could not pack {}", staging.display());
    }
    Ok(archive)
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

fn list_files(base: &Path, dir: &Path, listing: &mut String) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let relative = path.strip_prefix(base)?;
        listing.push_str(&format!("./{}\n", relative.display()));
        if path.is_dir() {
            list_files(base, &path, listing)?;
        }
    }
    Ok(())
}

/// Runs each test executable one test at a time from the workspace, as `cargo xtask test`
/// does, and exits with the number that failed.
fn tests_script(root: &Path, executables: &[PathBuf]) -> String {
    let mut script = format!(
        "cd '{0}' || {{ echo 'vm-test: the guest cannot enter the workspace {0}'; exit 255; }}\nfailed=0\n",
        root.display()
    );
    for executable in executables {
        let name = executable
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        script.push_str(&format!(
            "started=$(date +%s)\n\
             if '{}' --test-threads=1 --color never; then outcome=passed; else outcome=FAILED; failed=$((failed + 1)); fi\n\
             echo \"vm-test: {name} $outcome in $(($(date +%s) - started)) s\"\n",
            executable.display()
        ));
    }
    script.push_str("exit $failed\n");
    script
}

/// The `.ko` files of BOOT_MODULES and everything they depend on, dependencies first.
/// Modules built into the kernel are left out.
fn boot_modules(modules_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut files = BTreeMap::new();
    index_modules(modules_dir, &mut files)?;
    let builtin = fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    let mut ordered = Vec::new();
    for module in BOOT_MODULES {
        add_with_dependencies(module, &files, &builtin, &mut ordered)?;
    }
    Ok(ordered)
}

fn add_with_dependencies(
    module: &str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &str,
    ordered: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    if ordered.iter().any(|(name, _)| name == module) {
        return Ok(());
    }
    let Some(path) = files.get(module) else {
        let built_in = builtin
            .lines()
            .any(|line| module_name(Path::new(line)).as_deref() == Some(module));
        if built_in {
            return Ok(());
        }
        bail!("the guest kernel has no module {module} (needed to mount the host's root over 9p), built in or as a .ko");
    };
    let bytes = fs::read(path)?;
    for dependency in module_dependencies(&bytes) {
        add_with_dependencies(&dependency, files, builtin, ordered)?;
    }
    ordered.push((module.to_owned(), path.clone()));
    Ok(())
}

/// The `depends=` list of a module's `.modinfo` section.
fn module_dependencies(bytes: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"depends=";
    let Some(start) = bytes.windows(KEY.len()).position(|window| window == KEY) else {
        return Vec::new();
    };
    let value = &bytes[start + KEY.len()..];
    let end = value.iter().position(|&byte| byte == 0).unwrap_or(0);
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|name| !name.is_empty())
        .map(|name| name.replace('-', "_"))
        .collect()
}

fn index_modules(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index_modules(&path, files)?;
        } else if let Some(name) = module_name(&path) {
            if path.extension().is_some_and(|extension| extension == "ko") {
                files.insert(name, path);
            }
        }
    }
    Ok(())
}

/// `kernel/fs/9p/9p.ko` → `9p`; the kernel treats `-` and `_` in module names alike.
fn module_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split(".ko").next()?;
    (stem.len() < name.len()).then(|| stem.replace('-', "_"))
}

/// Boots the guest and relays its console, each line prefixed with its release; fails when
/// it does not come up, stops without a result, or reports failed tests.
fn boot(kernel: &Kernel, chosen: &Chosen, initramfs: &Path) -> Result<()> {
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
        .args(["-append", "console=ttyS0 quiet panic=-1"])
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
        if let Some(failed) = line.strip_prefix("vm-test: result ") {
            result = failed.trim().parse::<u32>().ok();
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
                "vm-test: every test passed on {} ({minutes:.1} min)",
                kernel.release
            );
            Ok(())
        }
        Some(255) => bail!(
            "vm-test: the guest ({}) could not run the tests: see its last lines above",
            kernel.release
        ),
        Some(failed) => bail!(
            "vm-test: {failed} test executable(s) failed on {} (lines above start with [{}])",
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
    fn reads_a_modules_dependencies_from_its_modinfo() {
        let bytes = b"\x7fELF...license=GPL\0depends=9pnet,fscache,net-fs\0intree=Y\0";
        assert_eq!(
            module_dependencies(bytes),
            ["9pnet", "fscache", "net_fs"].map(String::from)
        );
        assert!(module_dependencies(b"depends=\0").is_empty());
        assert!(module_dependencies(b"no modinfo here").is_empty());
    }

    #[test]
    fn names_modules_compressed_or_not() {
        assert_eq!(
            module_name(Path::new("kernel/fs/9p/9p.ko")).as_deref(),
            Some("9p")
        );
        assert_eq!(
            module_name(Path::new("kernel/net/9p/9pnet-virtio.ko.xz")).as_deref(),
            Some("9pnet_virtio")
        );
        assert_eq!(module_name(Path::new("modules.builtin")), None);
    }

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
