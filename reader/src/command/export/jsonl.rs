//! `--format jsonl`: one JSON object per frame, schema in docs/FORMAT.md ("JSON lines
//! export"). Fields are only ever added to this schema.

use std::{io::Write, process::ExitCode};

use base64::Engine as _;
use recorder_proto::v1::{
    frame::Body, payload::Direction, process, resource::Kind, ClockBase, Event, Header, Loss,
    Process, Redaction, Stack, Trailer,
};
use serde_json::{json, Value};

use recorder_store::{catalog::RecordingSummary, Keyring};
use recorder_syscalls::{boundary_of, sockaddr, Boundary};

use super::super::CommandError;

/// Bytes of payload in `utf8_preview`.
const PREVIEW_BYTES: usize = 256;

pub fn run(
    recording: &RecordingSummary,
    keyring: &Keyring,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    let mut clock: Option<ClockBase> = None;
    super::super::walk(recording, keyring, false, |segment, body| {
        let value = match body {
            Body::Header(h) => {
                clock = h.clock;
                header(segment, h)
            }
            Body::Event(e) => event(segment, clock.as_ref(), e),
            Body::Loss(l) => loss(segment, l),
            Body::Process(p) => process(segment, clock.as_ref(), p),
            Body::Trailer(t) => trailer(segment, t),
            Body::Stack(s) => stack(segment, s),
        };
        writeln!(out, "{value}")?;
        Ok(())
    })
}

fn header(segment: u32, h: &Header) -> Value {
    let target = h.target.clone().unwrap_or_default();
    let limits = h.limits.clone().unwrap_or_default();
    let redaction = h.redaction.clone().unwrap_or_default();
    let clock = h.clock.unwrap_or_default();
    json!({
        "type": "header", "segment": segment, "recording_id": h.recording_id, "segment_seq": h.segment_seq,
        "host": h.host, "kernel": h.kernel, "boot_id": h.boot_id, "recorder_version": h.recorder_version,
        "arch": h.arch,
        "target": { "pids": target.pids, "command": target.command, "follow": target.follow,
                    "cgroup": target.cgroup, "comm": target.comm },
        "limits": { "max_payload_bytes": limits.max_payload_bytes, "ring_bytes": limits.ring_bytes,
                    "tls": limits.tls, "tls_libraries": limits.tls_libraries,
                    "stack_depth": limits.stack_depth, "unavailable": limits.unavailable,
                    "priority": limits.priority },
        "redaction": {
            "enabled": redaction.enabled, "rules": redaction.rules, "pii": redaction.pii,
            "detectors": redaction.detectors, "detectors_off": redaction.detectors_off,
            "hold_back_bytes": redaction.hold_back_bytes, "hold_back_ms": redaction.hold_back_ms,
        },
        "clock": { "monotonic_ns": clock.monotonic_ns, "realtime_ns": clock.realtime_ns },
    })
}

fn event(segment: u32, clock: Option<&ClockBase>, e: &Event) -> Value {
    let resource = e.resource.as_ref().map(|r| {
        let kind = match r.kind() {
            Kind::File => "file",
            Kind::Socket => "socket",
            Kind::Pipe => "pipe",
            Kind::Other => "other",
            Kind::Unknown => "unknown",
        };
        json!({
            "kind": kind, "name": r.name, "peer": r.peer.as_ref().map(sockaddr::display),
            "local": r.local.as_ref().map(sockaddr::display),
            "socket_family": r.socket_family, "socket_type": r.socket_type,
            "socket_family_name": sockaddr::family_name(r.socket_family),
            "socket_type_name": sockaddr::type_name(r.socket_type),
        })
    });
    let payload = e.payload.as_ref().map(|p| {
        let direction = match p.direction() {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::Unspecified => "unspecified",
        };
        let preview = &p.data[..p.data.len().min(PREVIEW_BYTES)];
        json!({
            "direction": direction, "length": p.length, "truncated": p.truncated, "incomplete": p.incomplete,
            "lost_bytes": p.lost_bytes, "capped_bytes": p.capped_bytes, "shed": p.shed,
            "tls_ciphertext": p.tls_ciphertext, "omitted_bytes": p.omitted_bytes,
            "tls_not_decrypted": p.tls_not_decrypted,
            "base64": base64::engine::general_purpose::STANDARD.encode(&p.data),
            "utf8_preview": String::from_utf8_lossy(preview),
            "redactions": redactions(&p.redactions),
        })
    });
    let boundary = match boundary_of(e) {
        Boundary::File => "file",
        Boundary::Net => "net",
        Boundary::Process => "process",
    };
    json!({
        "type": "event", "segment": segment, "mono_ns": e.mono_ns, "time": wall_time(clock, e.mono_ns),
        "duration_ns": e.duration_ns, "pid": e.pid, "tid": e.tid, "syscall": e.syscall, "syscall_nr": e.syscall_nr,
        "boundary": boundary,
        // Raw arguments are often pointers above 2^53, which JSON numbers cannot hold exactly.
        "args": e.args.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(),
        "ret": e.ret, "fd": e.fd, "resource": resource,
        "path": (!e.path.is_empty()).then_some(&e.path), "path_truncated": e.path_truncated,
        "new_path": (!e.new_path.is_empty()).then_some(&e.new_path),
        "address": e.address.as_ref().map(sockaddr::display), "payload": payload,
        "argv": e.argv, "argv_truncated": e.argv_truncated, "new_fds": e.new_fds,
        "redactions": redactions(&e.redactions),
        "tls": e.tls.as_ref().map(|t| json!({ "library": t.library })),
        "stack_id": (e.stack_id != 0).then_some(e.stack_id), "stack_lost": e.stack_lost,
    })
}

fn stack(segment: u32, s: &Stack) -> Value {
    let frames: Vec<Value> = s
        .frames
        .iter()
        .map(|f| {
            json!({
                "function": (!f.function.is_empty()).then_some(&f.function),
                "file": (!f.file.is_empty()).then_some(&f.file),
                "line": (f.line != 0).then_some(f.line),
                "module": (!f.module.is_empty()).then_some(&f.module),
                "build_id": (!f.build_id.is_empty()).then(|| crate::timeline::stack::hex(&f.build_id)),
                "file_offset": (!f.build_id.is_empty()).then(|| format!("{:#x}", f.file_offset)),
                "address": (f.address != 0).then(|| format!("{:#x}", f.address)),
                "elf_address": (f.elf_address != 0).then(|| format!("{:#x}", f.elf_address)),
                "named_by": (!f.named_by.is_empty()).then_some(&f.named_by),
                "from_stack_top": f.from_stack_top,
            })
        })
        .collect();
    json!({ "type": "stack", "segment": segment, "id": s.id, "frames": frames })
}

fn redactions(list: &[Redaction]) -> Vec<Value> {
    list.iter()
        .map(
            |r| json!({ "rule": r.rule, "offset": r.offset, "length": r.length, "field": r.field }),
        )
        .collect()
}

fn process(segment: u32, clock: Option<&ClockBase>, p: &Process) -> Value {
    let kind = match p.kind() {
        process::Kind::Fork => "fork",
        process::Kind::Thread => "thread",
        process::Kind::ThreadExit => "thread_exit",
        process::Kind::Exit => "exit",
        process::Kind::Attach => "attach",
        process::Kind::Compat => "compat",
        process::Kind::Unspecified => "unspecified",
    };
    json!({
        "type": "process", "segment": segment, "mono_ns": p.mono_ns, "time": wall_time(clock, p.mono_ns),
        "kind": kind, "pid": p.pid, "tid": p.tid, "child_pid": p.child_pid, "followed": p.followed,
        "exit_code": p.exit_code, "signal": p.signal, "reason": p.reason,
    })
}

fn loss(segment: u32, l: &Loss) -> Value {
    json!({
        "type": "loss", "segment": segment, "from_mono_ns": l.from_mono_ns, "to_mono_ns": l.to_mono_ns,
        "syscalls": l.syscalls, "payload_chunks": l.payload_chunks, "stash_failures": l.stash_failures,
        "process_events": l.process_events, "unwritten_frames": l.unwritten_frames,
        "payloads_shed": l.payloads_shed, "lost_syscall_payload_bytes": l.lost_syscall_payload_bytes,
        "stacks_lost": l.stacks_lost, "holds_forced": l.holds_forced,
        "compat_syscalls": l.compat_syscalls,
    })
}

fn trailer(segment: u32, t: &Trailer) -> Value {
    let losses = t.losses.unwrap_or_default();
    json!({
        "type": "trailer", "segment": segment, "events": t.events, "payload_bytes": t.payload_bytes,
        "payload_bytes_moved": t.payload_bytes_moved, "payload_bytes_lost": t.payload_bytes_lost,
        "payload_bytes_capped": t.payload_bytes_capped, "payload_bytes_omitted": t.payload_bytes_omitted,
        "losses": { "syscalls": losses.syscalls, "payload_chunks": losses.payload_chunks,
                    "stash_failures": losses.stash_failures, "process_events": losses.process_events,
                    "unwritten_frames": losses.unwritten_frames, "payloads_shed": losses.payloads_shed,
                    "lost_syscall_payload_bytes": losses.lost_syscall_payload_bytes,
                    "holds_forced": losses.holds_forced, "compat_syscalls": losses.compat_syscalls },
        "end_reason": t.end_reason, "end_mono_ns": t.end_mono_ns, "redactions": t.redactions,
    })
}

/// RFC 3339 wall-clock time with nanoseconds, from the segment's clock base.
fn wall_time(clock: Option<&ClockBase>, mono_ns: u64) -> Option<String> {
    let clock = clock?;
    let real_ns = clock
        .realtime_ns
        .checked_add(mono_ns as i64 - clock.monotonic_ns as i64)?;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(real_ns).ok()?);
    Some(humantime::format_rfc3339_nanos(at).to_string())
}
