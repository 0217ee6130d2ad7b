//! Room on the disk that holds `target/`: a full disk makes the compiler, the linker and `ar`
//! die minutes into a run ("No space left on device", or SIGBUS from a file written through a
//! mapping), with nothing naming the cause. These checks name it.

use std::path::{Path, PathBuf};

/// Free bytes `cargo xtask test` wants where `target/` lives. From a fresh clone it wrote 5.4
/// GiB there: target/debug 3.9, target/release 1.1 (the bench's builds), target/ebpf 0.3,
/// target/python 0.1; `.ci/run`'s guest kernel and Debian root add 0.7 (target/vm).
/// Before debug builds kept only line tables (2.6 GiB less) and CI stopped keeping
/// incremental caches (2.3 GiB less), the whole CI run wrote 11 GiB.
pub const TEST_RUN_BYTES: u64 = 6 << 30;

/// Below this, a failed step is most likely the full disk's doing.
const NEARLY_FULL_BYTES: u64 = 1 << 30;

/// Where the build writes: `CARGO_TARGET_DIR`, or `target/` in the workspace; the nearest
/// directory of it that exists, which is on the filesystem that will hold it.
fn target(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target
        .ancestors()
        .find(|dir| dir.is_dir())
        .unwrap_or(root)
        .to_path_buf()
}

/// Bytes an unprivileged user may still write on the filesystem holding `path` (root may
/// also have the reserved blocks: this errs on the short side).
fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Says so at the start when the disk has less room than a build from a clean `target/`
/// writes (less is written when much of it is built already).
pub fn warn_if_short(root: &Path, wanted: u64) {
    let target = target(root);
    if let Some(free) = free_bytes(&target).filter(|&free| free < wanted) {
        eprintln!(
            "xtask: only {} MiB free under {}; a build from a clean target/ writes about {} GiB there, so this run may fail for want of space",
            free >> 20,
            target.display(),
            wanted >> 30
        );
    }
}

/// A sentence to put on a failure when the disk is nearly full now, so that the error a
/// failed run ends with names the likely cause. (A compiler that failed may have removed
/// its partial files by now, so a full disk can go unnamed; it is a hint, not a verdict.)
pub fn note_if_full(root: &Path) -> Option<String> {
    let target = target(root);
    let free = free_bytes(&target).filter(|&free| free < NEARLY_FULL_BYTES)?;
    Some(format!(
        "the disk under {} has only {} MiB free, which is likely why this failed: free some space (`cargo clean` removes target/) and run again",
        target.display(),
        free >> 20
    ))
}
