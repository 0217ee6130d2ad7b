//! Renders recording frames as a readable timeline, one line per frame (`recorder inspect`).

use std::fmt::Write as _;

use recorder_proto::v1::{
    process, resource::Kind, ClockBase, Event, Header, Loss, Payload, Process, Trailer,
};

use recorder_syscalls::{by_name, sockaddr, View};

/// `inspect --stacks`: a stack's frames under its event.
pub mod stack;

/// Bytes of payload shown in a preview.
const PREVIEW_BYTES: usize = 48;

/// Converts monotonic event times to wall-clock times with the header's clock base.
#[derive(Clone, Copy, Default)]
pub struct Clock {
    base: Option<(u64, i64)>,
}

impl Clock {
    pub fn new(base: Option<&ClockBase>) -> Self {
        Clock {
            base: base.map(|b| (b.monotonic_ns, b.realtime_ns)),
        }
    }

    /// `13:15:02.123456` (UTC), or seconds since boot when there is no clock base.
    pub fn format(&self, mono_ns: u64) -> String {
        let Some((mono_base, real_base)) = self.base else {
            return format!(
                "{}.{:06}",
                mono_ns / 1_000_000_000,
                mono_ns % 1_000_000_000 / 1000
            );
        };
        let real_ns = real_base
            .saturating_add(mono_ns as i64 - mono_base as i64)
            .max(0) as u64;
        let secs_of_day = real_ns / 1_000_000_000 % 86_400;
        format!(
            "{:02}:{:02}:{:02}.{:06}",
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60,
            real_ns % 1_000_000_000 / 1000
        )
    }
}

impl Clock {
    /// RFC 3339 UTC with microseconds (`2026-12-03T13:15:02.123456Z`); seconds since boot
    /// without a clock base.
    pub fn rfc3339(&self, mono_ns: u64) -> String {
        let Some((mono_base, real_base)) = self.base else {
            return self.format(mono_ns);
        };
        let real_ns = real_base
            .saturating_add(mono_ns as i64 - mono_base as i64)
            .max(0) as u64;
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(real_ns);
        humantime::format_rfc3339_micros(at).to_string()
    }
}

pub fn header(header: &Header) -> String {
    let target = header.target.clone().unwrap_or_default();
    let mut what = if target.command.is_empty() {
        format!("pid {:?}", target.pids)
    } else {
        format!("`{}` (pid {:?})", target.command.join(" "), target.pids)
    };
    if !target.cgroup.is_empty() {
        let _ = write!(what, ", cgroup {}", target.cgroup);
    }
    if !target.comm.is_empty() {
        let _ = write!(what, ", programs named {}", target.comm);
    }
    if !target.follow {
        what.push_str(", children not followed");
    }
    let mut line = format!(
        "recording {} segment {} — {} on {} ({}), recorder {}",
        header.recording_id,
        header.segment_seq,
        what,
        header.host,
        header.kernel,
        header.recorder_version
    );
    // What the recording's kernel could not give, so that an absence is not read as
    // "did not happen".
    for lacking in header.limits.iter().flat_map(|limits| &limits.unavailable) {
        let _ = write!(line, "\n  unavailable on this kernel: {lacking}");
    }
    line
}

pub fn event(clock: &Clock, event: &Event) -> String {
    let mut line = format!(
        "{}  {}/{}  {:<9} ",
        clock.format(event.mono_ns),
        event.pid,
        event.tid,
        event.syscall
    );
    if let Some(tls) = &event.tls {
        let _ = write!(line, "tls {} ", tls.library);
    }
    let view = by_name(&event.syscall).map_or(View::Descriptor, |row| row.view);
    match view {
        View::Open { flags_arg } => {
            let _ = write!(line, "{:?}", event.path);
            if let Some(&flags) = flags_arg.and_then(|arg| event.args.get(arg)) {
                let _ = write!(line, " {}", open_flags(flags));
            }
            let _ = write!(line, " → {}", result(event.ret, "fd "));
        }
        View::Exec => {
            let _ = write!(line, "{:?} {:?}", event.path, event.argv);
            if event.argv_truncated {
                line.push_str(" (argv cut)");
            }
            if !event.redactions.is_empty() {
                line.push_str(" (argv redacted)");
            }
            let _ = write!(line, " → {}", result(event.ret, ""));
        }
        View::Exit => {
            let _ = write!(
                line,
                "status {}",
                event.args.first().map_or(0, |&s| s as i32)
            );
        }
        View::Socket => {
            let family = event.args.first().map_or(0, |&a| a as u32);
            let socket_type = event.args.get(1).map_or(0, |&a| a as u32);
            let _ = write!(
                line,
                "{} {} → {}",
                sockaddr::family_name(family),
                sockaddr::type_name(socket_type),
                result(event.ret, "fd ")
            );
        }
        View::Pair if event.new_fds.len() == 2 => {
            let fds = &event.new_fds;
            let _ = write!(line, "→ fds {} and {}", fds[0], fds[1]);
        }
        _ => {
            if event.fd >= 0 {
                let _ = write!(line, "fd {}", event.fd);
            }
            if !event.path.is_empty() {
                if event.fd >= 0 {
                    line.push(' ');
                }
                let _ = write!(line, "{:?}", event.path);
                if !event.new_path.is_empty() {
                    let _ = write!(line, " → {:?}", event.new_path);
                }
            }
            // The address argument says more than the fd's resource (which holds it anyway).
            if let Some(address) = &event.address {
                let _ = write!(line, " {}", sockaddr::display(address));
                if let Some(port) = chosen_port(event, address) {
                    let _ = write!(line, " (port {port} chosen by the kernel)");
                }
            } else if let Some(name) = resource_name(event).filter(|_| event.fd >= 0) {
                let _ = write!(line, " ({name})");
            }
            if event.tls.is_some() && event.ret <= 0 {
                // The library's own result (0, -1, GNUTLS_E_*), not an errno.
                let _ = write!(line, " → {} (no bytes)", event.ret);
            } else {
                let _ = write!(line, " → {}", result(event.ret, ""));
            }
        }
    }
    if let Some(payload) = &event.payload {
        let _ = write!(line, "  {}", payload_preview(payload));
    }
    line
}

pub fn loss(clock: &Clock, loss: &Loss) -> String {
    let mut line = format!(
        "{}  LOST between here and {}: {} syscalls, {} payload chunks, {} unstashed enters, {} process records",
        clock.format(loss.from_mono_ns),
        clock.format(loss.to_mono_ns),
        loss.syscalls,
        loss.payload_chunks,
        loss.stash_failures,
        loss.process_events
    );
    // What else the frame counts, each said only when there is some.
    let notes = [
        (
            loss.payloads_shed,
            "payloads shed under load (their events are kept)",
        ),
        (
            loss.lost_syscall_payload_bytes,
            "payload bytes moved by the lost syscalls",
        ),
        (loss.stacks_lost, "syscalls recorded without their stack"),
        (
            loss.holds_forced,
            "streams' held bytes decided early by the memory bound (masked where undecided)",
        ),
        (
            loss.compat_syscalls,
            "32-bit syscalls skipped (not decoded)",
        ),
    ];
    for (count, what) in notes {
        if count > 0 {
            let _ = write!(line, "; {count} {what}");
        }
    }
    // Only after a failed write: keeps the usual line as it was.
    if loss.unwritten_frames > 0 {
        let _ = write!(
            line,
            ", {} records not written (disk full or write error)",
            loss.unwritten_frames
        );
    }
    line
}

pub fn process(clock: &Clock, process: &Process) -> String {
    let what = match process.kind() {
        process::Kind::Fork if process.followed => format!("started process {}", process.child_pid),
        process::Kind::Fork => format!("started process {} (not followed)", process.child_pid),
        process::Kind::Thread => format!("started thread {}", process.child_pid),
        process::Kind::ThreadExit => "thread exited".to_owned(),
        process::Kind::Exit => match (process.exit_code, process.signal) {
            (Some(code), _) => format!("process exited with status {code}"),
            (None, Some(signal)) => format!("process killed by signal {signal}"),
            (None, None) => "process exited".to_owned(),
        },
        process::Kind::Attach => format!("recording this process from here ({})", process.reason),
        process::Kind::Compat => {
            "makes 32-bit syscalls from here: they are counted, not recorded".to_owned()
        }
        process::Kind::Unspecified => "process event".to_owned(),
    };
    format!(
        "{}  {}/{}  {:<9} {what}",
        clock.format(process.mono_ns),
        process.pid,
        process.tid,
        "[process]"
    )
}

pub fn trailer(trailer: &Trailer) -> String {
    let losses = trailer.losses.unwrap_or_default();
    let lost = recorder_store::loss::total(&losses);
    let mut line = format!(
        "end: {}; {} events, {} of {} payload bytes kept ({} lost, {} past the cap, {} TLS ciphertext not kept, {} payloads shed), {} redactions, {} records lost",
        trailer.end_reason,
        trailer.events,
        trailer.payload_bytes,
        trailer.payload_bytes_moved,
        trailer.payload_bytes_lost,
        trailer.payload_bytes_capped,
        trailer.payload_bytes_omitted,
        losses.payloads_shed,
        trailer.redactions,
        lost
    );
    if losses.holds_forced > 0 {
        let _ = write!(
            line,
            ", {} holds decided early by the memory bound",
            losses.holds_forced
        );
    }
    line
}

fn resource_name(event: &Event) -> Option<String> {
    let resource = event.resource.as_ref()?;
    match (resource.kind(), &resource.local, &resource.peer) {
        (Kind::Unknown, ..) => Some("unknown".to_owned()),
        (Kind::Socket, Some(local), Some(peer)) => Some(format!(
            "{} {} → {}",
            resource.name,
            sockaddr::display(local),
            sockaddr::display(peer)
        )),
        (Kind::Socket, None, Some(peer)) => {
            Some(format!("{} → {}", resource.name, sockaddr::display(peer)))
        }
        (Kind::Socket, Some(local), None) => {
            Some(format!("{} {}", resource.name, sockaddr::display(local)))
        }
        _ => Some(resource.name.clone()),
    }
}

/// The port the kernel gave a socket bound to port 0 (the fd's local address says it).
fn chosen_port(event: &Event, address: &recorder_proto::v1::SocketAddress) -> Option<u32> {
    if event.syscall != "bind" || address.port != 0 || event.ret < 0 {
        return None;
    }
    let local = event.resource.as_ref()?.local.as_ref()?;
    (local.port != 0).then_some(local.port)
}

fn result(ret: i64, prefix: &str) -> String {
    if ret < 0 {
        format!("-{}", errno_name(-ret))
    } else {
        format!("{prefix}{ret}")
    }
}

fn errno_name(errno: i64) -> String {
    let name = match errno as i32 {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EPIPE => "EPIPE",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("errno {errno}"),
    };
    name.to_owned()
}

fn open_flags(flags: u64) -> String {
    let flags = flags as i32;
    let mut names = vec![match flags & libc::O_ACCMODE {
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_RDONLY",
    }];
    for (bit, name) in [
        (libc::O_CREAT, "O_CREAT"),
        (libc::O_EXCL, "O_EXCL"),
        (libc::O_TRUNC, "O_TRUNC"),
        (libc::O_APPEND, "O_APPEND"),
        (libc::O_NONBLOCK, "O_NONBLOCK"),
        (libc::O_DIRECTORY, "O_DIRECTORY"),
        (libc::O_CLOEXEC, "O_CLOEXEC"),
    ] {
        if flags & bit != 0 {
            names.push(name);
        }
    }
    names.join("|")
}

/// The whole captured payload as `xxd`-style lines: offset, 16 hex bytes, ASCII.
pub fn hex_dump(data: &[u8]) -> String {
    let mut dump = String::new();
    for (line, chunk) in data.chunks(16).enumerate() {
        let _ = write!(dump, "    {:08x}  ", line * 16);
        for i in 0..16 {
            match chunk.get(i) {
                Some(byte) => {
                    let _ = write!(dump, "{byte:02x} ");
                }
                None => dump.push_str("   "),
            }
        }
        let ascii: String = chunk
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        let _ = writeln!(dump, " {ascii}");
    }
    dump
}

/// `[11 B] "hello\n"`, with ` (truncated)` / ` (incomplete)` when the capture says so.
pub fn payload_preview(payload: &Payload) -> String {
    let mut text = String::new();
    for &byte in payload.data.iter().take(PREVIEW_BYTES) {
        match byte {
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            b'"' => text.push_str("\\\""),
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(byte as char),
            _ => {
                let _ = write!(text, "\\x{byte:02x}");
            }
        }
    }
    let more = if payload.data.len() > PREVIEW_BYTES {
        "…"
    } else {
        ""
    };
    let mut preview = format!("[{} B] \"{text}\"{more}", payload.length);
    if payload.truncated {
        preview.push_str(" (truncated)");
    }
    if payload.omitted_bytes > 0 {
        preview.push_str(" (TLS ciphertext, not kept: its plaintext is recorded)");
    } else if payload.tls_ciphertext {
        preview.push_str(" (TLS ciphertext)");
    } else if payload.tls_not_decrypted {
        preview.push_str(" (TLS ciphertext, not decrypted: no probed TLS library moved it)");
    }
    if payload.shed {
        let _ = write!(
            preview,
            " (shed under load: {} B not kept)",
            payload.lost_bytes
        );
    } else if payload.incomplete {
        let _ = write!(preview, " (incomplete: {} B not kept)", payload.lost_bytes);
    }
    if !payload.redactions.is_empty() {
        let mut rules: Vec<&str> = payload.redactions.iter().map(|r| r.rule.as_str()).collect();
        rules.dedup();
        let _ = write!(preview, " (redacted: {})", rules.join(", "));
    }
    preview
}

#[cfg(test)]
mod tests;
