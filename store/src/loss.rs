//! Loss counts, kept in the recording's own `Loss` type everywhere: what the kernel could
//! not deliver (per kind) and the frames a failing disk kept from being written; and the
//! payload bytes kept and lost, which must add up to the bytes moved.

use recorder_proto::v1::{Loss, Payload};

/// Every record `loss` counts as lost, of every kind. Shed payloads are not in it: their
/// events were kept (see `Loss::payloads_shed`).
///
/// Sums here saturate: the counts may come from a damaged recording, where they can be
/// anything, and reading one must not panic.
pub fn total(loss: &Loss) -> u64 {
    loss.syscalls
        .saturating_add(loss.payload_chunks)
        .saturating_add(loss.stash_failures)
        .saturating_add(loss.process_events)
        .saturating_add(loss.unwritten_frames)
}

/// Adds `loss`'s counts to `sum`.
pub fn add(sum: &mut Loss, loss: &Loss) {
    let plus = |sum: &mut u64, count: u64| *sum = sum.saturating_add(count);
    plus(&mut sum.syscalls, loss.syscalls);
    plus(&mut sum.payload_chunks, loss.payload_chunks);
    plus(&mut sum.stash_failures, loss.stash_failures);
    plus(&mut sum.process_events, loss.process_events);
    plus(&mut sum.unwritten_frames, loss.unwritten_frames);
    plus(&mut sum.payloads_shed, loss.payloads_shed);
    plus(
        &mut sum.lost_syscall_payload_bytes,
        loss.lost_syscall_payload_bytes,
    );
    plus(&mut sum.stacks_lost, loss.stacks_lost);
    plus(&mut sum.holds_forced, loss.holds_forced);
    plus(&mut sum.compat_syscalls, loss.compat_syscalls);
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
        payloads_shed: now.payloads_shed - then.payloads_shed,
        lost_syscall_payload_bytes: now.lost_syscall_payload_bytes
            - then.lost_syscall_payload_bytes,
        stacks_lost: now.stacks_lost - then.stacks_lost,
        holds_forced: now.holds_forced - then.holds_forced,
        compat_syscalls: now.compat_syscalls - then.compat_syscalls,
    }
}

/// Payload bytes in both units' accounting: `kept + lost + capped + omitted = moved`, where `moved`
/// also counts the bytes of payload syscalls whose records were lost (from the Loss frames).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadTally {
    /// Bytes the recorded processes moved through payload syscalls.
    pub moved: u64,
    /// Captured (before redaction masked or withheld any).
    pub kept: u64,
    /// Not captured: ring full, shed under load, unreadable memory, or a lost record.
    pub lost: u64,
    /// Past the capture cap (`--max-payload`).
    pub capped: u64,
    /// Not kept on purpose: TLS ciphertext whose plaintext is recorded.
    pub omitted: u64,
}

impl PayloadTally {
    pub fn add_event(&mut self, payload: &Payload) {
        let missing = payload
            .lost_bytes
            .saturating_add(payload.capped_bytes)
            .saturating_add(payload.omitted_bytes);
        self.moved = self.moved.saturating_add(payload.length);
        self.kept = self
            .kept
            .saturating_add(payload.length.saturating_sub(missing));
        self.lost = self.lost.saturating_add(payload.lost_bytes);
        self.capped = self.capped.saturating_add(payload.capped_bytes);
        self.omitted = self.omitted.saturating_add(payload.omitted_bytes);
    }

    /// The bytes of syscalls whose records were lost: moved, none of them kept.
    pub fn add_lost_records(&mut self, loss: &Loss) {
        let bytes = loss.lost_syscall_payload_bytes;
        self.moved = self.moved.saturating_add(bytes);
        self.lost = self.lost.saturating_add(bytes);
    }

    pub fn add(&mut self, other: &PayloadTally) {
        self.moved = self.moved.saturating_add(other.moved);
        self.kept = self.kept.saturating_add(other.kept);
        self.lost = self.lost.saturating_add(other.lost);
        self.capped = self.capped.saturating_add(other.capped);
        self.omitted = self.omitted.saturating_add(other.omitted);
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

    #[test]
    fn counts_from_a_damaged_recording_saturate_rather_than_panic() {
        let huge = Loss {
            syscalls: u64::MAX,
            payload_chunks: u64::MAX,
            lost_syscall_payload_bytes: u64::MAX,
            ..Loss::default()
        };
        assert_eq!(total(&huge), u64::MAX);
        let mut sum = huge;
        add(&mut sum, &huge);
        assert_eq!((sum.syscalls, sum.payload_chunks), (u64::MAX, u64::MAX));

        let payload = Payload {
            length: u64::MAX,
            lost_bytes: u64::MAX,
            capped_bytes: u64::MAX,
            omitted_bytes: 1,
            ..Payload::default()
        };
        let mut tally = PayloadTally::default();
        tally.add_event(&payload);
        tally.add_event(&payload);
        tally.add_lost_records(&huge);
        let once = tally;
        tally.add(&once);
        assert_eq!(
            (
                tally.moved,
                tally.kept,
                tally.lost,
                tally.capped,
                tally.omitted
            ),
            (u64::MAX, 0, u64::MAX, u64::MAX, 4)
        );
    }
}
