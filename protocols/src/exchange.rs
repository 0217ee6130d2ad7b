//! What the parsers find: exchanges (a request and its answer), protocol by protocol.
//!
//! Times are CLOCK_MONOTONIC nanoseconds of the recorded payloads (`Event.mono_ns`, taken at
//! the syscall's exit), so a latency is "from the syscall that moved the request's first
//! byte to the one that moved the answer's last byte".

/// The protocols the parsers know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Http1,
    Http2,
    Postgres,
    Redis,
    Dns,
}

impl Protocol {
    /// The name used by `--proto` and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::Postgres => "postgres",
            Protocol::Redis => "redis",
            Protocol::Dns => "dns",
        }
    }
}

/// One request and its answer (or a message with no answer, such as a PostgreSQL Terminate).
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// When the request's first byte moved.
    pub request_ns: u64,
    /// When the answer's last byte moved; `None` when no answer is in the recording.
    pub response_ns: Option<u64>,
    /// Bytes of the request and of the answer on the wire (headers and bodies, framing
    /// included), as far as the recording holds them.
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// A gap in the recording falls inside this exchange, or it was cut off by the
    /// recording's end: some of its fields may be missing or short.
    pub incomplete: bool,
    pub detail: Detail,
}

impl Exchange {
    /// Answer time, when there is an answer.
    pub fn latency_ns(&self) -> Option<u64> {
        self.response_ns
            .map(|end| end.saturating_sub(self.request_ns))
    }

    /// The exchange failed by its protocol's own word: HTTP status 400 and up, a
    /// PostgreSQL ErrorResponse, a Redis error reply, a DNS answer other than NOERROR.
    pub fn is_error(&self) -> bool {
        match &self.detail {
            Detail::Http(http) => http.status.is_some_and(|status| status >= 400),
            Detail::Postgres(pg) => pg.error.is_some(),
            Detail::Redis(redis) => redis.error.is_some(),
            Detail::Dns(dns) => dns.rcode.as_deref().is_some_and(|rcode| rcode != "NOERROR"),
        }
    }

    pub fn protocol(&self) -> Protocol {
        match &self.detail {
            Detail::Http(http) if http.version == "HTTP/2" => Protocol::Http2,
            Detail::Http(_) => Protocol::Http1,
            Detail::Postgres(_) => Protocol::Postgres,
            Detail::Redis(_) => Protocol::Redis,
            Detail::Dns(_) => Protocol::Dns,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    Http(Http),
    Postgres(Postgres),
    Redis(Redis),
    Dns(Dns),
}

/// An HTTP request and response (HTTP/1.x or HTTP/2).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Http {
    /// "HTTP/1.1", "HTTP/1.0" or "HTTP/2".
    pub version: String,
    /// HTTP/2 stream id; 0 for HTTP/1.x.
    pub stream_id: u32,
    pub method: String,
    /// The request target as sent (path and query; `:path` in HTTP/2).
    pub target: String,
    /// `Host` (HTTP/1.x) or `:authority` (HTTP/2), when sent.
    pub authority: Option<String>,
    /// Header fields in order, as recorded (redacted values stay masked). HTTP/2
    /// pseudo-headers are not in this list.
    pub request_headers: Vec<(String, String)>,
    pub request_body: Body,
    /// `None` when no response head is in the recording.
    pub status: Option<u16>,
    pub reason: String,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Body,
    /// When the request's last byte moved, and the response's first (a HAR entry's `send`
    /// and `wait`); `request_ns` and `None` when the recording does not say.
    pub request_end_ns: u64,
    pub response_start_ns: Option<u64>,
}

/// A message body, decoded from its transfer framing (chunked, HTTP/2 DATA frames).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Body {
    /// The body's bytes as far as the recording holds them.
    pub bytes: Vec<u8>,
    /// The body's length on the wire after transfer decoding, when known (Content-Length,
    /// or the sum of chunks/DATA frames seen); may exceed `bytes.len()` when bytes are missing.
    pub length: u64,
    /// Every byte of the body is in `bytes`.
    pub complete: bool,
}

/// A PostgreSQL query: a simple Query, or an extended query's Parse/Bind/Execute up to Sync.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Postgres {
    /// "query" (simple), "extended" (Parse/Bind/Execute), "startup", "terminate".
    pub kind: String,
    /// The SQL text as recorded (already redacted); for "startup" the user and database.
    pub sql: String,
    /// Bind parameters shown as text (binary ones as `<N bytes>`, NULL as None).
    pub params: Vec<Option<String>>,
    /// CommandComplete tags in order ("CREATE TABLE", "INSERT 0 1", "SELECT 3").
    pub tags: Vec<String>,
    /// Rows: DataRow messages received (or the count in the last tag when larger).
    pub rows: u64,
    pub error: Option<PgError>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PgError {
    /// Severity (`S`/`V`), SQLSTATE (`C`) and message (`M`) fields of the ErrorResponse.
    pub severity: String,
    pub code: String,
    pub message: String,
}

/// A Redis command and its reply.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redis {
    /// The command's words (the first upper-cased), each cut to a printable preview.
    pub command: Vec<String>,
    /// RESP type of the reply: "simple-string", "error", "integer", "bulk-string", "array",
    /// "null", "map", "set", "double", "boolean", "verbatim-string", "big-number", "push",
    /// "attribute"; empty when no reply was recorded.
    pub reply_type: String,
    /// A short printable preview of the reply.
    pub reply: String,
    /// The error reply's text, when the reply is an error.
    pub error: Option<String>,
}

/// A DNS query and its answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dns {
    pub id: u16,
    /// The first question's name and type ("example.com", "A").
    pub name: String,
    pub qtype: String,
    /// The answer's response code ("NOERROR", "NXDOMAIN", ...); `None` with no answer.
    pub rcode: Option<String>,
    /// Answer records as "TYPE data" ("A 10.0.0.1", "CNAME x.example.").
    pub answers: Vec<String>,
}
