//! dist/recorderd.service: `systemd-analyze verify` accepts it, `systemd-analyze security
//! --offline=true` rates its exposure at most 2.1 (the eBPF agents people commonly deploy ship
//! units rated 8 to 9.5; the figure is in docs/OPERATIONS.md), and its sandbox still lets the
//! daemon work: the capabilities recorderd keeps are in the bounding set, and every syscall it
//! makes passes the filter. dist/recorderd-upload.conf, the drop-in that lets `[upload]` reach
//! a bucket, verifies with it and opens only the internet families. Needs systemd-analyze,
//! not root. See: issue #6.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use recorder_daemon::privileges;
use recorder_tests::binary;

/// 2.0 until the filter let sched_setscheduler through for the real-time drain thread (0.1).
const MAX_EXPOSURE: f64 = 2.1;

/// Every syscall recorderd was seen making under `strace -f` on Linux 6.18 — a foreground
/// recording of `-- sh -c ...`, and the service through start, status, reload (SIGHUP) and
/// stop — plus those of code paths the trace did not reach: the capability drop (capget,
/// capset, prctl), giving a file the reader group (fchown), retention (unlinkat, statfs,
/// fstatfs), stopping a spawned command (kill) and making the ring's drain thread real-time
/// (sched_setscheduler, found missing by `cargo xtask vm-test --systemd`).
const SYSCALLS_USED: &[&str] = &[
    "accept4",
    "access",
    "arch_prctl",
    "bind",
    "bpf",
    "brk",
    "capget",
    "capset",
    "chmod",
    "chown",
    "clock_nanosleep",
    "clone",
    "clone3",
    "close",
    "connect",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "eventfd2",
    "execve",
    "exit",
    "exit_group",
    "fadvise64",
    "fchmod",
    "fchown",
    "fcntl",
    "fdatasync",
    "flock",
    "fstatfs",
    "fsync",
    "futex",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getpid",
    "getppid",
    "getrandom",
    "getsockopt",
    "gettid",
    "getuid",
    "ioctl",
    "kill",
    "listen",
    "lseek",
    "madvise",
    "mkdirat",
    "mmap",
    "mprotect",
    "mremap",
    "munmap",
    "newfstatat",
    "openat",
    "perf_event_open",
    "pidfd_open",
    "pipe2",
    "poll",
    "prctl",
    "pread64",
    "prlimit64",
    "read",
    "readlinkat",
    "recvfrom",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_setscheduler",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "sigaltstack",
    "socket",
    "socketpair",
    "statfs",
    "statx",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "vfork",
    "wait4",
    "write",
];

fn shipped_unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/recorderd.service");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The unit with ExecStart pointing at the recorderd just built: verify checks it exists.
fn unit_under_test(dir: &Path) -> PathBuf {
    unit_with(dir, shipped_unit())
}

/// `text` as the unit under test, its ExecStart pointing at the recorderd just built.
fn unit_with(dir: &Path, text: String) -> PathBuf {
    let exec_start = "ExecStart=/usr/local/bin/recorderd --config /etc/recorderd/recorderd.toml";
    assert!(
        text.contains(exec_start),
        "the unit must say `{exec_start}`"
    );
    let built = binary("recorderd");
    let unit = dir.join("recorderd.service");
    std::fs::write(
        &unit,
        text.replace(
            "/usr/local/bin/recorderd",
            built.to_str().expect("UTF-8 path"),
        ),
    )
    .unwrap();
    unit
}

/// Runs `systemd-analyze ARGS`; returns whether it succeeded and stdout followed by stderr.
fn systemd_analyze(args: &[&str]) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("systemd-analyze is missing ({error}): `cargo xtask setup` installs Debian's systemd package")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The values of every `KEY=` line, in order.
fn settings<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

#[test]
fn the_unit_verifies_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let (ok, text) = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    assert!(
        !text.contains("recorderd.service"),
        "systemd-analyze verify warns about the unit:\n{text}"
    );
}

#[test]
fn the_unit_exposure_is_at_most_2_1() {
    let dir = tempfile::tempdir().unwrap();
    let exposure = exposure_of(&unit_under_test(dir.path()));
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}"
    );
}

/// With the upload drop-in: the network opens, to the internet families only, and that is
/// what it costs in exposure (docs/OPERATIONS.md, "Fleet").
#[test]
fn the_upload_drop_in_opens_only_the_internet_families() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/recorderd-upload.conf");
    let drop_in = std::fs::read_to_string(&path).unwrap();
    let service = drop_in
        .split_once("[Service]")
        .expect("the drop-in has a [Service] section")
        .1;
    assert_eq!(settings(service, "PrivateNetwork"), ["no"]);
    assert_eq!(
        settings(service, "RestrictAddressFamilies"),
        ["AF_UNIX AF_INET AF_INET6"]
    );
    assert_eq!(settings(service, "IPAddressDeny"), ["any"]);
    // As systemd reads a drop-in: its settings after the unit's.
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_with(
        dir.path(),
        format!("{}\n[Service]{service}", shipped_unit()),
    );
    let (ok, text) = systemd_analyze(&["verify", unit.to_str().unwrap()]);
    assert!(
        ok,
        "systemd-analyze verify failed with the drop-in:\n{text}"
    );
    let exposure = exposure_of(&unit);
    assert!(
        exposure <= MAX_EXPOSURE + 1.0,
        "exposure with the drop-in {exposure}"
    );
}

/// `systemd-analyze security --offline` of a unit file.
fn exposure_of(unit: &Path) -> f64 {
    let (ok, text) = systemd_analyze(&[
        "security",
        "--offline=true",
        "--threshold=100",
        unit.to_str().unwrap(),
    ]);
    assert!(ok, "systemd-analyze security failed:\n{text}");
    let exposure: f64 = text
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for recorderd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    eprintln!("exposure {exposure}");
    exposure
}

#[test]
fn the_bounding_set_holds_what_the_service_keeps() {
    let unit = shipped_unit();
    let bounding: BTreeSet<&str> = settings(&unit, "CapabilityBoundingSet")
        .iter()
        .flat_map(|value| value.split_whitespace())
        .collect();
    for capability in privileges::SERVICE.iter().chain(privileges::READER_GROUP) {
        let name = capability.to_string();
        assert!(
            bounding.contains(name.as_str()),
            "{name} is kept by the service (privileges::SERVICE / READER_GROUP) but missing from CapabilityBoundingSet={bounding:?}"
        );
    }
    // With noroot, root's exec gets only ambient capabilities, and this unit grants none.
    for bits in settings(&unit, "SecureBits") {
        assert!(
            !bits.contains("noroot") || !settings(&unit, "AmbientCapabilities").concat().is_empty(),
            "SecureBits={bits} without AmbientCapabilities= would start recorderd with no capabilities"
        );
    }
}

/// The syscall names a filter entry (a name or a @group, nested groups included) stands for.
fn expand(entry: &str) -> BTreeSet<String> {
    if !entry.starts_with('@') {
        return BTreeSet::from([entry.to_owned()]);
    }
    let (ok, text) = systemd_analyze(&["syscall-filter", entry]);
    assert!(ok, "systemd-analyze syscall-filter {entry} failed:\n{text}");
    text.lines()
        .map(str::trim)
        // The first line is the group's own name; lines starting with # are its description.
        .filter(|line| !line.is_empty() && !line.starts_with('#') && *line != entry)
        .flat_map(expand)
        .collect()
}

#[test]
fn the_syscall_filter_allows_every_syscall_recorderd_makes() {
    let unit = shipped_unit();
    // As systemd.exec(5) says: the first SystemCallFilter= line makes an allow list; a later
    // `~` line takes names out of it and a later plain line adds to it.
    let mut allowed: Option<BTreeSet<String>> = None;
    for value in settings(&unit, "SystemCallFilter") {
        let (deny, names) = match value.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let names: BTreeSet<String> = names.split_whitespace().flat_map(expand).collect();
        match (&mut allowed, deny) {
            (None, false) => allowed = Some(names),
            (None, true) => panic!("the first SystemCallFilter= must be an allow list"),
            (Some(list), true) => list.retain(|name| !names.contains(name)),
            (Some(list), false) => list.extend(names),
        }
    }
    let allowed = allowed.expect("the unit has a SystemCallFilter= allow list");
    let denied: Vec<&str> = SYSCALLS_USED
        .iter()
        .copied()
        .filter(|name| !allowed.contains(*name))
        .collect();
    assert!(
        denied.is_empty(),
        "dist/recorderd.service's SystemCallFilter denies syscalls recorderd makes: {denied:?}"
    );
}
