//! Turning samples into the tables of docs/BENCHMARKS.md: `Doc` gathers the syscall-heavy,
//! file-copy and floor tables and writes every section. The HTTP table (`http`), capacity
//! steps (`capacity`), goals (`goals`), the cells the tables share (`cells`) and medians with
//! their spread (`stat`) live in the submodules.

mod capacity;
mod cells;
mod goals;
mod http;
mod stat;
mod steady;

use std::{fmt::Write as _, path::Path};

use anyhow::Result;

pub use capacity::Step;
use cells::{added_ns, completeness, cpu_per_m, cpu_s_per_m, data_table, elapsed_ratio, lost};
use stat::{show, size_name, Stat};
pub use steady::SteadyRuns;

use super::{
    tracer::{Captured, Tracer, Wakeup},
    Sample, Skipped,
};

/// One progress line on stdout.
pub fn progress(name: &str, size: u64, tracer: Tracer, sample: &Sample) -> String {
    format!(
        "{name} {size:>7} B {:<36} {:>8.1} ms  {:>8} syscalls  events {:>8}  lost {}",
        tracer.label(),
        sample.report.elapsed_ns as f64 / 1e6,
        sample.report.syscalls,
        sample.captured.events,
        sample.captured.lost
    )
}

/// Added ns per syscall at one payload size: recorderd, strace, and the floor with the
/// wake-up policy recorderd's probes use (no wake-up, a consumer draining on a timer).
struct Added {
    size: u64,
    /// The smallest share of syscalls recorderd recorded in any run.
    recorderd_kept: f64,
    recorderd: Option<Stat>,
    /// recorderd's CPU-seconds per million events.
    recorderd_cpu: Option<Stat>,
    strace: Option<Stat>,
    floor: Option<Stat>,
    /// The loop's time, not recorded, while recorderd records another process, over its
    /// untraced time (medians).
    neighbour: Option<f64>,
}

/// The figures the goals are judged on.
#[derive(Default)]
struct Goals {
    http_ratio: Option<Stat>,
    /// The same with wrk on one core and nginx + recorderd on the other.
    http_pinned_ratio: Option<Stat>,
    http_disk_ratio: Option<Stat>,
    added: Vec<Added>,
    /// Highest achieved rate with zero loss at 64 B, and whether every step below had none.
    zero_loss_64: Option<f64>,
    /// The same at 4 KiB: every payload kept whole.
    whole_4k: Option<f64>,
    /// The smallest share of 4 KiB writes kept as events at any rate tried.
    events_kept_4k: Option<f64>,
    /// (payload size, heap allocations per event) under the counting build.
    allocations: Vec<(u64, f64)>,
    /// recorderd's CPU per event in steady state, by payload size.
    steady: Vec<steady::Steady>,
}

/// Heap allocations of one payload size: (allocations, events) of a run and of one ten
/// times as long.
pub struct Allocations {
    pub size: u64,
    pub short: (u64, u64),
    pub long: (u64, u64),
}

pub struct Doc {
    reps: usize,
    /// /proc/loadavg's 1-minute figure when the run began: other work on the machine shows.
    load_at_start: String,
    skipped: Vec<(Tracer, String)>,
    compare: String,
    floor: String,
    capacity: String,
    allocations: String,
    steady: String,
    goals: Goals,
}

impl Doc {
    pub fn new(reps: usize, skipped: &[Skipped]) -> Doc {
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Doc {
            reps,
            load_at_start: loadavg.split(' ').next().unwrap_or("?").to_owned(),
            skipped: skipped.iter().map(|s| (s.tracer, s.why.clone())).collect(),
            compare: String::new(),
            floor: String::new(),
            capacity: String::new(),
            allocations: String::new(),
            steady: String::new(),
            goals: Goals::default(),
        }
    }

    pub fn syscalls(&mut self, size: u64, iters: u64, samples: Vec<(Tracer, Vec<Sample>)>) {
        let _ = writeln!(
            self.compare,
            "\n**Syscall-heavy, {size} B**: {iters} iterations of write+read over a pipe, a unix \
             socketpair and a file (pwrite64/pread64), {} syscalls moving {:.1} MB a run.\n",
            6 * iters,
            (6 * iters * size) as f64 / 1e6
        );
        let table = data_table(&samples, true);
        self.compare.push_str(&table);
        let added = |t: Tracer| added_ns(&samples, t);
        let kept = samples
            .iter()
            .find(|(t, _)| *t == Tracer::Recorderd)
            .map_or(0.0, |(_, runs)| {
                runs.iter()
                    .map(|s| s.captured.events as f64 / s.report.syscalls.max(1) as f64)
                    .fold(f64::INFINITY, f64::min)
            });
        let recorderd_cpu = samples
            .iter()
            .find(|(t, _)| *t == Tracer::Recorderd)
            .and_then(|(_, runs)| {
                cpu_s_per_m(&runs.iter().map(|s| &s.captured).collect::<Vec<_>>())
            });
        self.goals.added.push(Added {
            size,
            recorderd_kept: kept,
            recorderd: added(Tracer::Recorderd),
            recorderd_cpu,
            strace: added(Tracer::Strace),
            floor: added(Tracer::Floor(Wakeup::NonePolled)),
            neighbour: elapsed_ratio(&samples, Tracer::Neighbour),
        });
        self.floor_rows(size, &samples);
    }

    pub fn copy(&mut self, file_bytes: u64, buffer: u64, samples: Vec<(Tracer, Vec<Sample>)>) {
        let _ = writeln!(
            self.compare,
            "\n**File copy, {} buffers**: read/write copy of a {:.0} MiB file (page cache), \
             payload counted both ways.\n",
            size_name(buffer),
            file_bytes as f64 / (1 << 20) as f64
        );
        self.compare.push_str(&data_table(&samples, false));
    }

    fn floor_rows(&mut self, size: u64, samples: &[(Tracer, Vec<Sample>)]) {
        if self.floor.is_empty() {
            self.floor.push_str(
                "| probe | payload | added ns / syscall | vs floor (adaptive) | vs floor (no wake-up) | records / syscalls made | lost | consumer CPU s / M records |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
            );
        }
        let floor = added_ns(samples, Tracer::Floor(Wakeup::Adaptive));
        let quiet_floor = added_ns(samples, Tracer::Floor(Wakeup::NonePolled));
        for (tracer, runs) in samples {
            if !matches!(tracer, Tracer::Floor(_)) && !tracer.records_workload() {
                continue;
            }
            let added = added_ns(samples, *tracer);
            // A floor within noise of untraced (under 50 ns) makes any ratio meaningless.
            let ratio = |floor: Option<Stat>| match (added, floor) {
                (Some(a), Some(f)) if f.median >= 50.0 => format!("{:.2}×", a.median / f.median),
                (Some(_), Some(_)) => "— (floor ≈ 0)".into(),
                _ => "—".into(),
            };
            let captured: Vec<&Captured> = runs.iter().map(|s| &s.captured).collect();
            let _ = writeln!(
                self.floor,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                tracer.label(),
                size_name(size),
                show(added, 0),
                ratio(floor),
                ratio(quiet_floor),
                completeness(runs),
                lost(&captured),
                cpu_per_m(&captured, false),
            );
        }
    }

    /// Heap allocations per syscall-heavy loop under the counting build.
    pub fn allocations(&mut self, rows: Vec<Allocations>) {
        self.allocations.push_str(
            "| workload | heap allocations while recording: events | ten times as long | per event in steady state |\n| --- | --- | --- | --- |\n",
        );
        for Allocations { size, short, long } in rows {
            let per_event = long.0.saturating_sub(short.0) as f64
                / long.1.saturating_sub(short.1).max(1) as f64;
            let _ = writeln!(
                self.allocations,
                "| syscall-heavy, {} | {}: {} | {}: {} | {per_event:.3} |",
                size_name(size),
                short.0,
                short.1,
                long.0,
                long.1
            );
            self.goals.allocations.push((size, per_event));
        }
    }

    pub fn write(&self, root: &Path, elapsed_s: f64) -> Result<()> {
        let path = root.join(crate::bench::DOC);
        let mut compare = format!(
            "Command: `cargo xtask bench` — {}; {} repetitions of every run, interleaved; \
             figures are medians with (min–max); the whole comparison took {:.0} s; load \
             average when it started: {}.\n\n",
            crate::bench::machine(),
            self.reps,
            elapsed_s,
            self.load_at_start
        );
        compare.push_str("| recorder | command | captures |\n| --- | --- | --- |\n");
        for tracer in [
            Tracer::Recorderd,
            Tracer::RecorderdStacks,
            Tracer::RecorderdBackground,
            Tracer::Neighbour,
            Tracer::Strace,
            Tracer::Perf,
            Tracer::Bpftrace,
            Tracer::Floor(Wakeup::Adaptive),
        ] {
            let _ = writeln!(
                compare,
                "| {} | `{}` | {} |",
                tracer.label(),
                tracer.command_line(),
                tracer.captures()
            );
        }
        for (tracer, why) in &self.skipped {
            let _ = writeln!(compare, "\n{} was not run: {why}.", tracer.label());
        }
        compare.push_str(&self.compare);
        crate::bench::replace_section(&path, "compare", &compare)?;
        crate::bench::replace_section(&path, "floor", &self.floor)?;
        crate::bench::replace_section(&path, "capacity", &self.capacity)?;
        crate::bench::replace_section(&path, "allocations", &self.allocations)?;
        crate::bench::replace_section(&path, "steady", &self.steady)?;
        crate::bench::replace_section(&path, "goals", &self.goals_text())?;
        println!(
            "bench: wrote the compare, floor, capacity, allocations, steady and goals sections"
        );
        Ok(())
    }
}
