//! The guest's initramfs: busybox, the modules that reach the host's root, the two boot
//! stages (`xtask/vm/`) and the script that runs the tests.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use super::kernel::Kernel;

/// Modules the initramfs loads to reach the host's root (their dependencies come along).
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// What the guest runs once it has a root.
pub enum Stage2<'a> {
    /// The host's root, these test executables in it, and the factor for their failure
    /// deadlines (`RECORDER_TEST_TIME_SCALE`).
    Tests(&'a [PathBuf], u32),
    /// The host's root, and this shell script run in it from the workspace instead of the
    /// tests: its exit status is the result.
    Script(&'a Path),
    /// This Debian root (a directory on the host) with systemd as PID 1, and the check of
    /// the service under it.
    Systemd(&'a Path),
}

/// Lays out the initramfs (busybox, the boot modules, the two stages and what the second
/// one runs) and packs it as a newc cpio archive.
pub fn write(run_dir: &Path, kernel: &Kernel, root: &Path, stage2: Stage2) -> Result<PathBuf> {
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
    let rootfs = match stage2 {
        Stage2::Tests(executables, time_scale) => {
            write_executable(&staging.join("guest.sh"), include_str!("../../vm/guest.sh"))?;
            write_executable(
                &staging.join("tests.sh"),
                &tests_script(root, executables, time_scale),
            )?;
            String::new()
        }
        Stage2::Script(script) => {
            write_executable(&staging.join("guest.sh"), include_str!("../../vm/guest.sh"))?;
            write_executable(&staging.join("tests.sh"), &script_runner(root, script))?;
            String::new()
        }
        Stage2::Systemd(rootfs) => {
            let check = include_str!("../../vm/systemd-check.sh")
                .replace("@WORKSPACE@", &root.display().to_string());
            write_executable(&staging.join("systemd-check.sh"), &check)?;
            fs::write(
                staging.join("vm-systemd-check.service"),
                include_str!("../../vm/vm-systemd-check.service"),
            )?;
            rootfs.display().to_string()
        }
    };
    let init = include_str!("../../vm/init.sh")
        .replace("@MODULES@", &names.join(" "))
        .replace("@ROOTFS@", &rootfs);
    write_executable(&staging.join("init"), &init)?;

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
fn tests_script(root: &Path, executables: &[PathBuf], time_scale: u32) -> String {
    let mut script = format!(
        "cd '{0}' || {{ echo 'vm-test: the guest cannot enter the workspace {0}'; exit 255; }}\n\
         export RECORDER_TEST_TIME_SCALE={time_scale}\nfailed=0\n",
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

/// Runs `script` with sh from the workspace and exits with its status.
fn script_runner(root: &Path, script: &Path) -> String {
    format!(
        "cd '{}' || {{ echo 'vm-test: the guest cannot enter the workspace'; exit 255; }}\n\
         sh '{}'\n",
        root.display(),
        script.display()
    )
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
    fn runs_the_script_from_the_workspace_and_gives_its_status() {
        let dir = std::env::temp_dir().join(format!("vm-script-{}", std::process::id()));
        let workspace = dir.join("work space");
        fs::create_dir_all(&workspace).unwrap();
        let script = dir.join("measure.sh");
        fs::write(&script, "pwd > where; exit 3\n").unwrap();
        let status = Command::new("sh")
            .arg("-c")
            .arg(script_runner(&workspace, &script))
            .status()
            .unwrap();
        let ran_in = fs::read_to_string(workspace.join("where")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(ran_in.trim_end(), workspace.to_str().unwrap());
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
}
