//! Loss counts, kept in the recording's own `Loss` type everywhere: what the kernel could
//! not deliver (per kind) and the frames a failing disk kept from being written.

use recorder_proto::v1::Loss;

/// Everything `loss` counts as lost, of every kind.
pub fn total(loss: &Loss) -> u64 {
    loss.syscalls
        + loss.payload_chunks
        + loss.stash_failures
        + loss.process_events
        + loss.unwritten_frames
}

/// Adds `loss`'s counts to `sum`.
pub fn add(sum: &mut Loss, loss: &Loss) {
    sum.syscalls += loss.syscalls;
    sum.payload_chunks += loss.payload_chunks;
    sum.stash_failures += loss.stash_failures;
    sum.process_events += loss.process_events;
    sum.unwritten_frames += loss.unwritten_frames;
}

/// `now - then`, count by count (`then` is an earlier value of the same running total); the
/// time range is left for the caller.
pub fn since(now: &Loss, then: &Loss) -> Loss {
    Loss {
        from_mono_ns: 0,
        to_mono_ns: 0,
        syscalls: now.syscalls - then.syscalls,
        payload_chunks: now.payload_chunks - then.payload_chunks,
        stash_failures: now.stash_failures - then.stash_failures,
        process_events: now.process_events - then.process_events,
        unwritten_frames: now.unwritten_frames - then.unwritten_frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sums_and_differences() {
        let then = Loss {
            syscalls: 1,
            payload_chunks: 2,
            ..Loss::default()
        };
        let mut now = then;
        add(
            &mut now,
            &Loss {
                syscalls: 3,
                unwritten_frames: 4,
                ..Loss::default()
            },
        );
        assert_eq!(total(&now), 10);
        let delta = since(&now, &then);
        assert_eq!(
            (delta.syscalls, delta.unwritten_frames, total(&delta)),
            (3, 4, 7)
        );
    }
}
