//! Cells the tables share: added time per syscall against untraced, completeness, loss,
//! CPU and memory, and the per-workload data table built from them.

use std::fmt::Write as _;

use super::{show, Stat};
use crate::compare::{
    tracer::{Captured, Tracer, BPFTRACE_STRLEN},
    Sample,
};

const HEADER: &str = "| recorder | throughput vs untraced | added ns / syscall | events / syscalls made | payloads kept whole | lost | disk bytes / MB payload | recorder CPU s / M events (after attach) | recorder start-up CPU s | recorder peak RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";

/// Added ns per syscall of `tracer` against the untraced median, one value per rep.
pub(super) fn added_ns(samples: &[(Tracer, Vec<Sample>)], tracer: Tracer) -> Option<Stat> {
    let base = base_elapsed(samples)?;
    let runs = &samples.iter().find(|(t, _)| *t == tracer)?.1;
    Stat::of(
        runs.iter()
            .map(|s| (s.report.elapsed_ns as f64 - base) / s.report.syscalls.max(1) as f64),
    )
}

/// `tracer`'s median elapsed time over untraced's.
pub(super) fn elapsed_ratio(samples: &[(Tracer, Vec<Sample>)], tracer: Tracer) -> Option<f64> {
    let base = base_elapsed(samples)?;
    let runs = &samples.iter().find(|(t, _)| *t == tracer)?.1;
    Stat::of(runs.iter().map(|s| s.report.elapsed_ns as f64)).map(|s| s.median / base)
}

fn base_elapsed(samples: &[(Tracer, Vec<Sample>)]) -> Option<f64> {
    let runs = &samples.iter().find(|(t, _)| *t == Tracer::None)?.1;
    Stat::of(runs.iter().map(|s| s.report.elapsed_ns as f64)).map(|s| s.median)
}

pub(super) fn data_table(samples: &[(Tracer, Vec<Sample>)], skip_floors: bool) -> String {
    let mut out = String::from(HEADER);
    let base = base_elapsed(samples);
    for (tracer, runs) in samples {
        if skip_floors && matches!(tracer, Tracer::Floor(_)) {
            continue;
        }
        let captured: Vec<&Captured> = runs.iter().map(|s| &s.captured).collect();
        if *tracer == Tracer::None {
            let elapsed = Stat::of(runs.iter().map(|s| s.report.elapsed_ns as f64 / 1e6));
            let per_call = Stat::of(
                runs.iter()
                    .map(|s| s.report.elapsed_ns as f64 / s.report.syscalls.max(1) as f64),
            );
            let _ = writeln!(
                out,
                "| untraced | 1 ({} ms a run) | ({} ns per syscall) | — | — | — | — | — | — | — |",
                show(elapsed, 1),
                show(per_call, 0)
            );
            continue;
        }
        let ratio =
            base.and_then(|b| Stat::of(runs.iter().map(|s| b / s.report.elapsed_ns.max(1) as f64)));
        let disk =
            Stat::of(runs.iter().map(|s| {
                s.captured.disk_bytes as f64 / (s.report.payload_bytes.max(1) as f64 / 1e6)
            }));
        let whole = if captured.iter().all(|c| c.whole_payloads.is_some()) {
            let min = runs
                .iter()
                .map(|s| {
                    s.captured.whole_payloads.unwrap_or(0) as f64 / s.report.syscalls.max(1) as f64
                })
                .fold(f64::INFINITY, f64::min);
            format!("{:.2} %", 100.0 * min)
        } else if *tracer == Tracer::Bpftrace {
            format!("first {BPFTRACE_STRLEN} B only")
        } else if *tracer == Tracer::Perf {
            "no payloads".into()
        } else {
            "yes (text)".into()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {whole} | {} | {} | {} | {} | {} |",
            tracer.label(),
            show(ratio, 3),
            show(added_ns(samples, *tracer), 0),
            completeness(runs),
            lost(&captured),
            show(disk, 0),
            cpu_per_m(&captured, false),
            startup_cpu(&captured),
            rss(&captured, false),
        );
    }
    out
}

/// The worst run's events / syscalls made.
pub(super) fn completeness(runs: &[Sample]) -> String {
    let Some(worst) = runs.iter().min_by(|a, b| {
        let ratio = |s: &Sample| s.captured.events as f64 / s.report.syscalls.max(1) as f64;
        ratio(a).total_cmp(&ratio(b))
    }) else {
        return "—".into();
    };
    format!(
        "{} / {} ({:.2} %)",
        worst.captured.events,
        worst.report.syscalls,
        100.0 * worst.captured.events as f64 / worst.report.syscalls.max(1) as f64
    )
}

pub(super) fn completeness_per_request(
    per_request: Option<Stat>,
    reference: Option<Stat>,
) -> String {
    match (per_request, reference) {
        (Some(p), Some(r)) if r.median > 0.0 => {
            format!(
                "{:.2} ({:.1} % of strace's)",
                p.median,
                100.0 * p.median / r.median
            )
        }
        (Some(p), _) => format!("{:.2}", p.median),
        _ => "—".into(),
    }
}

/// The payload bytes a recorder kept, of those the events moved: recorderd's share (median
/// over the runs), or what another recorder keeps by design.
pub(super) fn payload_bytes_kept(tracer: Tracer, captured: &[&Captured]) -> String {
    match tracer {
        Tracer::None => "—".into(),
        Tracer::Bpftrace => format!("first {BPFTRACE_STRLEN} B only"),
        Tracer::Perf => "no payloads".into(),
        Tracer::Strace => "yes (text)".into(),
        _ => {
            let share = Stat::of(
                captured
                    .iter()
                    .filter(|c| c.payload_moved > 0)
                    .map(|c| 100.0 * c.payload_kept as f64 / c.payload_moved as f64),
            );
            format!("{} %", show(share, 1))
        }
    }
}

pub(super) fn lost(captured: &[&Captured]) -> String {
    let lost = captured.iter().map(|c| c.lost).sum::<u64>();
    match captured.iter().filter(|c| c.killed).count() {
        0 => lost.to_string(),
        n => format!("{lost} ({n} run(s) ignored SIGINT for 30 s and were killed)"),
    }
}

pub(super) fn cpu_per_m(captured: &[&Captured], untraced: bool) -> String {
    if untraced {
        return "—".into();
    }
    show(cpu_s_per_m(captured), 2)
}

/// The recorder's CPU-seconds per million events it wrote down, over the runs.
pub(super) fn cpu_s_per_m(captured: &[&Captured]) -> Option<Stat> {
    Stat::of(
        captured
            .iter()
            .filter(|c| c.all_events > 0)
            .map(|c| c.cpu_ns as f64 / 1e9 / (c.all_events as f64 / 1e6)),
    )
}

/// The recorders' start-up CPU (before they were attached), in seconds.
pub(super) fn startup_cpu(captured: &[&Captured]) -> String {
    show(
        Stat::of(captured.iter().map(|c| c.startup_cpu_ns as f64 / 1e9)),
        2,
    )
}

pub(super) fn rss(captured: &[&Captured], untraced: bool) -> String {
    if untraced {
        return "—".into();
    }
    let max = captured.iter().map(|c| c.max_rss_kib).max().unwrap_or(0);
    format!("{:.1} MiB", max as f64 / 1024.0)
}
