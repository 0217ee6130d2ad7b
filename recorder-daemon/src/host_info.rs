//! Facts about the recording host that go into every segment Header.

use recorder_proto::v1::ClockBase;

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
}

/// `uname -r` and `uname -v`.
pub fn kernel() -> String {
    format!(
        "{} {}",
        read_trimmed("/proc/sys/kernel/osrelease"),
        read_trimmed("/proc/sys/kernel/version")
    )
}

pub fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

/// Both clocks read back to back, so event times can be shown as wall-clock times.
pub fn clock_base() -> ClockBase {
    let monotonic_ns = monotonic_ns();
    ClockBase {
        monotonic_ns,
        realtime_ns: clock_ns(libc::CLOCK_REALTIME),
    }
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec through a valid pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// 128 random bits as 32 lowercase hex digits.
pub fn new_recording_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}
