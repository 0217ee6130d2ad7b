//! Which kernel vm-test boots: Debian's package fetched and unpacked, another `.deb`, an
//! unpacked directory, or the host's own.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::setup::run_checked;

/// A kernel to boot: its image, its modules and its release.
pub struct Kernel {
    pub image: PathBuf,
    pub modules: PathBuf,
    pub release: String,
}

/// `debian-6.1`, `host`, a `.deb` of a kernel image, or a directory unpacked from one.
pub fn resolve(vm_dir: &Path, name: &str) -> Result<Kernel> {
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
