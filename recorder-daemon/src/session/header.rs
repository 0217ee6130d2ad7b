//! What a recording says about itself: the Header of its segments (host, kernel, target,
//! limits, redaction policy, clock base), and the words for what it records and who asked.

use recorder_capture::{target::Spawned, Capture, TlsCapture};
use recorder_proto::v1::{CaptureLimits, Header, Target};
use recorder_store::clock;

use crate::{
    options::Options,
    pipeline::redaction::{redact_command, Redactor},
};

/// The Header of every segment of the recording `options` describe.
pub fn header(
    options: &Options,
    redactor: &Redactor,
    spawned: Option<&Spawned>,
    capture: &Capture,
) -> Header {
    let mut pids = options.pids.clone();
    pids.extend(spawned.map(|child| child.pid));
    Header {
        recording_id: options.recording_id.clone(),
        segment_seq: 0,
        host: hostname(),
        kernel: kernel(),
        boot_id: boot_id(),
        recorder_version: env!("CARGO_PKG_VERSION").to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        target: Some(Target {
            pids,
            command: redact_command(&options.redaction, &options.command),
            follow: options.follow,
            cgroup: options.cgroup.clone().unwrap_or_default(),
            comm: options.comm.clone().unwrap_or_default(),
            requested_by: describe_requester(&options.requested_by),
        }),
        limits: Some(CaptureLimits {
            max_payload_bytes: options.limits.max_payload_bytes,
            ring_bytes: options.limits.ring_bytes,
            tls: match (options.limits.tls, capture.tls_unavailable()) {
                (TlsCapture::Off, _) => "off".to_owned(),
                (_, Some(why)) => format!("unavailable: {why}"),
                (TlsCapture::Plaintext, None) => "plaintext".to_owned(),
                (TlsCapture::PlaintextAndCiphertext, None) => "both".to_owned(),
            },
            tls_libraries: capture.tls_libraries().to_vec(),
            stack_depth: options.limits.stack_depth,
            unavailable: capture.unavailable().to_vec(),
            priority: options.priority.word().to_owned(),
        }),
        redaction: Some(redactor.header_policy()),
        clock: Some(clock::clock_base()),
    }
}

/// `alice (uid 1000) via sudo`, `bob (uid 1001) via the control socket`: who asked, from
/// the audit log's `by` object (`uid`, `user`, `sudo_user`, `via`).
pub fn describe_requester(by: &serde_json::Value) -> String {
    let uid = by["uid"].as_u64();
    let mut text = match (by["sudo_user"].as_str(), by["user"].as_str(), uid) {
        (Some(sudo_user), _, _) => format!("{sudo_user} via sudo"),
        (None, Some(user), Some(uid)) => format!("{user} (uid {uid})"),
        (None, None, Some(uid)) => format!("uid {uid}"),
        _ => return String::new(),
    };
    if let Some(via) = by["via"].as_str() {
        text.push_str(" via the ");
        text.push_str(via);
    }
    text
}

/// What is recorded, in words, for the start line, the audit log and `recorder status`.
/// A sealed recording's description says what kind of target it is and its pids, nothing
/// more: the command line, cgroup and program name are sealed in its Header, and these
/// lines stay on the host in the clear.
pub fn describe(options: &Options, pids: &[u32]) -> String {
    let sealed = options.seal.is_some();
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let mut what = Vec::new();
    if options.command.is_empty() {
        if !pids.is_empty() {
            what.push(format!("pid {}", pids.join(", ")));
        }
    } else if sealed {
        what.push(format!("a command, sealed (pid {})", pids.join(", ")));
    } else {
        let command = redact_command(&options.redaction, &options.command);
        what.push(format!("`{}` (pid {})", command.join(" "), pids.join(", ")));
    }
    if let Some(cgroup) = &options.cgroup {
        what.push(match sealed {
            true => "a cgroup, sealed".to_owned(),
            false => format!("cgroup {cgroup}"),
        });
    }
    if let Some(comm) = &options.comm {
        what.push(match sealed {
            true => "programs by name, sealed".to_owned(),
            false => format!("programs named {comm}"),
        });
    }
    let children = if options.follow {
        ""
    } else {
        " (not their children)"
    };
    format!("{}{children}", what.join(" and "))
}

/// 128 random bits as 32 lowercase hex digits.
pub fn new_recording_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
}

/// `uname -r` and `uname -v`.
fn kernel() -> String {
    format!(
        "{} {}",
        read_trimmed("/proc/sys/kernel/osrelease"),
        read_trimmed("/proc/sys/kernel/version")
    )
}

fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}
