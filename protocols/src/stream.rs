//! One direction of a connection as the recording holds it: the bytes in order, when each
//! recorded payload moved them, and where bytes moved but are not in the recording.

use std::ops::Range;

/// Why bytes that moved are missing from a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapReason {
    /// Not captured: the ring was full, the payload was shed, or the record was lost.
    Lost,
    /// Past the capture cap (`--max-payload`).
    Capped,
    /// Withheld whole by the redactor.
    Withheld,
}

/// Bytes that moved at `offset` of the stream but are not in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Offset in [`Stream::bytes`] where the missing bytes would have been.
    pub offset: usize,
    /// How many bytes are missing (0 when the count itself is unknown, as for lost records).
    pub missing: u64,
    /// When the payload that lacked them moved (CLOCK_MONOTONIC ns).
    pub at_ns: u64,
    pub reason: GapReason,
}

/// A run of bytes with no gap inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub range: Range<usize>,
    /// A gap comes right before this run: a parser must resynchronise here.
    pub after_gap: bool,
}

/// One direction's bytes, in recording order.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    bytes: Vec<u8>,
    /// (offset of a recorded payload's first byte, when it moved), ascending by offset.
    moves: Vec<(usize, u64)>,
    gaps: Vec<Gap>,
}

impl Stream {
    /// Appends a recorded payload's bytes, moved at `at_ns`.
    pub fn push(&mut self, at_ns: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.moves.push((self.bytes.len(), at_ns));
        self.bytes.extend_from_slice(data);
    }

    /// Records that `missing` bytes moved at `at_ns` are not in the stream.
    pub fn push_gap(&mut self, at_ns: u64, missing: u64, reason: GapReason) {
        self.gaps.push(Gap {
            offset: self.bytes.len(),
            missing,
            at_ns,
            reason,
        });
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.gaps.is_empty()
    }

    pub fn gaps(&self) -> &[Gap] {
        &self.gaps
    }

    /// When the byte at `offset` moved: the time of the payload that carried it (the last
    /// payload's for offsets at or past the end). `None` for an empty stream.
    pub fn time_at(&self, offset: usize) -> Option<u64> {
        let index = self.moves.partition_point(|&(start, _)| start <= offset);
        self.moves.get(index.checked_sub(1)?).map(|&(_, at)| at)
    }

    /// When the first payload moved, if any did.
    pub fn first_ns(&self) -> Option<u64> {
        self.moves.first().map(|&(_, at)| at)
    }

    /// The first gap within `range` (a gap at `range.start` counts; one at `range.end` does not).
    pub fn gap_in(&self, range: Range<usize>) -> Option<&Gap> {
        self.gaps
            .iter()
            .find(|gap| gap.offset >= range.start && gap.offset < range.end)
    }

    /// The stream cut at its gaps: the runs a parser can read without a hole inside.
    pub fn runs(&self) -> Vec<Run> {
        let mut runs = Vec::new();
        let mut start = 0;
        let mut after_gap = false;
        for gap in &self.gaps {
            if gap.offset > start {
                runs.push(Run {
                    range: start..gap.offset,
                    after_gap,
                });
            }
            start = gap.offset;
            after_gap = true;
        }
        if self.bytes.len() > start || runs.is_empty() {
            runs.push(Run {
                range: start..self.bytes.len(),
                after_gap,
            });
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_follow_the_payload_that_carried_each_byte() {
        let mut stream = Stream::default();
        stream.push(10, b"abc");
        stream.push(20, b"de");
        assert_eq!(stream.time_at(0), Some(10));
        assert_eq!(stream.time_at(2), Some(10));
        assert_eq!(stream.time_at(3), Some(20));
        assert_eq!(stream.time_at(99), Some(20));
        assert_eq!(Stream::default().time_at(0), None);
    }

    #[test]
    fn runs_split_at_gaps() {
        let mut stream = Stream::default();
        stream.push(1, b"abc");
        stream.push_gap(2, 5, GapReason::Lost);
        stream.push(3, b"xy");
        let runs = stream.runs();
        assert_eq!(
            runs,
            vec![
                Run {
                    range: 0..3,
                    after_gap: false
                },
                Run {
                    range: 3..5,
                    after_gap: true
                }
            ]
        );
        assert_eq!(stream.gap_in(0..3), None);
        assert_eq!(stream.gap_in(0..4).map(|g| g.missing), Some(5));
    }
}
