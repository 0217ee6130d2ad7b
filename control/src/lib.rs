//! What `recorder start/stop/status` and the service say over the control socket: one JSON
//! request line from the client, one JSON response line from the service, then close.
//! The service side lives in recorder-daemon's `service`; the client is [`ask`].

/// Sending a request and reading the answer.
pub mod client;

pub use client::{ask, ControlError};

use serde::{Deserialize, Serialize};

/// The longest request line the service reads; anything longer is refused unread.
pub const MAX_REQUEST_BYTES: u64 = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Record one process (`pid`) or a configured target (`target`) for `for_secs` seconds
    /// (the service's default duration when absent).
    Start {
        pid: Option<u32>,
        target: Option<String>,
        for_secs: Option<u64>,
    },
    /// Stop the recording whose id starts with `id`.
    Stop {
        id: String,
    },
    Status,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Error {
        message: String,
    },
    Started {
        recording: RecordingStatus,
        /// What the requester should know about the target, one line each (such as a
        /// 32-bit program's syscalls being counted, not recorded).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notices: Vec<String>,
    },
    Stopped {
        recording: StoppedRecording,
    },
    Status {
        version: String,
        recordings_dir: String,
        max_concurrent: usize,
        recordings: Vec<RecordingStatus>,
        /// The uploads to object storage; absent when `[upload]` has no bucket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload: Option<UploadStatus>,
    },
}

/// The service's uploads to object storage, as `recorder status` shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// `s3://bucket`
    pub bucket: String,
    /// Segments waiting to be uploaded, and their bytes.
    pub queued: u64,
    pub queued_bytes: u64,
    /// The segment being uploaded now.
    pub in_flight: Option<String>,
    /// Segments uploaded and confirmed since the service started.
    pub uploaded: u64,
    /// Segments dropped from the queue (full, or deleted locally first) since the start.
    pub dropped: u64,
    /// Unsealed segments refused under `require_sealed` since the start.
    pub refused: u64,
    /// The last failure, until an upload succeeds: `<time> <what failed>`.
    pub last_error: Option<String>,
    /// The last audit log entry shipped.
    pub audit_shipped_seq: u64,
}

/// A recording the service is running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    pub id: String,
    /// What is recorded, in words.
    pub target: String,
    /// The first segment file.
    pub path: String,
    pub started: String,
    /// Seconds until the recording stops by itself.
    pub remaining_secs: u64,
    pub events: u64,
    /// Who asked for it: a user name, or `uid N` when the uid has no name.
    pub requested_by: String,
}

/// A recording that has ended and been finished with its trailer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedRecording {
    pub id: String,
    pub end_reason: String,
    pub events: u64,
    pub lost: u64,
    pub paths: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let start = Request::Start {
            pid: Some(42),
            target: None,
            for_secs: Some(600),
        };
        let line = serde_json::to_string(&start).unwrap();
        assert_eq!(
            line,
            r#"{"op":"start","pid":42,"target":null,"for_secs":600}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), start);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"status"}"#).unwrap(),
            Request::Status
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"stop","id":"ab","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
    }
}
