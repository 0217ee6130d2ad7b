//! Message heads: the cheap request-line test used for detection and resynchronisation,
//! and httparse's parse of a whole head into owned fields.

use super::reader::Framing;

/// Methods taken as the start of a request (RFC 9110, PATCH, and WebDAV's common ones).
const METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"REPORT",
    b"SEARCH",
];

/// Header fields kept per message; a head with more is not taken as HTTP.
const MAX_HEADERS: usize = 256;

/// What is there of `bytes` is consistent with a request line: a known method, a space, a
/// target without spaces or control bytes, then " HTTP/1." and a digit and the line's end.
pub(super) fn request_line_prefix(bytes: &[u8]) -> bool {
    let Some(rest) = METHODS.iter().find_map(|method| {
        bytes
            .strip_prefix(*method)
            .and_then(|rest| rest.strip_prefix(b" "))
    }) else {
        return false;
    };
    let target_len = rest
        .iter()
        .position(|&b| b == b' ' || b.is_ascii_control())
        .unwrap_or(rest.len());
    let Some(after) = rest.get(target_len..).filter(|after| !after.is_empty()) else {
        return true;
    };
    if target_len == 0 || after[0] != b' ' {
        return false;
    }
    let version: &[u8] = b" HTTP/1.";
    let n = after.len().min(version.len());
    if after[..n] != version[..n] {
        return false;
    }
    match &after[n..] {
        [] => true,
        [digit, tail @ ..] if digit.is_ascii_digit() => {
            matches!(tail, [] | [b'\n', ..] | [b'\r'] | [b'\r', b'\n', ..])
        }
        _ => false,
    }
}

/// A whole request line starts `bytes`: a safe place to resume after lost bytes.
pub(super) fn starts_request(bytes: &[u8]) -> bool {
    let line_end = memchr::memchr(b'\n', bytes).unwrap_or(bytes.len());
    line_end < bytes.len() && request_line_prefix(&bytes[..=line_end])
}

/// A status line "HTTP/1.x NNN" starts `bytes`.
pub(super) fn starts_response(bytes: &[u8]) -> bool {
    matches!(bytes, [b'H', b'T', b'T', b'P', b'/', b'1', b'.', v, b' ', a, b, c, ..]
        if v.is_ascii_digit() && [a, b, c].iter().all(|d| d.is_ascii_digit()))
}

/// A parsed head, owned.
#[derive(Debug, Default)]
pub(super) struct Head {
    /// "HTTP/1.0" or "HTTP/1.1".
    pub(super) version: String,
    pub(super) method: String,
    pub(super) target: String,
    pub(super) status: Option<u16>,
    pub(super) reason: String,
    pub(super) headers: Vec<(String, String)>,
    /// The head's length on the wire.
    pub(super) len: usize,
}

impl Head {
    fn values<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h str> + 'h {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last transfer coding is chunked; `None` when there is no Transfer-Encoding.
    fn chunked(&self) -> Option<bool> {
        let last = self.values("transfer-encoding").last()?;
        let coding = last.rsplit(',').next().unwrap_or("").trim();
        Some(coding.eq_ignore_ascii_case("chunked"))
    }

    /// Content-Length, when every value given agrees; `Err` when one is not a number.
    fn content_length(&self) -> Result<Option<u64>, ()> {
        let mut length = None;
        for value in self.values("content-length").flat_map(|v| v.split(',')) {
            let n: u64 = value.trim().parse().map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        }
        Ok(length)
    }

    /// A request's body framing: requests have a body only when they say so.
    pub(super) fn request_framing(&self) -> Framing {
        match self.chunked() {
            Some(true) => Framing::Chunked,
            Some(false) => Framing::Empty,
            None => match self.content_length() {
                Ok(Some(n)) => Framing::Length(n),
                _ => Framing::Empty,
            },
        }
    }

    /// A response's body framing, given the method of the request it answers.
    pub(super) fn response_framing(&self, method: &str) -> Framing {
        let status = self.status.unwrap_or(0);
        if method == "HEAD"
            || (100..200).contains(&status)
            || status == 204
            || status == 304
            || (method == "CONNECT" && (200..300).contains(&status))
        {
            return Framing::Empty;
        }
        match self.chunked() {
            Some(true) => Framing::Chunked,
            Some(false) => Framing::UntilEnd,
            None => match self.content_length() {
                Ok(Some(n)) => Framing::Length(n),
                _ => Framing::UntilEnd,
            },
        }
    }
}

fn version(minor: Option<u8>) -> String {
    format!("HTTP/1.{}", minor.unwrap_or(1))
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// What parsing a head at the cursor gave.
pub(super) enum Parsed {
    Head(Head),
    /// The run ends inside the head: what was read of its first line.
    Partial(Head),
    Garbage,
}

pub(super) fn request(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => Parsed::Head(Head {
            version: version(req.version),
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            headers: owned_headers(req.headers),
            len,
            ..Head::default()
        }),
        Ok(httparse::Status::Partial) if req.method.is_some() => Parsed::Partial(Head {
            version: version(req.version),
            method: req.method.unwrap_or("").to_string(),
            target: req.path.unwrap_or("").to_string(),
            len: bytes.len(),
            ..Head::default()
        }),
        _ => Parsed::Garbage,
    }
}

pub(super) fn response(bytes: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let parsed = httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .parse_response(&mut resp, bytes);
    match parsed {
        Ok(httparse::Status::Complete(len)) => Parsed::Head(Head {
            version: version(resp.version),
            status: resp.code,
            reason: resp.reason.unwrap_or("").to_string(),
            headers: owned_headers(resp.headers),
            len,
            ..Head::default()
        }),
        Ok(httparse::Status::Partial) if resp.code.is_some() => Parsed::Partial(Head {
            version: version(resp.version),
            status: resp.code,
            reason: resp.reason.unwrap_or("").to_string(),
            len: bytes.len(),
            ..Head::default()
        }),
        _ => Parsed::Garbage,
    }
}
