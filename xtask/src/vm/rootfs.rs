//! The Debian root `vm-test --systemd` boots: Debian 12 made by debootstrap, with systemd
//! as init, kept under target/vm/ and made again only when it is missing or unfinished.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result};

use crate::setup::run_checked;

const SUITE: &str = "bookworm";
/// Debian's own redirector; `RECORDER_DEBIAN_MIRROR` names another.
const MIRROR: &str = "http://deb.debian.org/debian";
const MIRROR_ENV: &str = "RECORDER_DEBIAN_MIRROR";
/// minbase has neither systemd nor the tools the check uses to add a user.
const INCLUDE: &str = "systemd,systemd-sysv,dbus,passwd";
/// Written last: a root without it was interrupted and is made again.
const COMPLETE: &str = ".vm-test-complete";

/// The Debian root, made first if needed (about a minute: debootstrap downloads ~60 MB).
/// debootstrap's own output goes to `debootstrap.log` beside it: this may run while a guest's
/// console is being relayed.
pub fn ensure(vm_dir: &Path) -> Result<PathBuf> {
    let root = vm_dir.join(format!("debian-{SUITE}"));
    if root.join(COMPLETE).exists() {
        return Ok(root);
    }
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    fs::create_dir_all(vm_dir)?;
    let mirror = std::env::var(MIRROR_ENV).unwrap_or_else(|_| MIRROR.to_owned());
    let log_path = vm_dir.join("debootstrap.log");
    println!(
        "vm-test: making a Debian {SUITE} root with debootstrap from {mirror} (log: {})",
        log_path.display()
    );
    let started = Instant::now();
    let log = fs::File::create(&log_path)?;
    run_checked(
        Command::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={INCLUDE}"), SUITE])
            .arg(&root)
            .arg(&mirror)
            .stdout(log.try_clone()?)
            .stderr(log),
    )
    .with_context(|| format!("debootstrap could not make the guest's root (see {}; is the Debian mirror reachable? RECORDER_DEBIAN_MIRROR names another)", log_path.display()))?;
    fs::write(root.join(COMPLETE), "")?;
    println!(
        "vm-test: Debian root ready in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(root)
}
