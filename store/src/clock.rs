//! The clocks: event times are CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads), and each
//! Header carries a clock base so readers can show wall-clock times.

use recorder_proto::v1::ClockBase;

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

/// Both clocks read back to back.
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
