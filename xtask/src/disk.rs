//! Room on the disk that holds `target/`: a full disk makes the compiler, the linker and `ar`
//! die minutes into a run ("No space left on device", or SIGBUS from a file written through a
//! mapping), with nothing naming the cause. These checks name it.

use std::path::Path;

/// Free bytes a test run wants where `target/` lives. A fresh clone's `.ci/run` left 6.0 GiB
/// there: target/debug 3.9, target/release 1.1 (the bench's builds), target/vm 0.7 (the guest
/// kernel and its Debian root), target/ebpf 0.3. Before debug builds kept only line tables
/// and CI stopped keeping incremental caches, it was 11 GiB.
pub const TEST_RUN_BYTES: u64 = 7 << 30;

/// Below this, a failed step is most likely the full disk's doing.
const NEARLY_FULL_BYTES: u64 = 1 << 30;

/// Bytes an unprivileged user may still write on the filesystem holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; the path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// Says so at the start when the disk has less room than the run takes.
pub fn warn_if_short(root: &Path, wanted: u64) {
    if let Some(free) = free_bytes(root).filter(|&free| free < wanted) {
        eprintln!(
            "xtask: only {} MiB free under {}; this run needs about {} GiB and may fail for want of space",
            free >> 20,
            root.display(),
            wanted >> 30
        );
    }
}

/// A sentence to put on a failure when the disk is nearly full now, so that the error a
/// failed run ends with names the cause.
pub fn note_if_full(root: &Path) -> Option<String> {
    let free = free_bytes(root).filter(|&free| free < NEARLY_FULL_BYTES)?;
    Some(format!(
        "the disk under {} has only {} MiB free, which is likely why this failed: free some space (`cargo clean` removes target/) and run again",
        root.display(),
        free >> 20
    ))
}
