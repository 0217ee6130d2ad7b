//! `--format har`: HAR 1.2 (the HTTP Archive format browsers' devtools read), one entry per
//! HTTP/1.x or HTTP/2 exchange, with the timings the syscalls give: `send` from the
//! request's first byte to its last, `wait` until the response's first byte, `receive`
//! until its last. Redacted values stay masked (`*`). The log's comment names the recording.

use std::{io::Write, process::ExitCode};

use base64::Engine as _;
use recorder_protocols::{exchange::Body, Detail, Exchange};
use recorder_store::{catalog::RecordingSummary, Keyring};
use recorder_syscalls::sockaddr;
use serde_json::{json, Value};

use crate::{
    command::conversations::opened_name,
    connections::{Connection, Tls},
    conversations::analyse,
    timeline::Clock,
};

use super::super::CommandError;

/// The one page every entry belongs to (HAR viewers group entries by page).
const PAGE_ID: &str = "recording";

pub fn run(
    recording: &RecordingSummary,
    keyring: &Keyring,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    let super::super::Reassembled {
        code,
        clock,
        connections,
        ..
    } = super::super::connections_of(recording, keyring)?;
    let mut entries = Vec::new();
    let mut first_ns = None;
    for connection in &connections {
        for exchange in analyse(connection).exchanges {
            if let Detail::Http(_) = exchange.detail {
                first_ns = first_ns
                    .min(Some(exchange.request_ns))
                    .or(Some(exchange.request_ns));
                entries.push((exchange.request_ns, entry(connection, &exchange, &clock)));
            }
        }
    }
    entries.sort_by_key(|(at, _)| *at);
    let har = json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "recorder", "version": env!("CARGO_PKG_VERSION") },
            "comment": format!("recording {} (recorderd); timings are those of the recorded syscalls", recording.id),
            "pages": [{
                "startedDateTime": clock.rfc3339(first_ns.unwrap_or_default()),
                "id": PAGE_ID,
                "title": format!("recording {}", recording.id),
                "pageTimings": { "onContentLoad": -1, "onLoad": -1 },
            }],
            "entries": entries.into_iter().map(|(_, entry)| entry).collect::<Vec<_>>(),
        }
    });
    serde_json::to_writer_pretty(&mut *out, &har).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(code)
}

fn entry(connection: &Connection, exchange: &Exchange, clock: &Clock) -> Value {
    let Detail::Http(http) = &exchange.detail else {
        return Value::Null;
    };
    let version = if http.version == "HTTP/2" {
        "h2"
    } else {
        http.version.as_str()
    };
    let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
    let send = ms(exchange.request_ns, http.request_end_ns);
    let (wait, receive) = match (http.response_start_ns, exchange.response_ns) {
        (Some(start), Some(end)) => (ms(http.request_end_ns, start), ms(start, end)),
        _ => (0.0, 0.0),
    };
    let mut comment = format!(
        "pid {} fd {} connection #{} ({})",
        connection.pid,
        connection.fd,
        connection.index,
        opened_name(connection.opened)
    );
    if exchange.incomplete {
        comment.push_str("; incomplete: some bytes are not in the recording");
    }
    if http.status.is_none() {
        comment.push_str("; no response in the recording");
    }
    let mut entry = json!({
        "pageref": PAGE_ID,
        "startedDateTime": clock.rfc3339(exchange.request_ns),
        "time": send + wait + receive,
        "request": {
            "method": http.method,
            "url": url(connection, http),
            "httpVersion": version,
            "cookies": [],
            "headers": headers(&http.request_headers),
            "queryString": query(&http.target),
            "headersSize": -1,
            "bodySize": http.request_body.length,
        },
        "response": {
            "status": http.status.unwrap_or(0),
            "statusText": http.reason,
            "httpVersion": version,
            "cookies": [],
            "headers": headers(&http.response_headers),
            "content": content(&http.response_headers, &http.response_body),
            "redirectURL": header(&http.response_headers, "location").unwrap_or_default(),
            "headersSize": -1,
            "bodySize": http.response_body.length,
        },
        "cache": {},
        "timings": { "blocked": -1, "dns": -1, "connect": -1, "ssl": -1,
                     "send": send, "wait": wait, "receive": receive },
        "serverIPAddress": server_ip(connection),
        "connection": connection.index.to_string(),
        "comment": comment,
    });
    if !http.request_body.bytes.is_empty() {
        entry["request"]["postData"] = json!({
            "mimeType": header(&http.request_headers, "content-type").unwrap_or_default(),
            "text": String::from_utf8_lossy(&http.request_body.bytes),
        });
    }
    entry
}

/// The request's URL: an absolute target as sent, else scheme, authority (the Host
/// header, `:authority`, or the server's address) and target.
fn url(connection: &Connection, http: &recorder_protocols::exchange::Http) -> String {
    if http.target.contains("://") {
        return http.target.clone();
    }
    let scheme = if matches!(connection.tls, Tls::Plaintext(_)) {
        "https"
    } else {
        "http"
    };
    let authority = http
        .authority
        .clone()
        .or_else(|| server_address(connection).map(sockaddr::display))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{scheme}://{authority}{}", http.target)
}

/// The server's end of the connection: the peer when the process connected, its own
/// address when it accepted.
fn server_address(connection: &Connection) -> Option<&recorder_proto::v1::SocketAddress> {
    match connection.opened {
        crate::connections::Opened::Accepted => connection.local.as_ref(),
        _ => connection.peer.as_ref(),
    }
}

fn server_ip(connection: &Connection) -> String {
    server_address(connection)
        .and_then(|a| {
            let ip: std::net::IpAddr = match a.ip.len() {
                4 => <[u8; 4]>::try_from(a.ip.as_slice()).ok()?.into(),
                16 => <[u8; 16]>::try_from(a.ip.as_slice()).ok()?.into(),
                _ => return None,
            };
            Some(ip.to_string())
        })
        .unwrap_or_default()
}

fn headers(list: &[(String, String)]) -> Vec<Value> {
    list.iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect()
}

fn header(list: &[(String, String)], name: &str) -> Option<String> {
    list.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// `?a=1&b=2` as HAR's name/value list (values as sent, not percent-decoded).
fn query(target: &str) -> Vec<Value> {
    let Some((_, query)) = target.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            json!({ "name": name, "value": value })
        })
        .collect()
}

/// The response body: text when it is UTF-8, base64 otherwise.
fn content(headers: &[(String, String)], body: &Body) -> Value {
    let mime = header(headers, "content-type").unwrap_or_default();
    let mut content = match std::str::from_utf8(&body.bytes) {
        Ok(text) => json!({ "size": body.length, "mimeType": mime, "text": text }),
        Err(_) => json!({
            "size": body.length, "mimeType": mime, "encoding": "base64",
            "text": base64::engine::general_purpose::STANDARD.encode(&body.bytes),
        }),
    };
    if !body.complete {
        content["comment"] = json!(format!(
            "{} of {} bytes are in the recording",
            body.bytes.len(),
            body.length
        ));
    }
    content
}
