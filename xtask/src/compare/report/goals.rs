//! The goals table: each goal marked met or not met, with the figure it was judged on.

use std::fmt::Write as _;

use super::{show, size_name, Added, Doc};

impl Doc {
    pub(super) fn goals_text(&self) -> String {
        let mut out = String::from("| goal | figure | result |\n| --- | --- | --- |\n");
        let mut row = |goal: &str, figure: String, met: Option<bool>| {
            let result = match met {
                Some(true) => "met",
                Some(false) => "**not met**",
                None => "not measured",
            };
            let _ = writeln!(out, "| {goal} | {figure} | {result} |");
        };
        let g = &self.goals;
        row(
            "HTTP throughput ≥ 0.95 of untraced",
            show(g.http_ratio, 3),
            g.http_ratio.map(|s| s.median >= 0.95),
        );
        row(
            "HTTP throughput ≥ 0.85 of untraced, wrk pinned to one core, nginx + recorderd on the other",
            show(g.http_pinned_ratio, 3),
            g.http_pinned_ratio.map(|s| s.median >= 0.85),
        );
        for Added {
            size,
            recorderd_kept,
            recorderd: rec,
            recorderd_cpu,
            strace,
            floor,
            neighbour,
        } in &g.added
        {
            // A recorder that drops events looks cheaper than one that keeps them all.
            let whole = *recorderd_kept >= 1.0;
            let lossy = if whole {
                String::new()
            } else {
                format!(
                    "; but recorderd kept only {:.1} % of the events in its worst run",
                    100.0 * recorderd_kept
                )
            };
            if *size == 64 {
                // Judged per event, in steady state: the short runs' figure also carries what
                // the recording costs once, spread over their 120 k events.
                let steady = g.steady.iter().find(|s| s.size == *size).map(|s| s.per_m);
                let per_m = match steady {
                    Some(None) => "— (the longer runs shed payloads)".into(),
                    _ => show(steady.flatten(), 2),
                };
                row(
                    "recorderd's CPU ≤ 1.0 s per million events in steady state, redaction on (64 B)",
                    format!(
                        "{per_m} CPU-s / M (the bench's runs, a recording's own CPU included: {}{lossy})",
                        show(*recorderd_cpu, 2)
                    ),
                    steady.map(|m| m.is_some_and(|m| m.median <= 1.0) && whole),
                );
            }
            let size = size_name(*size);
            row(
                &format!("recorderd's added time per syscall ≤ 1/50 of strace's ({size})"),
                match (rec, strace) {
                    (Some(r), Some(s)) => format!(
                        "{:.0} ns vs {:.0} ns (1/{:.0}){lossy}",
                        r.median,
                        s.median,
                        s.median / r.median
                    ),
                    _ => "—".into(),
                },
                rec.zip(*strace)
                    .map(|(r, s)| r.median * 50.0 <= s.median && whole),
            );
            row(
                &format!("within 2× the floor, no wake-up + poll like recorderd ({size})"),
                match (rec, floor) {
                    (Some(r), Some(f)) => format!(
                        "{:.0} ns vs {:.0} ns ({:.2}×){lossy}",
                        r.median,
                        f.median,
                        r.median / f.median
                    ),
                    _ => "—".into(),
                },
                rec.zip(*floor)
                    .map(|(r, f)| r.median <= 2.0 * f.median && whole),
            );
            row(
                &format!(
                    "a process not recorded runs ≤ 1.10× untraced while recorderd records another ({size})"
                ),
                neighbour.map_or("—".into(), |r| format!("{r:.2}×")),
                neighbour.map(|r| r <= 1.10),
            );
        }
        row(
            "zero loss up to ≥ 100k events/s with 64 B payloads",
            g.zero_loss_64
                .map_or("loss at every rate tried".into(), |r| {
                    format!("zero loss up to {r:.0}/s")
                }),
            Some(g.zero_loss_64.is_some_and(|r| r >= 95_000.0)),
        );
        // Without 4 KiB capacity steps (`--quick` runs one 64 B step) these are unmeasured.
        let measured_4k = g.events_kept_4k.is_some();
        row(
            "100 % of events kept at every rate tried with 4 KiB payloads",
            g.events_kept_4k.map_or("—".into(), |kept| {
                format!("{:.2} % in the worst step", 100.0 * kept)
            }),
            g.events_kept_4k.map(|kept| kept >= 1.0),
        );
        // As for 64 B, the achieved rate may fall 5 % short of the step's target.
        row(
            "4 KiB payloads kept whole up to ≥ 60k events/s (achieved ≥ 57000/s)",
            match g.whole_4k {
                _ if !measured_4k => "—".into(),
                Some(r) => format!("whole up to {r:.0}/s"),
                None => "loss at every rate tried".into(),
            },
            measured_4k.then(|| g.whole_4k.is_some_and(|r| r >= 57_000.0)),
        );
        for (size, per_event) in &g.allocations {
            row(
                &format!(
                    "no heap allocation per event in steady state ({})",
                    size_name(*size)
                ),
                format!("{per_event:.3} per event"),
                Some(*per_event < 0.01),
            );
        }
        row(
            "HTTP recording ≤ 1/4 of captured payload bytes",
            g.http_disk_ratio.map_or("—".into(), |s| {
                format!("{:.3} of payload bytes", s.median)
            }),
            g.http_disk_ratio.map(|s| s.median <= 0.25),
        );
        out
    }
}
