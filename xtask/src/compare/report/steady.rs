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
            let (per_m, own) = if whole { (per_m, own) } else { (None, None) };
            let _ = writeln!(
                self.steady,
                "| syscall-heavy, {} | {} | {} | {} | {} |",
                size_name(size),
                runs(|p| &p.0),
                runs(|p| &p.1),
                if whole {
                    show(per_m, 2)
                } else {
                    "— (the longer runs shed payloads: no steady state)".into()
                },
                show(own, 3),
            );
            self.goals.steady.push(Steady { size, per_m });
        }
    }
}
