//! RESP2/RESP3 frames read in one pass, without building a tree: a stack of counts (depth
//! capped) walks nested aggregates, and the preview is written in wire order as it goes.
//!
//! Hand-written rather than `redis-protocol`'s decoder: that one recurses without a depth
//! limit (a long run of `*1\r\n` overflows the stack), keeps maps and sets in std hash
//! containers (previews would come out in a different order on every run, duplicates lost),
//! reads RESP2's `$-1`/`*-1` nulls as RESP3 streaming headers, and allocates a whole tree
//! per reply only for us to print its first 80 characters.

/// Nesting deeper than this is not a real reply.
const MAX_DEPTH: usize = 64;
/// Lengths past Redis's own limits (512 MiB strings, 2^32 elements) are garbage.
const MAX_LEN: u64 = 1 << 32;
/// Characters of preview kept for a reply, and per command word.
pub(super) const REPLY_CHARS: usize = 80;
pub(super) const WORD_CHARS: usize = 64;
/// Words of a command kept; the rest are counted in a last "…(+N)" word.
const MAX_WORDS: usize = 32;
/// An inline command longer than this (Redis's own inline limit) is not one.
const MAX_INLINE: usize = 64 * 1024;

/// How reading a frame at the start of a buffer went.
pub(super) enum Read<T> {
    /// A whole frame of this many bytes.
    Done(T, usize),
    /// The buffer ends inside the frame; what was read of it.
    Partial(T),
    /// Not a frame.
    Invalid(usize),
}

/// A reply as far as it was read.
#[derive(Clone, Debug, Default)]
pub(super) struct Reply {
    /// RESP type name of the reply (past any attribute).
    pub kind: &'static str,
    pub preview: String,
    pub error: Option<String>,
    /// The first element of a top-level array or push, lower-cased, when it is a string
    /// ("message", "subscribe", ...).
    pub first_word: Option<String>,
}

pub(super) fn kind_name(type_byte: u8) -> &'static str {
    match type_byte {
        b'+' => "simple-string",
        b'-' => "error",
        b':' => "integer",
        b'$' => "bulk-string",
        b'*' => "array",
        b'_' => "null",
        b'%' => "map",
        b'~' => "set",
        b',' => "double",
        b'#' => "boolean",
        b'=' => "verbatim-string",
        b'(' => "big-number",
        b'>' => "push",
        b'|' => "attribute",
        b'!' => "error",
        _ => "",
    }
}

/// An open aggregate: elements left, and how its elements are joined in the preview.
struct Level {
    left: u64,
    seen: u64,
    map: bool,
    close: char,
    /// An attribute: its elements are not the parent's and are not shown.
    attribute: bool,
}

/// Reads one reply at the start of `buf`.
pub(super) fn read_reply(buf: &[u8]) -> Read<Reply> {
    let mut reply = Reply::default();
    let mut stack: Vec<Level> = Vec::new();
    let mut pos = 0;
    loop {
        let Some(&type_byte) = buf.get(pos) else {
            return partial(reply);
        };
        let kind = kind_name(type_byte);
        if kind.is_empty() {
            return Read::Invalid(pos);
        }
        let muted = stack.iter().any(|level| level.attribute);
        let depth = stack.len();
        if !muted {
            if depth == 0 && type_byte != b'|' {
                reply.kind = kind;
            }
            if let Some(level) = stack.last() {
                let separator = match (level.map, level.seen % 2) {
                    (true, 1) => ": ",
                    _ if level.seen == 0 => "",
                    _ => ", ",
                };
                push_text(&mut reply.preview, separator);
            }
        }
        let Some(line_end) = memchr::memchr(b'\n', &buf[pos..]).map(|at| pos + at) else {
            return partial(reply);
        };
        if line_end == pos + 1 || buf[line_end - 1] != b'\r' {
            return Read::Invalid(pos);
        }
        let line = &buf[pos + 1..line_end - 1];
        pos = line_end + 1;
        let mut text: Option<&[u8]> = None;
        let mut opened = None;
        match type_byte {
            b'+' | b'-' | b',' | b'(' => text = Some(line),
            b':' => match parse_signed(line) {
                Some(_) => text = Some(line),
                None => return Read::Invalid(pos),
            },
            b'#' => match line {
                b"t" => text = Some(b"true"),
                b"f" => text = Some(b"false"),
                _ => return Read::Invalid(pos),
            },
            b'_' => text = Some(b"(nil)"),
            b'$' | b'!' | b'=' => {
                if line == b"-1" && type_byte == b'$' {
                    text = Some(b"(nil)");
                    if depth == 0 {
                        reply.kind = "null";
                    }
                } else {
                    let Some(len) = parse_len(line) else {
                        return Read::Invalid(pos);
                    };
                    let Some(data) = usize::try_from(len)
                        .ok()
                        .and_then(|len| buf.get(pos..pos.checked_add(len)?))
                    else {
                        return partial(reply);
                    };
                    let end = pos + data.len();
                    match buf.get(end..end + 2) {
                        Some(b"\r\n") => {}
                        Some(_) => return Read::Invalid(pos),
                        None => return partial(reply),
                    }
                    pos = end + 2;
                    text = Some(if type_byte == b'=' {
                        data.get(4..).unwrap_or(data)
                    } else {
                        data
                    });
                }
            }
            _ => {
                if line == b"-1" && type_byte == b'*' {
                    text = Some(b"(nil)");
                    if depth == 0 {
                        reply.kind = "null";
                    }
                } else {
                    let Some(count) = parse_len(line) else {
                        return Read::Invalid(pos);
                    };
                    let pairs = matches!(type_byte, b'%' | b'|');
                    opened = Some(Level {
                        left: if pairs { count * 2 } else { count },
                        seen: 0,
                        map: pairs,
                        close: if pairs { '}' } else { ']' },
                        attribute: type_byte == b'|',
                    });
                }
            }
        }
        if let Some(text) = text {
            if !muted {
                let quoted = type_byte == b'$' && text != b"(nil)";
                show(&mut reply.preview, text, quoted);
                if depth == 0 && matches!(type_byte, b'-' | b'!') {
                    reply.error = Some(preview(text, REPLY_CHARS));
                }
                if depth == 1 && stack[0].seen == 0 && matches!(type_byte, b'$' | b'+') {
                    reply.first_word = Some(preview(text, 16).to_ascii_lowercase());
                }
            }
        }
        match opened {
            Some(level) => {
                if stack.len() == MAX_DEPTH {
                    return Read::Invalid(pos);
                }
                if !muted && !level.attribute {
                    push_text(&mut reply.preview, if level.map { "{" } else { "[" });
                }
                stack.push(level);
            }
            None => count_element(&mut stack),
        }
        // Close every aggregate this element completed.
        while let Some(level) = stack.last() {
            if level.left > 0 {
                break;
            }
            let attribute = level.attribute;
            let close = level.close;
            stack.pop();
            if !attribute {
                if !stack.iter().any(|level| level.attribute) {
                    push_text(&mut reply.preview, &close.to_string());
                }
                count_element(&mut stack);
            }
        }
        if stack.is_empty() && type_byte != b'|' && !reply.kind.is_empty() {
            return Read::Done(reply, pos);
        }
    }
}

fn count_element(stack: &mut [Level]) {
    if let Some(level) = stack.last_mut() {
        level.left = level.left.saturating_sub(1);
        level.seen += 1;
    }
}

fn partial(reply: Reply) -> Read<Reply> {
    Read::Partial(reply)
}

/// A command as far as it was read: its words (first upper-cased), cut for display.
pub(super) type Command = Vec<String>;

/// Reads one command at the start of `buf`: an array of bulk strings, or an inline line.
/// An empty inline line reads as a command of no words.
pub(super) fn read_command(buf: &[u8]) -> Read<Command> {
    match buf.first() {
        None => Read::Partial(Vec::new()),
        Some(b'*') => read_array_command(buf),
        Some(_) => read_inline_command(buf),
    }
}

fn read_array_command(buf: &[u8]) -> Read<Command> {
    let mut words = Vec::new();
    let (line, mut pos) = match line_at(buf, 0) {
        Line::Whole(line, next) => (line, next),
        Line::Short => return Read::Partial(words),
        Line::Bad => return Read::Invalid(0),
    };
    let Some(count) = line.strip_prefix(b"*").and_then(parse_len) else {
        return Read::Invalid(pos);
    };
    for _ in 0..count {
        match buf.get(pos) {
            None => return Read::Partial(finish(words, count)),
            Some(b'$') => {}
            Some(_) => return Read::Invalid(pos),
        }
        let (line, data_at) = match line_at(buf, pos) {
            Line::Whole(line, next) => (line, next),
            Line::Short => return Read::Partial(finish(words, count)),
            Line::Bad => return Read::Invalid(pos),
        };
        let Some(len) = parse_len(&line[1..]) else {
            return Read::Invalid(pos);
        };
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| data_at.checked_add(len));
        let Some(data) = end.and_then(|end| buf.get(data_at..end)) else {
            // Show what the recording holds of a word cut short.
            push_word(&mut words, buf.get(data_at..).unwrap_or_default());
            return Read::Partial(finish(words, count));
        };
        push_word(&mut words, data);
        pos = data_at + data.len();
        match buf.get(pos..pos + 2) {
            Some(b"\r\n") => pos += 2,
            Some(_) => return Read::Invalid(pos),
            None => return Read::Partial(finish(words, count)),
        }
    }
    Read::Done(finish(words, count), pos)
}

fn read_inline_command(buf: &[u8]) -> Read<Command> {
    let window = &buf[..buf.len().min(MAX_INLINE)];
    let Some(newline) = memchr::memchr(b'\n', window) else {
        return if buf.len() > MAX_INLINE {
            Read::Invalid(buf.len().min(MAX_INLINE))
        } else {
            Read::Partial(Vec::new())
        };
    };
    let line = window[..newline]
        .strip_suffix(b"\r")
        .unwrap_or(&window[..newline]);
    let mut words = Vec::new();
    let mut count = 0;
    for word in line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|word| !word.is_empty())
    {
        if count == 0 && !word.iter().all(u8::is_ascii_alphabetic) {
            return Read::Invalid(newline);
        }
        push_word(&mut words, word);
        count += 1;
    }
    Read::Done(finish(words, count), newline + 1)
}

/// A length line of a command.
enum Line<'b> {
    /// The line (CRLF excluded) and the offset after it.
    Whole(&'b [u8], usize),
    /// The buffer ends first.
    Short,
    Bad,
}

/// The length line starting at `pos`: a few bytes ending in CRLF.
fn line_at(buf: &[u8], pos: usize) -> Line<'_> {
    const LONGEST: usize = 32;
    let rest = buf.get(pos..).unwrap_or_default();
    match memchr::memchr(b'\n', &rest[..rest.len().min(LONGEST)]) {
        Some(newline) => match rest[..newline].strip_suffix(b"\r") {
            Some(line) => Line::Whole(line, pos + newline + 1),
            None => Line::Bad,
        },
        None if rest.len() >= LONGEST => Line::Bad,
        None => Line::Short,
    }
}

fn push_word(words: &mut Command, word: &[u8]) {
    if words.len() < MAX_WORDS {
        let mut text = preview(word, WORD_CHARS);
        if words.is_empty() {
            text.make_ascii_uppercase();
        }
        words.push(text);
    }
}

/// Notes the words past [`MAX_WORDS`] in a last word.
fn finish(mut words: Command, count: u64) -> Command {
    if count > MAX_WORDS as u64 && words.len() == MAX_WORDS {
        words.push(format!("…(+{})", count - MAX_WORDS as u64));
    }
    words
}

fn parse_len(line: &[u8]) -> Option<u64> {
    if line.is_empty() || line.len() > 12 || !line.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(line)
        .ok()?
        .parse()
        .ok()
        .filter(|len| *len <= MAX_LEN)
}

fn parse_signed(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// Appends to a preview until it is full; one "…" marks the cut.
fn push_text(out: &mut String, text: &str) {
    if out.ends_with('…') {
        return;
    }
    for ch in text.chars() {
        if out.chars().count() >= REPLY_CHARS {
            out.push('…');
            return;
        }
        out.push(ch);
    }
}

fn show(out: &mut String, text: &[u8], quoted: bool) {
    if out.ends_with('…') {
        return;
    }
    let text = preview(text, REPLY_CHARS);
    if quoted {
        push_text(out, &format!("\"{text}\""));
    } else {
        push_text(out, &text);
    }
}

/// Printable text cut to `max` characters: control characters escaped, invalid UTF-8
/// replaced.
pub(super) fn preview(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    let held = &bytes[..bytes.len().min(max * 4)];
    for (count, ch) in String::from_utf8_lossy(held).chars().enumerate() {
        if count == max {
            out.push('…');
            return out;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    if held.len() < bytes.len() {
        out.push('…');
    }
    out
}
