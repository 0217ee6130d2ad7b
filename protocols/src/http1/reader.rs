//! A cursor over one direction's runs, and the body framings of HTTP/1.x read through it.
//!
//! Gaps have no width in [`Stream::bytes`]: the run after a gap starts at the offset where the
//! missing bytes would have been. A body of known length can step over a gap whose size is
//! known (a payload past the capture cap, one withheld by the redactor) and stay in step;
//! any other gap loses the framing, and the caller resynchronises at the next message start.

use crate::exchange::Body;
use crate::stream::{Run, Stream};

/// A chunk-size line or trailer line longer than this is not HTTP: the framing is lost.
const MAX_LINE: usize = 8 * 1024;

pub(super) struct Reader<'a> {
    pub(super) stream: &'a Stream,
    pub(super) bytes: &'a [u8],
    runs: Vec<Run>,
    run: usize,
    pub(super) pos: usize,
}

/// What lies past the end of the current run.
pub(super) enum Crossing {
    /// A gap, then more bytes (the reader is now at their start); the gap's size when every
    /// gap there says how many bytes it lacks.
    Gap { missing: Option<u64>, at_ns: u64 },
    /// The recording's end; `gap`: a gap comes last, so bytes moved past what is held.
    End { gap: bool },
}

/// How a message's body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Every byte of it is here.
    Whole,
    /// Bytes are missing, but the framing was kept: the next message follows.
    Holes,
    /// The framing was lost (a gap, garbage, the recording's end): resynchronise.
    Lost,
}

/// How a message's body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// A response without a length: it runs to the connection's end.
    UntilEnd,
}

impl<'a> Reader<'a> {
    pub(super) fn new(stream: &'a Stream) -> Self {
        let runs = stream.runs();
        let pos = runs.first().map_or(0, |run| run.range.start);
        Reader {
            stream,
            bytes: stream.bytes(),
            runs,
            run: 0,
            pos,
        }
    }

    /// The first run comes after a gap: the stream was joined mid-message.
    pub(super) fn starts_after_gap(&self) -> bool {
        self.runs.first().is_some_and(|run| run.after_gap)
    }

    pub(super) fn run_start(&self) -> usize {
        self.runs.get(self.run).map_or(0, |run| run.range.start)
    }

    pub(super) fn run_end(&self) -> usize {
        self.runs.get(self.run).map_or(0, |run| run.range.end)
    }

    /// The bytes from the cursor to the end of the current run.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..self.run_end()).unwrap_or(&[])
    }

    pub(super) fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.run_end());
    }

    pub(super) fn at_run_end(&self) -> bool {
        self.pos >= self.run_end()
    }

    /// Moves past the end of the current run (the cursor must be at it).
    pub(super) fn cross(&mut self) -> Crossing {
        let Some(next) = self.runs.get(self.run + 1) else {
            self.pos = self.run_end();
            let gap = self
                .stream
                .gaps()
                .last()
                .is_some_and(|gap| gap.offset >= self.bytes.len());
            return Crossing::End { gap };
        };
        let at = next.range.start;
        self.run += 1;
        self.pos = at;
        let mut missing = Some(0u64);
        let mut at_ns = 0;
        for gap in self.stream.gaps().iter().filter(|gap| gap.offset == at) {
            at_ns = gap.at_ns;
            missing = match (missing, gap.missing) {
                (Some(sum), n) if n > 0 => Some(sum.saturating_add(n)),
                _ => None,
            };
        }
        Crossing::Gap { missing, at_ns }
    }

    /// Reads a body framed by `framing` into `body`.
    pub(super) fn body(&mut self, framing: Framing, body: &mut Body) -> Outcome {
        let outcome = match framing {
            Framing::Empty => Outcome::Whole,
            Framing::Length(n) => {
                body.length = n;
                self.exact(n, body)
            }
            Framing::Chunked => self.chunked(body),
            Framing::UntilEnd => self.until_end(body),
        };
        body.complete = outcome == Outcome::Whole;
        outcome
    }

    /// Reads `n` bytes of body, stepping over gaps of known size that fall inside them.
    fn exact(&mut self, mut left: u64, body: &mut Body) -> Outcome {
        let mut holes = false;
        loop {
            let rest = self.rest();
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
            body.bytes.extend_from_slice(&rest[..take]);
            self.advance(take);
            left -= take as u64;
            if left == 0 {
                return if holes {
                    Outcome::Holes
                } else {
                    Outcome::Whole
                };
            }
            match self.cross() {
                Crossing::Gap {
                    missing: Some(missing),
                    ..
                } if missing <= left => {
                    left -= missing;
                    holes = true;
                }
                _ => return Outcome::Lost,
            }
        }
    }

    fn chunked(&mut self, body: &mut Body) -> Outcome {
        let mut holes = false;
        loop {
            let Some(line) = self.line() else {
                return Outcome::Lost;
            };
            let Some(size) = chunk_size(line) else {
                return Outcome::Lost;
            };
            body.length = body.length.saturating_add(size);
            if size == 0 {
                // Trailers, if any, up to an empty line.
                loop {
                    match self.line() {
                        Some([]) => {
                            return if holes {
                                Outcome::Holes
                            } else {
                                Outcome::Whole
                            };
                        }
                        Some(_) => {}
                        None => return Outcome::Lost,
                    }
                }
            }
            match self.exact(size, body) {
                Outcome::Whole => {}
                Outcome::Holes => holes = true,
                Outcome::Lost => return Outcome::Lost,
            }
            match self.line() {
                Some([]) => {}
                _ => return Outcome::Lost,
            }
        }
    }

    /// Takes everything to the recording's end: only the connection's close ends this body.
    fn until_end(&mut self, body: &mut Body) -> Outcome {
        let mut holes = false;
        loop {
            let rest = self.rest();
            body.bytes.extend_from_slice(rest);
            body.length = body.length.saturating_add(rest.len() as u64);
            self.advance(rest.len());
            match self.cross() {
                Crossing::Gap { missing, .. } => {
                    body.length = body.length.saturating_add(missing.unwrap_or(0));
                    holes = true;
                }
                Crossing::End { gap } => {
                    return if holes || gap {
                        Outcome::Holes
                    } else {
                        Outcome::Whole
                    };
                }
            }
        }
    }

    /// The next line without its line ending, when it is whole inside the current run.
    fn line(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest();
        let window = &rest[..rest.len().min(MAX_LINE)];
        let end = memchr::memchr(b'\n', window)?;
        self.advance(end + 1);
        let line = &rest[..end];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Moves to the next line start at or after the cursor at which `starts` holds (the
    /// cursor itself counts when it is at a run start or right after a line feed), crossing
    /// gaps as needed. False at the recording's end.
    pub(super) fn resync(&mut self, starts: impl Fn(&[u8]) -> bool) -> bool {
        loop {
            let end = self.run_end();
            let mut at = self.pos;
            if at > self.run_start() && self.bytes.get(at - 1) != Some(&b'\n') {
                at = match memchr::memchr(b'\n', self.bytes.get(at..end).unwrap_or(&[])) {
                    Some(i) => at + i + 1,
                    None => end,
                };
            }
            while at < end {
                if starts(&self.bytes[at..end]) {
                    self.pos = at;
                    return true;
                }
                at = match memchr::memchr(b'\n', &self.bytes[at..end]) {
                    Some(i) => at + i + 1,
                    None => end,
                };
            }
            self.pos = end;
            if let Crossing::End { .. } = self.cross() {
                return false;
            }
        }
    }
}

/// A chunk-size line's size (hex digits, then optional extensions after `;`).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or(&[]);
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut size = 0u64;
    for &b in digits {
        let digit = (b as char).to_digit(16)?;
        size = size.checked_mul(16)?.checked_add(u64::from(digit))?;
    }
    Some(size)
}

#[cfg(test)]
mod tests {
    use super::chunk_size;

    #[test]
    fn chunk_sizes_take_hex_and_ignore_extensions() {
        assert_eq!(chunk_size(b"1a"), Some(26));
        assert_eq!(chunk_size(b"A;name=value"), Some(10));
        assert_eq!(chunk_size(b"0"), Some(0));
        assert_eq!(chunk_size(b""), None);
        assert_eq!(chunk_size(b"zz"), None);
        assert_eq!(chunk_size(b"11111111111111111"), None);
    }
}
