//! HTTP/1.x framing, for two things:
//!
//! - A request with `Content-Length: N` ends exactly N bytes after its headers, so its
//!   body can be decided then instead of waiting for a line end or the time bound. Only
//!   requests are cut: a response's length depends on the request method (a HEAD response
//!   has the header but no body), which the other direction carries, and a wrong cut could
//!   split a secret.
//! - A body with a `Content-Encoding` other than identity (gzip, br, zstd, ...) is opaque
//!   to every detector, yet anyone can decompress it from a recording, so it is masked
//!   whole: N bytes with a `Content-Length`, up to the last chunk when chunked, to the end
//!   of the stream otherwise. Responses are followed by their lines, not their lengths
//!   (a response to HEAD, a 304, has a length but no body, which only the other
//!   direction's request or the status says). Where the next response may begin inside
//!   what was taken for a body (a masked body whose first line is a status line), or at
//!   the end of a body line (a body without a final line break), a shadow tracker follows
//!   it and only adds masks, while this one goes on as if it were text.

use crate::detector::Detector;
use crate::framing::Mask;
use lines::{
    after_passed_over_lines, header_value, is_request_line, is_status_line, may_start_message,
};

const LINE_CAPTURE: usize = 256;
/// How much of a line's end is kept between messages, to find a status line run on from
/// a body without a final line break.
const TAIL: usize = 64;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Idle,
    Headers {
        request: bool,
        content_length: Option<u64>,
        chunked: bool,
        encoded: bool,
    },
    Body {
        remaining: u64,
        mask: bool,
        cut: bool,
        /// A masked response body whose first line is still being read: a response to
        /// HEAD has a length but no body, so what follows may be the next response.
        probe: bool,
    },
    /// Masking a chunked encoded body until its last chunk (`0\r\n\r\n`).
    MaskChunked { window: u64 },
    /// Masking an encoded body that ends when the connection does.
    MaskRest,
}

#[derive(Debug, Default)]
pub(crate) struct Http {
    state: State,
    line: Vec<u8>,
    /// The current line cannot start a message (its first bytes are not those of a
    /// request or status line, `may_start_message`), so it is passed over, not captured.
    skipping: bool,
    /// Encoded bodies are masked (the policy's, as of the last bytes fed).
    compressed: bool,
    /// A response's headers ended and its body is not followed by its length: until the
    /// next message starts, a line may end with the next response's status line (a body
    /// without a final line break runs into it).
    after_response: bool,
    /// The last bytes of the current line while `after_response` (`TAIL` at most).
    tail: Vec<u8>,
    /// The response a status line found at a body line's end starts, followed by a
    /// tracker of its own until it is over. That line may have been body text, so it
    /// only adds masks (never cuts), and this tracker goes on as if it were text.
    /// Kept between messages (its buffers too): a keep-alive connection whose bodies
    /// end without a line break starts one per response.
    shadow: Option<Box<Http>>,
    /// The shadow is following a message.
    shadowing: bool,
    /// This is a shadow: it looks for no shadow of its own.
    is_shadow: bool,
    /// Stream offset where the body being read (or masked) began.
    body_from: u64,
    /// Lines are read one at a time, each decided by its first byte, as before lines were
    /// passed over in one search: the tests' reference.
    #[cfg(test)]
    line_by_line: bool,
}

impl Http {
    pub(crate) fn feed(
        &mut self,
        bytes: &[u8],
        base: u64,
        compressed: bool,
        masks: &mut Vec<Mask>,
        cuts: &mut Vec<u64>,
    ) {
        self.compressed = compressed;
        if let Some(shadow) = self.shadow.as_mut().filter(|_| self.shadowing) {
            shadow.feed(bytes, base, compressed, masks, &mut Vec::new());
            self.shadowing = !shadow.over();
        }
        let rule = Detector::CompressedBody.rule();
        let mut i = 0;
        while i < bytes.len() {
            let at = base + i as u64;
            match self.state {
                State::Body {
                    remaining,
                    mask,
                    cut,
                    probe,
                } => {
                    let take = (remaining as usize).min(bytes.len() - i);
                    if mask {
                        masks.push(Mask {
                            start: at,
                            end: at + take as u64,
                            rule,
                        });
                    }
                    let probe = match probe.then(|| self.probe(&bytes[i..i + take])) {
                        Some(Probe::Status(headers, after)) if self.is_shadow => {
                            // A shadow follows the next response itself.
                            self.state = headers;
                            i += after;
                            continue;
                        }
                        Some(Probe::Status(headers, after)) => {
                            // What was taken for a body may be the next response (a
                            // response to HEAD has a length but no body): a shadow follows
                            // it, and this body is masked to its length as before.
                            let from = i + after;
                            self.start_shadow(
                                headers,
                                &[],
                                &bytes[from..],
                                base + from as u64,
                                masks,
                            );
                            false
                        }
                        Some(Probe::More) => true,
                        Some(Probe::NotStatus) | None => false,
                    };
                    i += take;
                    let remaining = remaining - take as u64;
                    self.state = State::Body {
                        remaining,
                        mask,
                        cut,
                        probe,
                    };
                    if remaining == 0 {
                        // A first line still being probed goes on past the body (a
                        // response to HEAD whose length ends inside the next status
                        // line): in a shadow of its own, or a shadow's between messages.
                        if !probe {
                            self.line.clear();
                        } else if !self.is_shadow {
                            let line = std::mem::take(&mut self.line);
                            self.start_shadow(
                                State::Idle,
                                &line,
                                &bytes[i..],
                                base + i as u64,
                                masks,
                            );
                        }
                        if cut {
                            cuts.push(base + i as u64);
                        }
                        self.state = State::Idle;
                    }
                    continue;
                }
                State::MaskRest => {
                    masks.push(Mask {
                        start: at,
                        end: base + bytes.len() as u64,
                        rule,
                    });
                    return;
                }
                State::MaskChunked { mut window } => {
                    // The last chunk: "\n0\r\n\r\n" (trailers are not expected).
                    const END: u64 = u64::from_be_bytes(*b"\0\0\n0\r\n\r\n");
                    const LAST6: u64 = (1 << 48) - 1;
                    let mut j = i;
                    let mut done = false;
                    while j < bytes.len() {
                        window = (window << 8) | u64::from(bytes[j]);
                        j += 1;
                        if window & LAST6 == END {
                            done = true;
                            break;
                        }
                    }
                    masks.push(Mask {
                        start: at,
                        end: base + j as u64,
                        rule,
                    });
                    i = j;
                    self.state = if done {
                        State::Idle
                    } else {
                        State::MaskChunked { window }
                    };
                    continue;
                }
                State::Idle | State::Headers { .. } => {}
            }
            let rest = &bytes[i..];
            let idle = self.state == State::Idle;
            let watch = idle && self.after_response && !self.is_shadow;
            if idle && self.line.is_empty() && !self.skipping {
                self.skipping = match self.line_by_line() {
                    true => !rest[0].is_ascii_uppercase(),
                    false => !may_start_message(&rest[..rest.len().min(11)]),
                };
            }
            if self.skipping && !watch && !self.line_by_line() {
                // Every line up to the next one that may start a message is passed over
                // in one search, not one line at a time: JSON lines, logs and bodies.
                match after_passed_over_lines(rest) {
                    Some(p) => {
                        self.skipping = false;
                        self.tail.clear();
                        i += p;
                    }
                    None => i = bytes.len(),
                }
                continue;
            }
            match memchr::memchr(b'\n', rest) {
                None => {
                    if watch {
                        self.keep_tail(rest);
                    }
                    if !self.skipping {
                        self.capture(rest);
                    }
                    i = bytes.len();
                }
                Some(p) => {
                    if self.skipping {
                        self.skipping = false;
                    } else {
                        if self.line.is_empty() {
                            // Nothing of the line came in an earlier write: it is read
                            // where it is, as much of it as `capture` would have kept,
                            // without the copy (reading the copy back waited on it).
                            self.line_done(&rest[..p.min(LINE_CAPTURE)], compressed);
                        } else {
                            self.capture(&rest[..p]);
                            // Lent to `line_done`, which takes `self` too; back emptied.
                            let line = std::mem::take(&mut self.line);
                            self.line_done(&line, compressed);
                            self.line = line;
                            self.line.clear();
                        }
                        if self.in_body() {
                            self.body_from = at + p as u64 + 1;
                        }
                    }
                    if watch && self.state == State::Idle {
                        let after = (i + p + 1).min(bytes.len());
                        self.shadow_from_tail(
                            &rest[..p],
                            &bytes[after..],
                            base + after as u64,
                            masks,
                        );
                    }
                    self.tail.clear();
                    i += p + 1;
                }
            }
        }
    }

    fn line_by_line(&self) -> bool {
        #[cfg(test)]
        return self.line_by_line;
        #[cfg(not(test))]
        false
    }

    fn capture(&mut self, part: &[u8]) {
        let room = LINE_CAPTURE.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..room.min(part.len())]);
    }

    /// Reads `part`, the next bytes of a probed body, into the line, to its end.
    fn probe(&mut self, part: &[u8]) -> Probe {
        if self.line.is_empty() && part.first() != Some(&b'H') {
            return Probe::NotStatus;
        }
        let Some(p) = memchr::memchr(b'\n', part) else {
            self.capture(part);
            return Probe::More;
        };
        self.capture(&part[..p]);
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        let next = is_status_line(line).then(|| message_start(line)).flatten();
        self.line.clear();
        match next {
            Some(headers) => Probe::Status(headers, p + 1),
            None => Probe::NotStatus,
        }
    }

    /// Keeps the end of `part`, the latest bytes of the current line, in `tail`.
    fn keep_tail(&mut self, part: &[u8]) {
        self.tail
            .extend_from_slice(&part[part.len().saturating_sub(TAIL)..]);
        let excess = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..excess);
    }

    /// A line between messages that is not a message's first line may end with one: a
    /// response body without a final line break, then the next response's status line.
    /// `last` is the line's part in this push (`tail` holds the end of its earlier parts);
    /// `rest` (at stream offset `base`) is what follows it in this push.
    fn shadow_from_tail(&mut self, last: &[u8], rest: &[u8], base: u64, masks: &mut Vec<Mask>) {
        let end = if self.tail.is_empty() {
            &last[last.len().saturating_sub(TAIL)..]
        } else {
            self.keep_tail(last);
            &self.tail[..]
        };
        let end = end.strip_suffix(b"\r").unwrap_or(end);
        // At the end of every body line: a capital `H` is rare, a searcher's set-up is not.
        let status = memchr::memrchr_iter(b'H', end).find(|&at| end[at..].starts_with(b"HTTP/1."));
        if let Some(start) = status.and_then(|at| message_start(&end[at..])) {
            self.start_shadow(start, &[], rest, base, masks);
        }
    }

    /// Follows what may be a message in a shadow, starting in `state` with `line` read, and
    /// feeds it `rest` (at stream offset `base`). One at a time: a shadow still reading
    /// headers may have been started by text and gives way; one in a body begun by `base`
    /// is kept; one between messages gives way even while it holds part of a line (it was
    /// fed this whole piece first, so it may have read past the end of its message and into
    /// the text where this status line was found).
    fn start_shadow(
        &mut self,
        state: State,
        line: &[u8],
        rest: &[u8],
        base: u64,
        masks: &mut Vec<Mask>,
    ) {
        let shadow = self.shadow.get_or_insert_with(Box::default);
        // Fed the whole piece first, a shadow may have read past `base` into a body; it
        // is kept only if its body began by then, as it would have byte by byte.
        if self.shadowing && shadow.in_body() && shadow.body_from <= base {
            return;
        }
        shadow.state = state;
        shadow.line.clear();
        shadow.line.extend_from_slice(line);
        shadow.skipping = false;
        shadow.is_shadow = true;
        #[cfg(test)]
        {
            shadow.line_by_line = self.line_by_line;
        }
        shadow.feed(rest, base, self.compressed, masks, &mut Vec::new());
        self.shadowing = !shadow.over();
    }

    /// Reading (or masking) a body.
    fn in_body(&self) -> bool {
        !matches!(self.state, State::Headers { .. } | State::Idle)
    }

    /// Nothing of a message is being read.
    fn over(&self) -> bool {
        self.state == State::Idle && self.line.is_empty()
    }

    /// Moves `state` and `after_response` on past `line`, the line just ended as `capture`
    /// keeps it (its first `LINE_CAPTURE` bytes, without the line feed; a final `\r` is
    /// dropped here). Reads nothing else of `self`, and leaves `self.line` to the caller.
    fn line_done(&mut self, line: &[u8], compressed: bool) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let State::Headers { request, .. } = self.state {
            self.after_response = !request && line.is_empty();
        }
        self.state = match self.state {
            State::Idle => message_start(line).unwrap_or(State::Idle),
            State::Headers {
                request,
                content_length,
                chunked,
                encoded,
            } if line.is_empty() => match (encoded && compressed, chunked, content_length) {
                (true, true, _) => State::MaskChunked { window: 0 },
                (true, false, Some(0)) => State::Idle,
                (true, false, Some(n)) => State::Body {
                    remaining: n,
                    mask: true,
                    cut: request,
                    probe: !request,
                },
                (true, false, None) => State::MaskRest,
                (false, false, Some(n)) if request && n > 0 => State::Body {
                    remaining: n,
                    mask: false,
                    cut: true,
                    probe: false,
                },
                _ => State::Idle,
            },
            State::Headers {
                request,
                content_length,
                chunked,
                encoded,
            } if !matches!(line.first(), Some(b'c' | b'C' | b't' | b'T')) => State::Headers {
                // Not one of the three headers read below: most lines are not.
                request,
                content_length,
                chunked,
                encoded,
            },
            State::Headers {
                request,
                content_length,
                chunked,
                encoded,
            } => State::Headers {
                request,
                content_length: content_length.or_else(|| {
                    header_value(line, b"content-length:").and_then(|v| v.parse().ok())
                }),
                chunked: chunked
                    || header_value(line, b"transfer-encoding:")
                        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
                encoded: encoded
                    || header_value(line, b"content-encoding:").is_some_and(|v| {
                        let v = v.to_ascii_lowercase();
                        !v.is_empty() && v != "identity"
                    }),
            },
            other => other,
        };
    }

    pub(crate) fn gap(&mut self, len: u64) {
        self.line.clear();
        self.tail.clear();
        if let Some(shadow) = self.shadow.as_mut().filter(|_| self.shadowing) {
            shadow.gap(len);
            self.shadowing = !shadow.over();
        }
        self.skipping = false;
        self.state = match self.state {
            State::Body {
                remaining,
                mask,
                cut,
                ..
            } if len < remaining => State::Body {
                remaining: remaining - len,
                mask,
                cut,
                probe: false,
            },
            State::MaskChunked { .. } | State::MaskRest => self.state,
            // An encoded body is on its way, and the hole may have held the blank line
            // before it or part of it: where it starts and ends is no longer known.
            State::Headers { encoded: true, .. } if self.compressed => State::MaskRest,
            _ => State::Idle,
        };
    }
}

/// What a probed body's first line turned out to be.
enum Probe {
    /// Not ended yet.
    More,
    /// A status line, whose headers follow, ending this many bytes into the part read.
    Status(State, usize),
    NotStatus,
}

/// The headers that follow `line`, if it is a request or status line.
fn message_start(line: &[u8]) -> Option<State> {
    let request = is_request_line(line);
    (request || is_status_line(line)).then_some(State::Headers {
        request,
        content_length: None,
        chunked: false,
        encoded: false,
    })
}

mod lines;
#[cfg(test)]
mod tests;
