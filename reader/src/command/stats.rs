//! `recorder stats ID`: a recording summed up — bytes per process and per peer, the busiest
//! files, and exchanges per protocol with latency percentiles. `--json` prints one object
//! (schema in docs/FORMAT.md, "Stats").

use std::{collections::BTreeMap, io::Write, process::ExitCode};

use hdrhistogram::Histogram;
use recorder_proto::v1::{frame::Body, payload::Direction, resource::Kind, Event};
use recorder_protocols::Protocol;
use recorder_store::{catalog::RecordingSummary, Keyring};
use serde_json::{json, Value};

use crate::{
    connections::{Connection, Connections},
    conversations::analyse,
};

use super::{
    conversations::{address, millis, size},
    CommandError,
};

/// Files listed in the summary, busiest first.
const TOP_FILES: usize = 10;

#[derive(Default)]
struct ProcessStats {
    program: String,
    events: u64,
    file_read: u64,
    file_written: u64,
    net_in: u64,
    net_out: u64,
}

#[derive(Default)]
struct PeerStats {
    connections: u64,
    bytes_out: u64,
    bytes_in: u64,
}

#[derive(Default)]
struct FileStats {
    opens: u64,
    read: u64,
    written: u64,
}

struct ProtocolStats {
    exchanges: u64,
    errors: u64,
    incomplete: u64,
    unanswered: u64,
    /// Latencies in nanoseconds.
    latency_ns: Histogram<u64>,
}

impl ProtocolStats {
    fn new() -> Self {
        ProtocolStats {
            exchanges: 0,
            errors: 0,
            incomplete: 0,
            unanswered: 0,
            // 3 significant digits, auto-resizing (up to 2^62 ns).
            latency_ns: Histogram::new(3).expect("3 significant figures is a valid histogram"),
        }
    }

    /// (p50, p90, p99, max) in nanoseconds, when any exchange was answered.
    fn percentiles(&self) -> Option<[u64; 4]> {
        let h = &self.latency_ns;
        (!h.is_empty()).then(|| {
            [
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.max(),
            ]
        })
    }
}

#[derive(Default)]
struct Stats {
    processes: BTreeMap<u32, ProcessStats>,
    peers: BTreeMap<String, PeerStats>,
    files: BTreeMap<String, FileStats>,
    protocols: BTreeMap<Protocol, ProtocolStats>,
}

impl Stats {
    fn event(&mut self, event: &Event) {
        let process = self.processes.entry(event.pid).or_default();
        process.events += 1;
        if !event.argv.is_empty() && event.ret >= 0 {
            process.program = event.path.clone();
        }
        let kind = event.resource.as_ref().map(|r| r.kind());
        let is_file = kind == Some(Kind::File);
        let is_socket = kind == Some(Kind::Socket) || event.tls.is_some();
        if event.syscall.starts_with("open") && event.ret >= 0 && !event.path.is_empty() {
            self.files.entry(event.path.clone()).or_default().opens += 1;
        }
        let Some(payload) = &event.payload else {
            return;
        };
        let out = payload.direction() == Direction::Out;
        if is_file {
            let name = event.resource.as_ref().map_or("", |r| r.name.as_str());
            let file = self.files.entry(name.to_owned()).or_default();
            let (total, per_file) = if out {
                (&mut process.file_written, &mut file.written)
            } else {
                (&mut process.file_read, &mut file.read)
            };
            *total = total.saturating_add(payload.length);
            *per_file = per_file.saturating_add(payload.length);
        } else if is_socket && (event.tls.is_some() || !payload.tls_ciphertext) {
            // Application bytes: plaintext of TLS calls, not the ciphertext under them.
            let total = if out {
                &mut process.net_out
            } else {
                &mut process.net_in
            };
            *total = total.saturating_add(payload.length);
        }
    }

    fn connection(&mut self, connection: &Connection) {
        let (sent, received) = connection.bytes();
        if (sent, received) == (0, 0) {
            return;
        }
        let peer = self.peers.entry(address(&connection.peer)).or_default();
        peer.connections += 1;
        // Saturating, as every sum of a recording's counts: a damaged file's can be anything.
        peer.bytes_out = peer.bytes_out.saturating_add(sent);
        peer.bytes_in = peer.bytes_in.saturating_add(received);
        let conversation = analyse(connection);
        for exchange in &conversation.exchanges {
            let stats = self
                .protocols
                .entry(exchange.protocol())
                .or_insert_with(ProtocolStats::new);
            stats.exchanges += 1;
            stats.errors += u64::from(exchange.is_error());
            stats.incomplete += u64::from(exchange.incomplete);
            match exchange.latency_ns() {
                Some(ns) => {
                    // Only a latency past 2^62 ns could fail to fit: it is clamped.
                    if stats.latency_ns.record(ns).is_err() {
                        stats.latency_ns.saturating_record(ns);
                    }
                }
                None => stats.unanswered += 1,
            }
        }
    }

    fn top_files(&self) -> Vec<(&String, &FileStats)> {
        let mut files: Vec<_> = self.files.iter().collect();
        files.sort_by_key(|(name, f)| (std::cmp::Reverse(f.read.saturating_add(f.written)), *name));
        files.truncate(TOP_FILES);
        files
    }
}

pub fn run(
    recording: &RecordingSummary,
    keyring: &Keyring,
    json_output: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    let mut stats = Stats::default();
    let mut connections = Connections::default();
    let code = super::walk(recording, keyring, false, |_, body| {
        if let Body::Event(event) = body {
            stats.event(event);
        }
        connections.visit(body);
        Ok(())
    })?;
    for connection in connections.finish() {
        stats.connection(&connection);
    }
    if json_output {
        writeln!(out, "{}", to_json(&stats))?;
    } else {
        write_text(&stats, out)?;
    }
    Ok(code)
}

fn write_text(stats: &Stats, out: &mut impl Write) -> Result<(), CommandError> {
    writeln!(
        out,
        "PROCESSES\n  {:>7}  {:>8}  {:>10}  {:>10}  {:>10}  {:>10}  PROGRAM",
        "PID", "EVENTS", "FILE READ", "FILE WRITE", "NET IN", "NET OUT"
    )?;
    for (pid, p) in &stats.processes {
        writeln!(
            out,
            "  {pid:>7}  {:>8}  {:>10}  {:>10}  {:>10}  {:>10}  {}",
            p.events,
            size(p.file_read),
            size(p.file_written),
            size(p.net_in),
            size(p.net_out),
            p.program
        )?;
    }
    writeln!(
        out,
        "PEERS\n  {:>11}  {:>10}  {:>10}  PEER",
        "CONNECTIONS", "OUT", "IN"
    )?;
    for (peer, p) in &stats.peers {
        writeln!(
            out,
            "  {:>11}  {:>10}  {:>10}  {peer}",
            p.connections,
            size(p.bytes_out),
            size(p.bytes_in)
        )?;
    }
    writeln!(
        out,
        "TOP FILES\n  {:>6}  {:>10}  {:>10}  PATH",
        "OPENS", "READ", "WRITTEN"
    )?;
    for (path, f) in stats.top_files() {
        writeln!(
            out,
            "  {:>6}  {:>10}  {:>10}  {path}",
            f.opens,
            size(f.read),
            size(f.written)
        )?;
    }
    writeln!(
        out,
        "EXCHANGES\n  {:<9}  {:>9}  {:>6}  {:>10}  {:>10}  {:>12}  {:>12}  {:>12}  {:>12}",
        "PROTOCOL", "EXCHANGES", "ERRORS", "INCOMPLETE", "UNANSWERED", "P50", "P90", "P99", "MAX"
    )?;
    for (protocol, p) in &stats.protocols {
        let [p50, p90, p99, max] = p.percentiles().map_or_else(
            || {
                [
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                ]
            },
            |ns| ns.map(millis),
        );
        writeln!(
            out,
            "  {:<9}  {:>9}  {:>6}  {:>10}  {:>10}  {p50:>12}  {p90:>12}  {p99:>12}  {max:>12}",
            protocol.name(),
            p.exchanges,
            p.errors,
            p.incomplete,
            p.unanswered
        )?;
    }
    Ok(())
}

fn to_json(stats: &Stats) -> Value {
    let processes: Vec<Value> = stats
        .processes
        .iter()
        .map(|(pid, p)| {
            json!({ "pid": pid, "program": p.program, "events": p.events,
            "file_bytes_read": p.file_read, "file_bytes_written": p.file_written,
            "net_bytes_in": p.net_in, "net_bytes_out": p.net_out })
        })
        .collect();
    let peers: Vec<Value> = stats
        .peers
        .iter()
        .map(|(peer, p)| {
            json!({ "peer": peer, "connections": p.connections,
            "bytes_out": p.bytes_out, "bytes_in": p.bytes_in })
        })
        .collect();
    let files: Vec<Value> = stats
        .top_files()
        .into_iter()
        .map(|(path, f)| json!({ "path": path, "opens": f.opens, "bytes_read": f.read, "bytes_written": f.written }))
        .collect();
    let protocols: Vec<Value> = stats
        .protocols
        .iter()
        .map(|(protocol, p)| {
            let latency = p.percentiles().map(|[p50, p90, p99, max]| {
                json!({ "p50_ns": p50, "p90_ns": p90, "p99_ns": p99, "max_ns": max })
            });
            json!({ "protocol": protocol.name(), "exchanges": p.exchanges, "errors": p.errors,
                "incomplete": p.incomplete, "unanswered": p.unanswered, "latency": latency })
        })
        .collect();
    json!({ "processes": processes, "peers": peers, "top_files": files, "protocols": protocols })
}

#[cfg(test)]
mod tests {
    use recorder_proto::v1::{Payload, Resource};

    use super::*;

    /// A damaged recording's payload counts can be anything; `recorder stats` saturates.
    #[test]
    fn counts_from_a_damaged_recording_saturate_rather_than_panic() {
        let mut stats = Stats::default();
        for kind in [Kind::File, Kind::File, Kind::Socket, Kind::Socket] {
            stats.event(&Event {
                pid: 7,
                syscall: "write".into(),
                resource: Some(Box::new(Resource {
                    kind: kind.into(),
                    name: "/f".into(),
                    ..Resource::default()
                })),
                payload: Some(Payload {
                    direction: Direction::Out.into(),
                    length: u64::MAX,
                    ..Payload::default()
                }),
                ..Event::default()
            });
        }
        let process = &stats.processes[&7];
        assert_eq!(
            (process.file_written, process.net_out),
            (u64::MAX, u64::MAX)
        );
        stats.files.get_mut("/f").unwrap().read = u64::MAX;
        assert_eq!(stats.top_files().len(), 1);
    }
}
