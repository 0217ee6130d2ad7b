//! Commands and replies are read separately, then paired in order: Redis answers every
//! command in order, pipelined or not. Once a gap (or bytes that are no RESP) loses count on
//! either side, the rest are paired by time instead: a reply goes to the earliest command
//! sent before it, unless a later command was sent before it too (then that earlier command's
//! reply was lost). Pairs made by time are marked incomplete.
//!
//! Every command and every reply ends up in exactly one exchange. Pub/sub messages (RESP3
//! pushes, and RESP2 "message" arrays once the connection subscribed) answer no command: each
//! is an exchange of its own with an empty command. The subscribe confirmations after the
//! first, one per channel, are folded into their SUBSCRIBE's exchange. A reply left with no
//! command (the recording started mid-connection, MONITOR output) is an exchange with an empty
//! command, marked incomplete.

mod resp;

use resp::{kind_name, read_command, read_reply, Read, Reply};

use crate::exchange::{Detail, Exchange, Redis};
use crate::stream::Stream;

/// Bytes read in vain (garbage, resynchronising after gaps) allowed per byte of a stream.
const WASTE_PER_BYTE: usize = 16;

/// Inline commands a client may type; detection accepts only these words.
const INLINE_WORDS: &[&str] = &[
    "AUTH",
    "CLIENT",
    "CONFIG",
    "DBSIZE",
    "DECR",
    "DEL",
    "ECHO",
    "EXISTS",
    "EXPIRE",
    "FLUSHALL",
    "FLUSHDB",
    "GET",
    "HELLO",
    "HGET",
    "HGETALL",
    "HSET",
    "INCR",
    "INFO",
    "KEYS",
    "LPOP",
    "LPUSH",
    "LRANGE",
    "MGET",
    "MONITOR",
    "MSET",
    "PING",
    "PSUBSCRIBE",
    "PUBLISH",
    "QUIT",
    "RPOP",
    "RPUSH",
    "SADD",
    "SCAN",
    "SELECT",
    "SET",
    "SMEMBERS",
    "SUBSCRIBE",
    "TTL",
    "ZADD",
    "ZRANGE",
];

/// The client's first bytes are a RESP command (`*N\r\n$`) or an inline command of a known
/// word.
pub fn looks_like_command(bytes: &[u8]) -> bool {
    if let Some(rest) = bytes.strip_prefix(b"*") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        return (1..=7).contains(&digits) && rest[digits..].starts_with(b"\r\n$");
    }
    let word_len = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let after = &bytes[word_len..];
    // "GET /x HTTP/1.1" starts like an inline GET.
    let line = &after[..memchr::memchr(b'\n', after).unwrap_or(after.len())];
    let http = memchr::memmem::find(line, b" HTTP/").is_some();
    !http
        && (after.starts_with(b" ") || after.starts_with(b"\r\n"))
        && std::str::from_utf8(&bytes[..word_len]).is_ok_and(|word| {
            INLINE_WORDS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(word))
        })
}

/// A command or reply located in its stream.
struct Found<T> {
    start: usize,
    end: usize,
    value: T,
    /// Its bytes run past the recording (a gap or the end).
    partial: bool,
    /// Bytes before it are lost: counting from here is unreliable.
    after_gap: bool,
}

/// The exchanges of one Redis connection, by request time.
pub fn parse(client: &Stream, server: &Stream) -> Vec<Exchange> {
    let commands = commands(client);
    let replies = replies(server);
    let mut out = Vec::new();
    let mut next = 0;
    let mut in_order = true;
    let mut subscribed = false;
    // The exchange of the SUBSCRIBE whose further confirmations are still coming, and how many.
    let mut absorbing: Option<(usize, usize)> = None;

    for reply in &replies {
        let confirmation = reply.value.first_word.as_deref().is_some_and(|word| {
            matches!(word, "subscribe" | "psubscribe" | "ssubscribe")
                || matches!(word, "unsubscribe" | "punsubscribe" | "sunsubscribe")
        });
        let message = reply
            .value
            .first_word
            .as_deref()
            .is_some_and(|word| matches!(word, "message" | "pmessage" | "smessage"));
        let push = reply.value.kind == "push" && !confirmation;
        if push || (subscribed && message && reply.value.kind == "array") {
            out.push(unasked(server, reply, false));
            continue;
        }
        if let (true, Some((index, left))) = (confirmation, absorbing) {
            if let Some(ex) = out.get_mut(index) {
                absorb(server, ex, reply);
            }
            absorbing = (left > 1).then_some((index, left - 1));
            continue;
        }
        absorbing = None;
        in_order &= !reply.after_gap;
        if commands.get(next).is_some_and(|command| command.after_gap) {
            in_order = false;
        }
        let chosen = if in_order {
            commands.get(next)
        } else {
            // By time: skip commands answered by nothing in the recording.
            let answered_at = reply_time(server, reply);
            loop {
                let Some(command) = commands.get(next) else {
                    break None;
                };
                let sent = client.time_at(command.end.saturating_sub(1)).unwrap_or(0);
                if answered_at < sent {
                    break None;
                }
                let superseded = commands.get(next + 1).is_some_and(|later| {
                    let later_sent = client.time_at(later.end.saturating_sub(1)).unwrap_or(0);
                    later_sent != sent && later_sent < answered_at
                });
                if !superseded {
                    break Some(command);
                }
                out.push(exchange(client, server, command, None, true));
                next += 1;
            }
        };
        let Some(command) = chosen else {
            out.push(unasked(server, reply, true));
            continue;
        };
        next += 1;
        let name = command
            .value
            .first()
            .map(String::as_str)
            .unwrap_or_default();
        if confirmation && name.ends_with("SUBSCRIBE") {
            subscribed |= !name.ends_with("UNSUBSCRIBE");
            // One confirmation per channel named; UNSUBSCRIBE alone confirms every channel.
            let channels = command.value.len().saturating_sub(1);
            let more = if channels == 0 {
                usize::MAX
            } else {
                channels - 1
            };
            absorbing = (more > 0).then_some((out.len(), more));
        }
        out.push(exchange(client, server, command, Some(reply), !in_order));
    }
    for command in &commands[next.min(commands.len())..] {
        out.push(exchange(client, server, command, None, true));
    }
    out.sort_by_key(|ex| ex.request_ns);
    out
}

fn reply_time(server: &Stream, reply: &Found<Reply>) -> u64 {
    server.time_at(reply.end.saturating_sub(1)).unwrap_or(0)
}

fn exchange(
    client: &Stream,
    server: &Stream,
    command: &Found<Vec<String>>,
    reply: Option<&Found<Reply>>,
    incomplete: bool,
) -> Exchange {
    let mut ex = Exchange {
        request_ns: client.time_at(command.start).unwrap_or(0),
        response_ns: None,
        request_bytes: (command.end - command.start) as u64,
        response_bytes: 0,
        incomplete: incomplete || command.partial,
        detail: Detail::Redis(Redis {
            command: command.value.clone(),
            ..Redis::default()
        }),
    };
    if let Some(reply) = reply {
        answer(server, &mut ex, reply);
    }
    ex
}

/// A reply that answers no command: a push, or one whose command is not in the recording.
fn unasked(server: &Stream, reply: &Found<Reply>, incomplete: bool) -> Exchange {
    let mut ex = Exchange {
        request_ns: server.time_at(reply.start).unwrap_or(0),
        response_ns: None,
        request_bytes: 0,
        response_bytes: 0,
        incomplete,
        detail: Detail::Redis(Redis::default()),
    };
    answer(server, &mut ex, reply);
    ex
}

fn answer(server: &Stream, ex: &mut Exchange, reply: &Found<Reply>) {
    ex.response_bytes = (reply.end - reply.start) as u64;
    ex.incomplete |= reply.partial;
    ex.response_ns = (!reply.partial).then(|| reply_time(server, reply));
    if let Detail::Redis(redis) = &mut ex.detail {
        redis.reply_type = reply.value.kind.to_string();
        redis.reply = reply.value.preview.clone();
        redis.error = reply.value.error.clone();
    }
}

/// A further subscribe confirmation: part of the SUBSCRIBE's answer.
fn absorb(server: &Stream, ex: &mut Exchange, reply: &Found<Reply>) {
    ex.response_bytes += (reply.end - reply.start) as u64;
    ex.incomplete |= reply.partial;
    if !reply.partial {
        ex.response_ns = Some(reply_time(server, reply));
    }
}

/// The client's commands; after a gap or garbage, from the next line that starts a RESP array
/// of bulk strings (a command cut by the run's end counts).
fn commands(client: &Stream) -> Vec<Found<Vec<String>>> {
    let candidate = |bytes: &[u8]| bytes.starts_with(b"*") && looks_like_command(bytes);
    let mut found = read_all(client, read_command, candidate, true);
    // Empty lines and `*0` are not commands: Redis answers nothing to them.
    let mut carry = false;
    found.retain_mut(|command| {
        if command.value.is_empty() && !command.partial {
            carry |= command.after_gap;
            return false;
        }
        command.after_gap |= std::mem::take(&mut carry);
        true
    });
    found
}

/// The server's replies; after a gap or garbage, from the first line start where a whole
/// reply reads.
fn replies(server: &Stream) -> Vec<Found<Reply>> {
    let candidate = |bytes: &[u8]| bytes.first().is_some_and(|&b| !kind_name(b).is_empty());
    let mut found = read_all(server, read_reply, candidate, false);
    for reply in &mut found {
        if reply.value.kind.is_empty() {
            reply.value.kind = server
                .bytes()
                .get(reply.start)
                .map_or("", |&b| kind_name(b));
        }
    }
    found
}

/// Reads one direction frame by frame, run by run. After a gap, or bytes that read as no
/// frame, tries each following line start that `candidate` lets through until a frame reads
/// there whole (or, with `accept_partial`, up to the run's end). Bytes read in vain are
/// counted: past [`WASTE_PER_BYTE`] times the stream, the rest of the direction is left unread.
fn read_all<T>(
    stream: &Stream,
    read: fn(&[u8]) -> Read<T>,
    candidate: fn(&[u8]) -> bool,
    accept_partial: bool,
) -> Vec<Found<T>> {
    let bytes = stream.bytes();
    let mut budget = bytes.len().saturating_mul(WASTE_PER_BYTE).max(1 << 20);
    let mut found = Vec::new();
    for run in stream.runs() {
        let (start, end) = (run.range.start, run.range.end);
        let mut pos = start;
        let mut lost = run.after_gap;
        let mut resync = run.after_gap;
        while pos < end {
            if resync {
                loop {
                    let line_start = pos == start || bytes.get(pos.wrapping_sub(1)) == Some(&b'\n');
                    if line_start && candidate(&bytes[pos..end]) {
                        let wasted = match read(&bytes[pos..end]) {
                            Read::Done(..) => break,
                            Read::Partial(_) if accept_partial => break,
                            Read::Partial(_) => end - pos,
                            Read::Invalid(at) => at + 1,
                        };
                        budget = budget.saturating_sub(wasted);
                    }
                    let next = memchr::memchr(b'\n', &bytes[pos..end]).map(|at| pos + at + 1);
                    match next {
                        Some(next) if next < end && budget > 0 => pos = next,
                        _ if budget == 0 => return found,
                        _ => {
                            pos = end;
                            break;
                        }
                    }
                }
                resync = false;
                if pos >= end {
                    break;
                }
            }
            match read(&bytes[pos..end]) {
                Read::Done(value, len) => {
                    found.push(Found {
                        start: pos,
                        end: pos + len,
                        value,
                        partial: false,
                        after_gap: lost,
                    });
                    lost = false;
                    pos += len;
                }
                Read::Partial(value) => {
                    found.push(Found {
                        start: pos,
                        end,
                        value,
                        partial: true,
                        after_gap: lost,
                    });
                    break;
                }
                Read::Invalid(at) => {
                    budget = budget.saturating_sub(at + 1);
                    if budget == 0 {
                        return found;
                    }
                    lost = true;
                    resync = true;
                    pos += 1;
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;
