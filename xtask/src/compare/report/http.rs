//! The HTTP table: requests per second under each recorder, and the HTTP goals' figures.

use std::fmt::Write as _;

use super::{
    cells::{completeness_per_request, cpu_per_m, lost, payload_bytes_kept, rss},
    show, Doc, Stat,
};
use crate::compare::{
    tracer::{Captured, Tracer},
    workload::{self, Http},
};

impl Doc {
    pub fn http_skipped(&mut self, why: &str) {
        let _ = writeln!(self.compare, "\n**HTTP**: SKIPPED — {why}.\n");
    }

    pub fn http(
        &mut self,
        secs: u64,
        pinned: bool,
        tls: bool,
        samples: Vec<(Tracer, Vec<(Http, Captured)>)>,
    ) {
        if tls {
            let _ = writeln!(
                self.compare,
                "\n**HTTPS**: the same over TLS (`https://`; nginx's OpenSSL 3, a self-signed \
                 RSA certificate). recorderd records nginx's plaintext through its uprobes on \
                 `SSL_read`/`SSL_write` and the ciphertext's lengths; wrk, not recorded, \
                 passes through the same uprobes on its own OpenSSL calls.\n"
            );
        } else if pinned {
            let _ = writeln!(
                self.compare,
                "\n**HTTP, pinned**: the same, with wrk alone on CPU 0 (`taskset -c 0`) and \
                 nginx and the recorder sharing CPU 1 (`taskset -a -p -c 1`): what the \
                 recorder's CPU costs the server it records.\n"
            );
        } else {
            let _ = writeln!(
                self.compare,
                "\n**HTTP**: nginx (one process, `return 201` with a 164 B JSON body, access log \
                 off) on loopback under `{}`: POSTs of a 243 B JSON order. The recorders attach \
                 to nginx. Syscalls per request come from strace, which stops at every one.\n",
                workload::wrk_command(secs)
            );
        }
        let base = samples
            .iter()
            .find(|(t, _)| *t == Tracer::None)
            .and_then(|(_, runs)| Stat::of(runs.iter().map(|(h, _)| h.rate())));
        let reference = samples
            .iter()
            .find(|(t, _)| *t == Tracer::Strace)
            .and_then(|(_, runs)| {
                Stat::of(
                    runs.iter()
                        .map(|(h, c)| c.all_events as f64 / h.requests as f64),
                )
            });
        self.compare.push_str(
            "| recorder | requests/s | throughput vs untraced | added µs / request | recorder CPU µs / request | events / request | lost | payload bytes kept | disk bytes / MB payload | recorder CPU s / M events (after attach) | recorder peak RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for (tracer, runs) in &samples {
            let rate = Stat::of(runs.iter().map(|(h, _)| h.rate()));
            let ratio = base.and_then(|b| Stat::of(runs.iter().map(|(h, _)| h.rate() / b.median)));
            let added = base.and_then(|b| {
                Stat::of(
                    runs.iter()
                        .map(|(h, _)| (1.0 / h.rate() - 1.0 / b.median) * 1e6),
                )
            });
            // Set beside the time added per request. The recorder's CPU runs from its attach
            // to its exit: with `--priority background` that takes in the backlog it writes
            // after the load has ended.
            let cpu_per_request = Stat::of(
                runs.iter()
                    .map(|(h, c)| c.cpu_ns as f64 / 1e3 / h.requests as f64),
            );
            let per_request = Stat::of(
                runs.iter()
                    .map(|(h, c)| c.all_events as f64 / h.requests as f64),
            );
            let disk = Stat::of(
                runs.iter()
                    .map(|(h, c)| c.disk_bytes as f64 / (h.payload_bytes() as f64 / 1e6)),
            );
            if *tracer == Tracer::Recorderd && pinned {
                self.goals.http_pinned_ratio = ratio;
            }
            if *tracer == Tracer::Recorderd && !pinned && !tls {
                self.goals.http_ratio = ratio;
                self.goals.http_disk_ratio = Stat::of(
                    runs.iter()
                        .map(|(h, c)| c.disk_bytes as f64 / h.payload_bytes() as f64),
                );
            }
            let untraced = *tracer == Tracer::None;
            let captured: Vec<&Captured> = runs.iter().map(|(_, c)| c).collect();
            let _ = writeln!(
                self.compare,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                tracer.label(),
                show(rate, 0),
                if untraced { "1".into() } else { show(ratio, 3) },
                if untraced {
                    "—".into()
                } else {
                    show(added, 1)
                },
                if untraced {
                    "—".into()
                } else {
                    show(cpu_per_request, 1)
                },
                if untraced {
                    reference.map_or("—".into(), |r| format!("({:.2} syscalls)", r.median))
                } else {
                    completeness_per_request(per_request, reference)
                },
                if untraced {
                    "—".into()
                } else {
                    lost(&captured)
                },
                payload_bytes_kept(*tracer, &captured),
                if untraced {
                    "—".into()
                } else {
                    show(disk, 0)
                },
                cpu_per_m(&captured, untraced),
                rss(&captured, untraced),
            );
        }
    }
}
