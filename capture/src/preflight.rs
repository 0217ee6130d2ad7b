//! What the host must provide before probes can load: privileges, tracefs, locked memory.

use std::path::Path;

use caps::{CapSet, Capability};
use rustix::{
    mount::{mount, MountFlags},
    process::{geteuid, setrlimit, Resource, Rlimit},
};
use thiserror::Error;

const TRACEFS: &str = "/sys/kernel/tracing";

/// The oldest kernel recorderd loads on: the BPF ring buffer arrived in 5.8.
const FLOOR: (u32, u32) = (5, 8);
const FLOOR_TEXT: &str = "5.8";

#[derive(Debug, Error)]
pub enum HostError {
    #[error(
        "recorderd needs root (or CAP_BPF and CAP_PERFMON) to load its probes: run it with sudo"
    )]
    NotPrivileged,
    #[error("Linux {release} is older than recorderd's floor, {FLOOR_TEXT} (the BPF ring buffer it records through arrived then): record on a host with Linux {FLOOR_TEXT} or newer")]
    KernelTooOld { release: String },
    #[error("tracefs is not mounted and mounting it at {TRACEFS} failed ({source}): run `sudo mount -t tracefs tracefs {TRACEFS}`")]
    Tracefs {
        #[source]
        source: std::io::Error,
    },
}

/// Refuses early, with the fix, when this process cannot load BPF programs.
pub fn check_privileges() -> Result<(), HostError> {
    if geteuid().is_root() {
        return Ok(());
    }
    let has = |capability| caps::has_cap(None, CapSet::Effective, capability).unwrap_or(false);
    if has(Capability::CAP_BPF) && has(Capability::CAP_PERFMON) {
        Ok(())
    } else {
        Err(HostError::NotPrivileged)
    }
}

/// Refuses a kernel older than the floor with one line naming both, rather than a verifier
/// or map error that does not say why.
pub fn check_kernel() -> Result<(), HostError> {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy();
    match major_minor(&release) {
        Some(version) if version < FLOOR => Err(HostError::KernelTooOld {
            release: release.into_owned(),
        }),
        // A release that does not parse is left to the loader to judge.
        _ => Ok(()),
    }
}

/// `6.1.0-57-amd64` → (6, 1).
fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Mounts tracefs when it is missing: classic tracepoints attach through it, and a fresh host
/// often has it unmounted.
pub fn ensure_tracefs() -> Result<(), HostError> {
    if Path::new(TRACEFS).join("events").is_dir()
        || Path::new("/sys/kernel/debug/tracing/events").is_dir()
    {
        return Ok(());
    }
    let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount("tracefs", TRACEFS, "tracefs", flags, None).map_err(|errno| HostError::Tracefs {
        source: errno.into(),
    })?;
    tracing::info!(path = TRACEFS, "Mounted tracefs.");
    Ok(())
}

/// Lifts RLIMIT_MEMLOCK for kernels that still charge BPF maps to it. Since 5.11 maps are
/// charged to the memory cgroup instead, so a failure here is only worth a debug line.
pub fn raise_memlock() {
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    if let Err(error) = setrlimit(Resource::Memlock, unlimited) {
        tracing::debug!(%error, "Could not raise RLIMIT_MEMLOCK; fine on kernels >= 5.11.");
    }
}

/// Path of the per-syscall tracepoint directory, to tell "missing on this kernel" apart from
/// a real attach failure.
/// Why `perf_event_open` (the uprobes' attach) was refused, when `error` is a refusal and
/// this kernel restricts it: Debian's kernels add `kernel.perf_event_paranoid = 3`, their
/// default, at which only CAP_SYS_ADMIN may open perf events, and the service does not
/// keep that capability.
pub fn perf_event_hint(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(error);
    let refused = std::iter::from_fn(|| {
        let current = source?;
        source = current.source();
        Some(current)
    })
    .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
    .any(|io| io.kind() == std::io::ErrorKind::PermissionDenied);
    let paranoid: i32 = std::fs::read_to_string(PERF_EVENT_PARANOID)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (refused && paranoid > 2).then(|| {
        format!(
            "kernel.perf_event_paranoid is {paranoid}, at which this kernel lets only \
             CAP_SYS_ADMIN attach uprobes; `sysctl kernel.perf_event_paranoid=2` lets \
             recorderd attach them"
        )
    })
}

const PERF_EVENT_PARANOID: &str = "/proc/sys/kernel/perf_event_paranoid";

pub fn tracepoint_exists(category: &str, name: &str) -> bool {
    tracepoint_dir(category, name).is_some()
}

fn tracepoint_dir(category: &str, name: &str) -> Option<std::path::PathBuf> {
    [TRACEFS, "/sys/kernel/debug/tracing"]
        .iter()
        .map(|root| Path::new(root).join("events").join(category).join(name))
        .find(|dir| dir.is_dir())
}

/// Offset of `field` in the tracepoint's record, from its tracefs `format` file; `None` if
/// the tracepoint or the field does not exist on this kernel.
pub fn field_offset(category: &str, name: &str, field: &str) -> Option<u32> {
    let format = std::fs::read_to_string(tracepoint_dir(category, name)?.join("format")).ok()?;
    parse_field_offset(&format, field)
}

/// Finds `field:<type> <field>;\toffset:<n>;` in a tracefs format description.
fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let mut parts = line.trim().split(';').map(str::trim);
        let declaration = parts.next()?.strip_prefix("field:")?;
        let name = declaration.rsplit([' ', '*']).next()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        parts.next()?.strip_prefix("offset:")?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::{major_minor, parse_field_offset, FLOOR};

    const FORK: &str = "name: sched_process_fork
ID: 366
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;
\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;
";

    #[test]
    fn reads_major_and_minor_from_a_release() {
        assert_eq!(major_minor("6.1.0-57-amd64"), Some((6, 1)));
        assert_eq!(major_minor("6.18.44-fc-v1252"), Some((6, 18)));
        assert_eq!(major_minor("5.4.0"), Some((5, 4)));
        assert_eq!(major_minor("4.19-rc1"), Some((4, 19)));
        assert_eq!(major_minor("weird"), None);
        assert!(major_minor("5.4.0").unwrap() < FLOOR);
        assert!(major_minor("5.8.0").unwrap() >= FLOOR);
        assert!(major_minor("5.10.0").unwrap() >= FLOOR);
    }

    #[test]
    fn finds_field_offsets_in_a_format_file() {
        assert_eq!(parse_field_offset(FORK, "child_pid"), Some(20));
        assert_eq!(parse_field_offset(FORK, "parent_pid"), Some(12));
        assert_eq!(parse_field_offset(FORK, "child_comm"), Some(16));
        assert_eq!(parse_field_offset(FORK, "pid"), None);
        assert_eq!(
            parse_field_offset("\tfield:char comm[16];\toffset:8;\tsize:16;", "comm"),
            Some(8)
        );
    }
}
