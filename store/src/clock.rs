//! The clocks: event times are CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads), and each
//! Header carries a clock base so readers can show wall-clock times.

use recorder_proto::v1::ClockBase;
use rustix::time::{clock_gettime, ClockId};

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    clock_ns(ClockId::Monotonic) as u64
}

/// Both clocks read back to back.
pub fn clock_base() -> ClockBase {
    let monotonic_ns = monotonic_ns();
    ClockBase {
        monotonic_ns,
        realtime_ns: clock_ns(ClockId::Realtime),
    }
}

fn clock_ns(clock: ClockId) -> i64 {
    let now = clock_gettime(clock);
    now.tv_sec * 1_000_000_000 + now.tv_nsec
}
