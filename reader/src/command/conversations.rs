//! `recorder conversations ID`: per connection, its protocol and peer, then one line per
//! exchange (HTTP request, SQL query, Redis command, DNS question). `--json` prints one
//! object per connection (schema in docs/FORMAT.md, "Conversations").

use std::{fmt::Write as _, io::Write, process::ExitCode, time::Duration};

use recorder_proto::v1::SocketAddress;
use recorder_protocols::{exchange, Detail, Exchange, Protocol};
use recorder_store::{catalog::RecordingSummary, Keyring};
use recorder_syscalls::sockaddr;
use serde_json::{json, Value};

use crate::{
    connections::{Opened, Tls},
    conversations::{analyse, Conversation},
    timeline::Clock,
};

use super::CommandError;

/// `--proto` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtoFilter {
    /// HTTP/1.x and HTTP/2.
    Http,
    Http1,
    Http2,
    Postgres,
    Redis,
    Dns,
}

impl ProtoFilter {
    fn admits(self, protocol: Protocol) -> bool {
        match self {
            ProtoFilter::Http => matches!(protocol, Protocol::Http1 | Protocol::Http2),
            ProtoFilter::Http1 => protocol == Protocol::Http1,
            ProtoFilter::Http2 => protocol == Protocol::Http2,
            ProtoFilter::Postgres => protocol == Protocol::Postgres,
            ProtoFilter::Redis => protocol == Protocol::Redis,
            ProtoFilter::Dns => protocol == Protocol::Dns,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub proto: Option<ProtoFilter>,
    pub pid: Option<u32>,
    /// Only exchanges that took at least this long (or never got an answer).
    pub slow: Option<Duration>,
    /// Only exchanges that failed by their protocol's word.
    pub errors: bool,
}

impl Filter {
    /// Whether to print a connection at all (before its exchanges are filtered).
    fn admits_connection(&self, conversation: &Conversation) -> bool {
        // A socket that moved nothing (a resolver's probe, a listener) has nothing to say.
        let moved = conversation.connection.bytes() != (0, 0);
        moved
            && self
                .pid
                .is_none_or(|pid| conversation.connection.pid == pid)
            && self
                .proto
                .is_none_or(|proto| conversation.protocol.is_some_and(|p| proto.admits(p)))
    }

    /// Exchange filters on: connections with no exchange left are not shown.
    fn filters_exchanges(&self) -> bool {
        self.slow.is_some() || self.errors || self.proto.is_some()
    }

    fn admits(&self, exchange: &Exchange) -> bool {
        let slow_enough = self.slow.is_none_or(|slow| {
            exchange
                .latency_ns()
                .is_none_or(|latency| latency >= slow.as_nanos() as u64)
        });
        slow_enough && (!self.errors || exchange.is_error())
    }
}

pub fn run(
    recording: &RecordingSummary,
    keyring: &Keyring,
    filter: &Filter,
    json_lines: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    let super::Reassembled {
        code,
        clock,
        connections,
        lost_syscalls,
        unplaced_tls_events,
    } = super::connections_of(recording, keyring)?;
    for connection in &connections {
        let conversation = analyse(connection);
        if !filter.admits_connection(&conversation) {
            continue;
        }
        let exchanges: Vec<&Exchange> = conversation
            .exchanges
            .iter()
            .filter(|e| filter.admits(e))
            .collect();
        if exchanges.is_empty() && filter.filters_exchanges() {
            continue;
        }
        if json_lines {
            let value = connection_json(&conversation, &exchanges, &clock);
            writeln!(out, "{value}")?;
        } else {
            writeln!(out, "{}", connection_line(&conversation))?;
            for exchange in exchanges {
                writeln!(out, "  {}", exchange_line(exchange, &clock))?;
            }
        }
    }
    // Said after the list (on stderr with --json, which stays one object per line).
    let mut notes = Vec::new();
    if lost_syscalls > 0 {
        notes.push(format!(
            "{lost_syscalls} syscall records were lost in this recording (recorder inspect shows where): connections may lack bytes or exchanges"
        ));
    }
    if unplaced_tls_events > 0 {
        notes.push(format!(
            "{unplaced_tls_events} TLS plaintext payloads have no known descriptor and are in no connection"
        ));
    }
    for note in notes {
        if json_lines {
            eprintln!("recorder: note: {note}");
        } else {
            writeln!(out, "note: {note}")?;
        }
    }
    Ok(code)
}

/// `#2 pid 812 tcp 127.0.0.1:41872 → 127.0.0.1:8000 (connected) http1: 3 exchanges`.
fn connection_line(conversation: &Conversation) -> String {
    let c = conversation.connection;
    let mut line = format!(
        "#{} pid {} fd {} {}",
        c.index,
        c.pid,
        c.fd,
        c.transport.name()
    );
    let _ = write!(line, " {} → {}", address(&c.local), address(&c.peer));
    let _ = write!(line, " ({})", opened_name(c.opened));
    match &c.tls {
        Tls::Plaintext(library) => {
            let _ = write!(line, " tls plaintext from {library}");
        }
        Tls::NotDecrypted => line.push_str(" tls, not decrypted"),
        Tls::None => {}
    }
    let (sent, received) = c.bytes();
    match conversation.protocol {
        Some(protocol) => {
            let _ = write!(
                line,
                " {}: {} exchange(s), {} out, {} in",
                protocol.name(),
                conversation.exchanges.len(),
                size(sent),
                size(received)
            );
        }
        None => {
            let _ = write!(
                line,
                " protocol not recognised: {} out, {} in",
                size(sent),
                size(received)
            );
        }
    }
    let gaps = c.out.gaps().len() + c.incoming.gaps().len();
    if gaps > 0 {
        let _ = write!(line, "; {gaps} gap(s) where bytes are not in the recording");
    }
    line
}

fn exchange_line(exchange: &Exchange, clock: &Clock) -> String {
    let mut line = format!("{}  ", clock.format(exchange.request_ns));
    match &exchange.detail {
        Detail::Http(http) => {
            let _ = write!(line, "{} {}", http.method, http.target);
            match http.status {
                Some(status) => {
                    let _ = write!(line, " → {status} {}", http.reason);
                }
                None => line.push_str(" → (no response)"),
            }
        }
        Detail::Postgres(pg) => {
            let _ = write!(line, "{} {}", pg.kind, one_line(&pg.sql, 120));
            if !pg.params.is_empty() {
                let params: Vec<String> = pg
                    .params
                    .iter()
                    .map(|p| p.as_deref().map_or("NULL".to_owned(), |v| one_line(v, 40)))
                    .collect();
                let _ = write!(line, " [{}]", params.join(", "));
            }
            if let Some(error) = &pg.error {
                let _ = write!(
                    line,
                    " → ERROR {} {}",
                    error.code,
                    one_line(&error.message, 120)
                );
            } else if !pg.tags.is_empty() {
                let _ = write!(line, " → {} ({} rows)", pg.tags.join(", "), pg.rows);
            }
        }
        Detail::Redis(redis) => {
            let _ = write!(line, "{}", one_line(&redis.command.join(" "), 120));
            if !redis.reply_type.is_empty() {
                let _ = write!(
                    line,
                    " → {} {}",
                    redis.reply_type,
                    one_line(&redis.reply, 80)
                );
            }
        }
        Detail::Dns(dns) => {
            let _ = write!(line, "{} {}", dns.qtype, dns.name);
            match &dns.rcode {
                Some(rcode) => {
                    let _ = write!(line, " → {rcode}");
                    if !dns.answers.is_empty() {
                        let _ = write!(line, " {}", dns.answers.join(", "));
                    }
                }
                None => line.push_str(" → (no answer)"),
            }
        }
    }
    match exchange.latency_ns() {
        Some(latency) => {
            let _ = write!(line, "  {}", millis(latency));
        }
        None => line.push_str("  unanswered"),
    }
    let _ = write!(
        line,
        "  {} → {}",
        size(exchange.request_bytes),
        size(exchange.response_bytes)
    );
    if exchange.incomplete {
        line.push_str("  (incomplete: bytes missing from the recording)");
    }
    line
}

fn connection_json(conversation: &Conversation, exchanges: &[&Exchange], clock: &Clock) -> Value {
    let c = conversation.connection;
    let (sent, received) = c.bytes();
    let tls = match &c.tls {
        Tls::None => Value::Null,
        Tls::Plaintext(library) => json!({ "decrypted": true, "library": library }),
        Tls::NotDecrypted => json!({ "decrypted": false, "library": null }),
    };
    json!({
        "connection": c.index, "pid": c.pid, "fd": c.fd, "transport": c.transport.name(),
        "local": c.local.as_ref().map(sockaddr::display), "peer": c.peer.as_ref().map(sockaddr::display),
        "opened": opened_name(c.opened), "open_ns": c.open_ns, "close_ns": c.close_ns, "tls": tls,
        "protocol": conversation.protocol.map(Protocol::name),
        "bytes_out": sent, "bytes_in": received,
        "gaps": c.out.gaps().len() + c.incoming.gaps().len(),
        "exchanges": exchanges.iter().map(|e| exchange_json(e, clock)).collect::<Vec<_>>(),
    })
}

pub fn exchange_json(exchange: &Exchange, clock: &Clock) -> Value {
    let detail = match &exchange.detail {
        Detail::Http(http) => json!({
            "version": http.version, "stream_id": http.stream_id, "method": http.method,
            "target": http.target, "authority": http.authority, "status": http.status,
            "reason": http.reason,
            "request_headers": headers(&http.request_headers),
            "response_headers": headers(&http.response_headers),
            "request_body": body(&http.request_body), "response_body": body(&http.response_body),
        }),
        Detail::Postgres(pg) => json!({
            "kind": pg.kind, "sql": pg.sql, "params": pg.params, "tags": pg.tags, "rows": pg.rows,
            "error": pg.error.as_ref().map(|e| json!({ "severity": e.severity, "code": e.code, "message": e.message })),
        }),
        Detail::Redis(redis) => json!({
            "command": redis.command, "reply_type": redis.reply_type, "reply": redis.reply,
            "error": redis.error,
        }),
        Detail::Dns(dns) => json!({
            "id": dns.id, "name": dns.name, "type": dns.qtype, "rcode": dns.rcode, "answers": dns.answers,
        }),
    };
    json!({
        "protocol": exchange.protocol().name(),
        "request_ns": exchange.request_ns, "response_ns": exchange.response_ns,
        "time": clock.rfc3339(exchange.request_ns),
        "latency_ns": exchange.latency_ns(), "request_bytes": exchange.request_bytes,
        "response_bytes": exchange.response_bytes, "incomplete": exchange.incomplete,
        "error": exchange.is_error(),
        exchange.protocol().name(): detail,
    })
}

fn headers(list: &[(String, String)]) -> Vec<Value> {
    list.iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect()
}

fn body(body: &exchange::Body) -> Value {
    json!({
        "length": body.length, "recorded_bytes": body.bytes.len(), "complete": body.complete,
        "utf8_preview": String::from_utf8_lossy(&body.bytes[..body.bytes.len().min(256)]),
    })
}

pub fn opened_name(opened: Opened) -> &'static str {
    match opened {
        Opened::Connected => "connected",
        Opened::Accepted => "accepted",
        Opened::Created => "created",
        Opened::Existing => "existing",
    }
}

pub fn address(address: &Option<SocketAddress>) -> String {
    address
        .as_ref()
        .map_or_else(|| "?".to_owned(), sockaddr::display)
}

/// Printable, one line, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        line.push('…');
    }
    line
}

pub fn millis(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

pub fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use recorder_protocols::exchange::{Http, PgError, Postgres};

    use super::*;

    fn http(status: u16, latency_ms: u64) -> Exchange {
        Exchange {
            request_ns: 1_000_000,
            response_ns: Some(1_000_000 + latency_ms * 1_000_000),
            request_bytes: 80,
            response_bytes: 2048,
            incomplete: false,
            detail: Detail::Http(Http {
                version: "HTTP/1.1".into(),
                method: "GET".into(),
                target: "/pay".into(),
                status: Some(status),
                reason: "OK".into(),
                ..Http::default()
            }),
        }
    }

    #[test]
    fn slow_and_error_filters_pick_exchanges() {
        let slow = Filter {
            slow: Some(Duration::from_millis(100)),
            ..Filter::default()
        };
        assert!(slow.admits(&http(200, 150)));
        assert!(!slow.admits(&http(200, 20)));
        let unanswered = Exchange {
            response_ns: None,
            ..http(200, 0)
        };
        assert!(
            slow.admits(&unanswered),
            "no answer is slower than any bound"
        );
        let errors = Filter {
            errors: true,
            ..Filter::default()
        };
        assert!(errors.admits(&http(503, 1)) && errors.admits(&http(404, 1)));
        assert!(!errors.admits(&http(200, 1)));
    }

    #[test]
    fn exchange_lines_say_what_happened() {
        let clock = Clock::default();
        assert_eq!(
            exchange_line(&http(200, 12), &clock),
            "0.001000  GET /pay → 200 OK  12.000 ms  80 B → 2.0 KiB"
        );
        let failed = Exchange {
            detail: Detail::Postgres(Postgres {
                kind: "query".into(),
                sql: "SELECT *\nFROM nope".into(),
                error: Some(PgError {
                    code: "42P01".into(),
                    message: "relation \"nope\" does not exist".into(),
                    ..PgError::default()
                }),
                ..Postgres::default()
            }),
            incomplete: true,
            ..http(0, 1)
        };
        assert_eq!(
            exchange_line(&failed, &clock),
            "0.001000  query SELECT * FROM nope → ERROR 42P01 relation \"nope\" does not exist  1.000 ms  80 B → 2.0 KiB  (incomplete: bytes missing from the recording)"
        );
    }
}
