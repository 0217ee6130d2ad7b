//! Recordings in S3-compatible object storage (docs/OPERATIONS.md, "Fleet"):
//!
//! ```text
//! service:  finished segments ─▶ queue (persisted in <dir>/.upload) ─▶ upload ─▶ bucket
//!           audit.log's new lines ─▶ audit_shipping ─▶ bucket
//! recorder: s3://bucket/prefix ─▶ remote (list, segments read by ranges) ─▶ the same commands
//! ```
//!
//! Keys are idempotent: a segment always goes to the same key, so an upload repeated after
//! a crash replaces the object with the same bytes instead of adding one.

/// Where to connect and with which credentials.
pub mod connect;
/// The AWS shared credentials and config files.
pub mod profile;
/// Object keys: where a segment and an audit piece go.
pub mod layout;
/// The service's upload queue, persisted beside the recordings.
pub mod queue;
/// The service's uploader: the queue worked off, and the audit log shipped.
pub mod upload;
/// One segment into the bucket, and checked against it.
pub mod transfer;
/// The audit log's new lines, shipped as objects of their own.
pub mod audit_shipping;
/// Reading from a bucket: listing recordings, segments by ranges, the shipped audit log.
pub mod remote;

pub use connect::{ConnectError, Settings};
pub use remote::{Address, Remote};

/// An object store error in one line, without the server's response body (which can quote
/// the request) and with S3's error code when the server gave one.
pub fn describe(error: &object_store::Error) -> String {
    use object_store::Error;
    // The variants that name a path say it again in their source: keep the source.
    let text = match error {
        Error::NotFound { source, .. }
        | Error::AlreadyExists { source, .. }
        | Error::Precondition { source, .. }
        | Error::PermissionDenied { source, .. }
        | Error::Unauthenticated { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    let text = without_url(&without_timing(&text));
    let code = between(&text, "<Code>", "</Code>");
    let head = text.split(['<', '\n']).next().unwrap_or_default();
    let head = head.trim().trim_end_matches(':').trim();
    let mut line: String = head.chars().take(300).collect();
    if let Some(code) = code {
        line.push_str(&format!(" ({code})"));
    }
    line
}

/// `Error performing PUT http://host/bucket/key: …` without the address, which the
/// caller names better (`PUT: …`).
fn without_url(text: &str) -> String {
    const PERFORMING: &str = "Error performing ";
    let Some(start) = text.find(PERFORMING) else {
        return text.to_owned();
    };
    let rest = &text[start + PERFORMING.len()..];
    let mut words = rest.splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some(method), Some(url), rest) if url.contains("://") => {
            let rest = rest.unwrap_or_default().trim_start_matches(['-', ' ']);
            format!("{}{method}: {rest}", &text[..start])
        }
        _ => text.to_owned(),
    }
}

/// The text without object_store's `in 34.9ms - ` (how long the request took), so two
/// reports of the same failure read the same.
fn without_timing(text: &str) -> String {
    let Some(start) = text.find(" in ") else {
        return text.to_owned();
    };
    match text[start + 4..].find(" - ") {
        Some(end) if !text[start + 4..start + 4 + end].contains(' ') => {
            format!("{}:{}", &text[..start], &text[start + 4 + end + 2..])
        }
        _ => text.to_owned(),
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_code_and_lose_the_body() {
        let error = object_store::Error::Generic {
            store: "S3",
            source: "Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><StringToSign>AWS4-HMAC-SHA256 request</StringToSign></Error>".into(),
        };
        let line = describe(&error);
        assert!(
            line.ends_with("403 Forbidden (SignatureDoesNotMatch)"),
            "{line}"
        );
        assert!(!line.contains("StringToSign"), "{line}");
        let timed = "Error performing HEAD http://h/b/k in 34.9ms - HTTP error: refused";
        assert_eq!(
            without_timing(timed),
            "Error performing HEAD http://h/b/k: HTTP error: refused"
        );
        assert_eq!(
            without_url(&without_timing(timed)),
            "HEAD: HTTP error: refused"
        );
    }
}
