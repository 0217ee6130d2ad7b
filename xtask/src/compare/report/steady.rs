//! recorderd's CPU per event in steady state, apart from what a recording costs once.

use std::fmt::Write as _;

use super::{show, size_name, Doc, Stat};
use crate::compare::tracer::Captured;

/// One payload size's pairs of runs: the loop at its length, and at ten times it.
pub struct SteadyRuns {
    pub size: u64,
    pub pairs: Vec<(Captured, Captured)>,
}

/// What the pairs of one size give.
#[derive(Clone, Copy)]
pub(super) struct Steady {
    pub size: u64,
    /// CPU-seconds per million events: the difference in CPU over the difference in events;
    /// `None` when a long run shed payloads.
    pub per_m: Option<Stat>,
}

impl Doc {
    pub fn steady(&mut self, rows: Vec<SteadyRuns>) {
        self.steady.push_str(
            "| workload | CPU after attach: events | ten times as long | CPU-s / M events in steady state | a recording's own CPU-s |\n| --- | --- | --- | --- | --- |\n",
        );
        for SteadyRuns { size, pairs } in rows {
            let cpu_s = |c: &Captured| c.cpu_ns as f64 / 1e9;
            // Per pair: seconds per event, and what the short run spent beyond its events.
            let per_event: Vec<f64> = pairs
                .iter()
                .map(|(short, long)| {
                    (cpu_s(long) - cpu_s(short))
                        / long.all_events.saturating_sub(short.all_events).max(1) as f64
                })
                .collect();
            let own = Stat::of(
                pairs
                    .iter()
                    .zip(&per_event)
                    .map(|((short, _), per)| cpu_s(short) - per * short.all_events as f64),
            );
            let per_m = Stat::of(per_event.iter().map(|per| per * 1e6));
            let runs = |pick: fn(&(Captured, Captured)) -> &Captured| {
                let cpu = Stat::of(pairs.iter().map(|p| cpu_s(pick(p))));
                let events = Stat::of(pairs.iter().map(|p| pick(p).all_events as f64));
                format!("{} s: {} events", show(cpu, 3), show(events, 0))
            };
            let whole = pairs.iter().all(|(_, long)| {
                long.lost == 0 && long.whole_payloads.is_some_and(|w| w >= long.events)
            });
            // A long run that shed payloads outran the pipeline: its events cost less than
            // kept ones, so the difference is no steady state's.
            let per_m = per_m.filter(|_| whole);
            let (per_event_cell, own_cell) = if whole {
                (show(per_m, 2), show(own, 3))
            } else {
                (
                    "— (the longer runs shed payloads: no steady state)".into(),
                    "—".into(),
                )
            };
            let _ = writeln!(
                self.steady,
                "| syscall-heavy, {} | {} | {} | {per_event_cell} | {own_cell} |",
                size_name(size),
                runs(|p| &p.0),
                runs(|p| &p.1),
            );
            self.goals.steady.push(Steady { size, per_m });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `events` events that took `cpu_us` of CPU after attach and lost `lost`.
    fn run(cpu_us: u64, events: u64, lost: u64) -> Captured {
        Captured {
            events,
            all_events: events,
            whole_payloads: Some(events - lost),
            lost,
            cpu_ns: cpu_us * 1000,
            ..Captured::default()
        }
    }

    #[test]
    fn an_event_costs_the_difference_in_cpu_over_the_difference_in_events() {
        let mut doc = Doc::new(1, &[]);
        // 10 ms a recording, 0.5 µs an event.
        let pairs = vec![(
            run(10_000 + 60_000, 120_000, 0),
            run(10_000 + 600_000, 1_200_000, 0),
        )];
        doc.steady(vec![SteadyRuns { size: 64, pairs }]);
        let per_m = doc.goals.steady[0].per_m.expect("a steady state");
        assert!((per_m.median - 0.5).abs() < 1e-9, "{}", per_m.median);
        assert!(
            doc.steady.contains(
                "| syscall-heavy, 64 B | 0.070 s: 120000 events | 0.610 s: 1200000 events | 0.50 | 0.010 |"
            ),
            "{}",
            doc.steady
        );
    }

    #[test]
    fn longer_runs_that_shed_payloads_give_no_figure() {
        let mut doc = Doc::new(1, &[]);
        let pairs = vec![(run(70_000, 30_000, 0), run(300_000, 300_000, 200_000))];
        doc.steady(vec![SteadyRuns { size: 4096, pairs }]);
        assert!(doc.goals.steady[0].per_m.is_none());
        assert!(
            doc.steady.contains("no steady state) | — |"),
            "{}",
            doc.steady
        );
    }
}
