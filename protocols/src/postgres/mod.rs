//! The client's messages are read in order, and each exchange they open takes the server's
//! messages up to the one that closes it (ReadyForQuery, or an ErrorResponse during startup):
//! the server answers strictly in order, so no timing is needed to pair them.
//!
//! An exchange is a simple Query, an extended query (everything from the first
//! Parse/Bind/Describe/Execute/Close up to Sync), the startup (StartupMessage and the
//! authentication messages that follow it), a Terminate, or a CancelRequest (kind "cancel",
//! never answered). SSLRequest/GSSENCRequest and their one-byte answers are not exchanges of
//! their own.

mod frame;

use std::collections::HashMap;

use frame::{Framer, Message, Stop};

use crate::exchange::{Detail, Exchange, PgError, Postgres};
use crate::stream::Stream;

const PROTOCOL_3: u32 = 196_608;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// Named prepared statements remembered per connection.
const MAX_STATEMENTS: usize = 4096;
/// Bind parameters kept per exchange, and characters kept per text parameter.
const MAX_PARAMS: usize = 256;
const MAX_PARAM_CHARS: usize = 256;
/// CommandComplete tags kept per exchange.
const MAX_TAGS: usize = 256;
/// A startup packet longer than this is not one (the server's own limit is 10000).
const MAX_STARTUP: u32 = 10_000;

/// The client's first bytes are a StartupMessage (protocol 3.0), an SSLRequest, a
/// GSSENCRequest or a CancelRequest. Needs 8 bytes.
pub fn looks_like_startup(bytes: &[u8]) -> bool {
    let (Some(len), Some(code)) = (be_u32(bytes, 0), be_u32(bytes, 4)) else {
        return false;
    };
    match code {
        PROTOCOL_3 => (9..=MAX_STARTUP).contains(&len),
        SSL_REQUEST | GSSENC_REQUEST => len == 8,
        CANCEL_REQUEST => len == 16,
        _ => false,
    }
}

/// The exchanges of one PostgreSQL connection, in the client's order.
pub fn parse(client: &Stream, server: &Stream) -> Vec<Exchange> {
    let mut requests = Framer::new(client, looks_like_startup(client.bytes()));
    let mut answers = Framer::new(server, false);
    let mut statements: HashMap<Vec<u8>, String> = HashMap::new();
    let mut out: Vec<Ex> = Vec::new();
    // An extended query whose Sync has not come yet.
    let mut open: Option<Ex> = None;

    while let Some(msg) = requests.next_message() {
        let body = &client.bytes()[msg.body.clone()];
        match msg.tag {
            0 => match be_u32(body, 0) {
                Some(SSL_REQUEST | GSSENC_REQUEST) => {
                    if answers.answer_byte().is_some() {
                        requests.expect_untyped();
                    }
                }
                Some(CANCEL_REQUEST) => {
                    out.push(begin(client, &msg, "cancel"));
                }
                _ => {
                    let mut ex = begin(client, &msg, "startup");
                    ex.pg.sql = startup_text(body);
                    answer(&mut answers, &mut ex, true);
                    out.push(ex);
                }
            },
            b'Q' | b'F' => {
                flush_unsynced(&mut open, &mut out);
                let mut ex = begin(client, &msg, "query");
                ex.pg.sql = if msg.tag == b'Q' {
                    lossy(cstr(body, &mut 0).unwrap_or(body))
                } else {
                    "<function call>".to_string()
                };
                answer(&mut answers, &mut ex, false);
                out.push(ex);
            }
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' | b'S' => {
                let ex = match open.as_mut() {
                    Some(ex) => {
                        add_request(ex, &msg);
                        ex
                    }
                    None => open.insert(begin(client, &msg, "extended")),
                };
                extended(&mut ex.pg, msg.tag, body, &mut statements);
                if msg.tag == b'S' {
                    if let Some(mut ex) = open.take() {
                        answer(&mut answers, &mut ex, false);
                        out.push(ex);
                    }
                }
            }
            b'X' => {
                flush_unsynced(&mut open, &mut out);
                out.push(begin(client, &msg, "terminate"));
            }
            // Password/SASL messages, COPY data and anything unknown belong to the exchange
            // they follow.
            _ => {
                if let Some(ex) = open.as_mut().or(out.last_mut()) {
                    add_request(ex, &msg);
                }
            }
        }
    }
    if let Some(mut ex) = open.take() {
        ex.incomplete = true;
        out.push(ex);
    }
    if requests.stopped == Some(Stop::Cut) {
        if let Some(last) = out.last_mut() {
            // The message the gap cut may have belonged to the last exchange.
            last.incomplete |= last.response_ns.is_none();
        }
    }
    out.into_iter().map(Ex::into_exchange).collect()
}

/// An exchange being built: [`Exchange`]'s fields with the detail still typed.
struct Ex {
    request_ns: u64,
    response_ns: Option<u64>,
    request_bytes: u64,
    response_bytes: u64,
    incomplete: bool,
    pg: Postgres,
}

impl Ex {
    fn into_exchange(self) -> Exchange {
        Exchange {
            request_ns: self.request_ns,
            response_ns: self.response_ns,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            incomplete: self.incomplete,
            detail: Detail::Postgres(self.pg),
        }
    }
}

/// An exchange opened by `msg`, answered by nothing yet.
fn begin(client: &Stream, msg: &Message, kind: &str) -> Ex {
    Ex {
        request_ns: client.time_at(msg.start).unwrap_or(0),
        response_ns: None,
        request_bytes: msg.held(),
        response_bytes: 0,
        incomplete: msg.partial,
        pg: Postgres {
            kind: kind.to_string(),
            ..Postgres::default()
        },
    }
}

fn add_request(ex: &mut Ex, msg: &Message) {
    ex.request_bytes += msg.held();
    ex.incomplete |= msg.partial;
}

/// An extended query cut short by a simple Query or Terminate: the server never answers it.
fn flush_unsynced(open: &mut Option<Ex>, out: &mut Vec<Ex>) {
    if let Some(ex) = open.take() {
        out.push(ex);
    }
}

/// Folds one extended-protocol message into the open exchange.
fn extended(pg: &mut Postgres, tag: u8, body: &[u8], statements: &mut HashMap<Vec<u8>, String>) {
    let mut at = 0;
    match tag {
        b'P' => {
            let (Some(name), Some(sql)) = (cstr(body, &mut at), cstr(body, &mut at)) else {
                return;
            };
            let sql = lossy(sql);
            if statements.len() < MAX_STATEMENTS || statements.contains_key(name) {
                statements.insert(name.to_vec(), sql.clone());
            }
            if pg.sql.is_empty() {
                pg.sql = sql;
            }
        }
        b'B' => {
            let (Some(_portal), Some(statement)) = (cstr(body, &mut at), cstr(body, &mut at))
            else {
                return;
            };
            if pg.sql.is_empty() {
                if let Some(sql) = statements.get(statement) {
                    pg.sql = sql.clone();
                }
            }
            if pg.params.is_empty() {
                pg.params = bind_params(body, at);
            }
        }
        b'D' | b'C' => {
            let Some((&kind, rest)) = body.split_first() else {
                return;
            };
            let Some(name) = cstr(rest, &mut at) else {
                return;
            };
            if kind == b'S' {
                if pg.sql.is_empty() {
                    if let Some(sql) = statements.get(name) {
                        pg.sql = sql.clone();
                    }
                }
                if tag == b'C' {
                    statements.remove(name);
                }
            }
        }
        _ => {}
    }
}

/// Bind's parameter values (after portal and statement names), shown as text.
fn bind_params(body: &[u8], mut at: usize) -> Vec<Option<String>> {
    let mut params = Vec::new();
    let Some(formats) = be_u16(body, at) else {
        return params;
    };
    let formats = formats as usize;
    let codes_at = at + 2;
    at = codes_at + 2 * formats;
    let Some(count) = be_u16(body, at) else {
        return params;
    };
    at += 2;
    for index in 0..count as usize {
        if params.len() == MAX_PARAMS {
            break;
        }
        let Some(len) = be_u32(body, at) else {
            break;
        };
        at += 4;
        if len == u32::MAX {
            params.push(None);
            continue;
        }
        let Some(value) = at
            .checked_add(len as usize)
            .and_then(|end| body.get(at..end))
        else {
            break;
        };
        at += value.len();
        let format = match formats {
            0 => 0,
            1 => be_u16(body, codes_at).unwrap_or(0),
            _ => be_u16(body, codes_at + 2 * index).unwrap_or(0),
        };
        params.push(Some(if format == 1 {
            format!("<{} bytes>", value.len())
        } else {
            preview(value, MAX_PARAM_CHARS)
        }));
    }
    params
}

/// Takes the server's messages for `ex` up to the one that closes it.
fn answer(answers: &mut Framer<'_>, ex: &mut Ex, startup: bool) {
    let server = answers.stream();
    while let Some(msg) = answers.next_message() {
        ex.response_bytes += msg.held();
        ex.incomplete |= msg.partial;
        let body = &server.bytes()[msg.body.clone()];
        let pg = &mut ex.pg;
        match msg.tag {
            b'D' => pg.rows += 1,
            b'C' => {
                let tag = lossy(cstr(body, &mut 0).unwrap_or(body));
                let counted = tag_rows(&tag);
                if pg.tags.len() < MAX_TAGS {
                    pg.tags.push(tag);
                }
                pg.rows = pg.rows.max(counted);
            }
            b'E' if pg.error.is_none() => pg.error = Some(error_fields(body)),
            _ => {}
        }
        if msg.tag == b'Z' || (startup && msg.tag == b'E') {
            ex.response_ns = server.time_at(msg.end.saturating_sub(1));
            return;
        }
    }
    // The answer's end is not in the recording.
    ex.incomplete = true;
}

/// The row count a CommandComplete tag ends with ("SELECT 3", "INSERT 0 1"); 0 for others.
fn tag_rows(tag: &str) -> u64 {
    let mut words = tag.split_ascii_whitespace();
    let (Some(_command), Some(last)) = (words.next(), words.next_back()) else {
        return 0;
    };
    last.parse().unwrap_or(0)
}

fn error_fields(body: &[u8]) -> PgError {
    let mut error = PgError::default();
    let mut at = 0;
    while let Some(&field) = body.get(at) {
        if field == 0 {
            break;
        }
        at += 1;
        let Some(value) = cstr(body, &mut at) else {
            break;
        };
        match field {
            // `V` (never localized) wins over `S`.
            b'V' => error.severity = lossy(value),
            b'S' if error.severity.is_empty() => error.severity = lossy(value),
            b'C' => error.code = lossy(value),
            b'M' => error.message = lossy(value),
            _ => {}
        }
    }
    error
}

/// "user=U database=D" from a StartupMessage's parameters (the database defaults to the
/// user, as the server does).
fn startup_text(body: &[u8]) -> String {
    let mut at = 4;
    let (mut user, mut database) = (None, None);
    while let Some(key) = cstr(body, &mut at) {
        if key.is_empty() {
            break;
        }
        let Some(value) = cstr(body, &mut at) else {
            break;
        };
        match key {
            b"user" => user = Some(lossy(value)),
            b"database" => database = Some(lossy(value)),
            _ => {}
        }
    }
    match (user, database) {
        (Some(user), Some(database)) => format!("user={user} database={database}"),
        (Some(user), None) => format!("user={user} database={user}"),
        (None, Some(database)) => format!("database={database}"),
        (None, None) => String::new(),
    }
}

/// A NUL-terminated string at `*at`; moves `*at` past the NUL.
fn cstr<'b>(body: &'b [u8], at: &mut usize) -> Option<&'b [u8]> {
    let rest = body.get(*at..)?;
    let len = memchr::memchr(0, rest)?;
    *at += len + 1;
    Some(&rest[..len])
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Text cut to `max` characters, control characters escaped.
fn preview(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for (count, ch) in String::from_utf8_lossy(bytes).chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests;
