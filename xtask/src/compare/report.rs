//! Turning samples into the tables of docs/BENCHMARKS.md: medians with their spread, and the
//! goals, each marked met or not met with the figure.

use std::{fmt::Write as _, path::Path};

use anyhow::Result;

use super::{
    tracer::{Captured, Tracer, Wakeup, BPFTRACE_STRLEN},
    workload::{self, Http},
    Sample, Skipped,
};

/// A median with its min–max spread.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Stat> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }

    fn show(self, decimals: usize) -> String {
        if (self.max - self.min).abs() < f64::EPSILON {
            return format!("{:.*}", decimals, self.median);
        }
        format!(
            "{:.*} ({:.*}–{:.*})",
            decimals, self.median, decimals, self.min, decimals, self.max
        )
    }
}

fn show(stat: Option<Stat>, decimals: usize) -> String {
    stat.map_or("—".into(), |s| s.show(decimals))
}

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

/// One capacity step.
pub struct Step {
    pub rate: u64,
    pub achieved: f64,
    pub made: u64,
    pub recorded: u64,
    pub lost: u64,
    pub cpu_s: f64,
}

impl Step {
    pub fn new(rate: u64, _ms: u64, sample: &Sample) -> Step {
        Step {
            rate,
            achieved: sample.report.syscalls as f64
                / (sample.report.elapsed_ns.max(1) as f64 / 1e9),
            made: sample.report.syscalls,
            recorded: sample
                .captured
                .whole_payloads
                .unwrap_or(sample.captured.events),
            lost: sample.captured.lost,
            cpu_s: sample.captured.cpu_ns as f64 / 1e9,
        }
    }

    /// Writes whose event (with whole payload) is not in the recording.
    pub fn missing(&self) -> u64 {
        self.made.saturating_sub(self.recorded)
    }
}

/// Added ns per syscall at one payload size: recorderd, strace, and the floor with the
/// wake-up policy recorderd's probes use (no wake-up, a consumer draining on a timer).
struct Added {
    size: u64,
    /// The smallest share of syscalls recorderd recorded in any run.
    recorderd_kept: f64,
    recorderd: Option<Stat>,
    strace: Option<Stat>,
    floor: Option<Stat>,
}

/// The figures the goals are judged on.
#[derive(Default)]
struct Goals {
    http_ratio: Option<Stat>,
    http_disk_ratio: Option<Stat>,
    added: Vec<Added>,
    /// Highest achieved rate with zero loss at 64 B, and whether every step below had none.
    zero_loss_64: Option<f64>,
}

pub struct Doc {
    reps: usize,
    /// /proc/loadavg's 1-minute figure when the run began: other work on the machine shows.
    load_at_start: String,
    skipped: Vec<(Tracer, String)>,
    compare: String,
    floor: String,
    capacity: String,
    goals: Goals,
}

const HEADER: &str = "| recorder | throughput vs untraced | added ns / syscall | events / syscalls made | payloads kept whole | lost | disk bytes / MB payload | recorder CPU s / M events | recorder peak RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";

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
        self.goals.added.push(Added {
            size,
            recorderd_kept: kept,
            recorderd: added(Tracer::Recorderd),
            strace: added(Tracer::Strace),
            floor: added(Tracer::Floor(Wakeup::NonePolled)),
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

    pub fn http_skipped(&mut self, why: &str) {
        let _ = writeln!(self.compare, "\n**HTTP**: SKIPPED — {why}.\n");
    }

    pub fn http(&mut self, secs: u64, samples: Vec<(Tracer, Vec<(Http, Captured)>)>) {
        let _ = writeln!(
            self.compare,
            "\n**HTTP**: nginx (one process, `return 201` with a 180 B JSON body, access log \
             off) on loopback under `{}`: POSTs of a 260 B JSON order. The recorders attach \
             to nginx. Syscalls per request come from strace, which stops at every one.\n",
            workload::wrk_command(secs)
        );
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
            "| recorder | requests/s | throughput vs untraced | added µs / request | events / request | lost | disk bytes / MB payload | recorder CPU s / M events | recorder peak RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
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
            let per_request = Stat::of(
                runs.iter()
                    .map(|(h, c)| c.all_events as f64 / h.requests as f64),
            );
            let disk = Stat::of(
                runs.iter()
                    .map(|(h, c)| c.disk_bytes as f64 / (h.payload_bytes() as f64 / 1e6)),
            );
            if *tracer == Tracer::Recorderd {
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
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                tracer.label(),
                show(rate, 0),
                if untraced { "1".into() } else { show(ratio, 3) },
                if untraced {
                    "—".into()
                } else {
                    show(added, 1)
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

    fn floor_rows(&mut self, size: u64, samples: &[(Tracer, Vec<Sample>)]) {
        if self.floor.is_empty() {
            self.floor.push_str(
                "| probe | payload | added ns / syscall | vs floor (adaptive) | vs floor (no wake-up) | records / syscalls made | lost | consumer CPU s / M records |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
            );
        }
        let floor = added_ns(samples, Tracer::Floor(Wakeup::Adaptive));
        let quiet_floor = added_ns(samples, Tracer::Floor(Wakeup::NonePolled));
        for (tracer, runs) in samples {
            if !matches!(tracer, Tracer::Recorderd | Tracer::Floor(_)) {
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

    pub fn capacity(&mut self, size: u64, ms: u64, steps: Vec<Step>) {
        let _ = writeln!(
            self.capacity,
            "\n**{} payloads**: `recorder-bench-load paced {size} RATE {ms}` (writes to /dev/null \
             at a paced rate for {:.1} s) under `recorderd --pid PID --max-payload 1MiB`.\n\n\
             | target rate | achieved rate | writes made | recorded whole | lost (recorderd's count) | missing | recorderd CPU s |\n\
             | --- | --- | --- | --- | --- | --- | --- |",
            size_name(size),
            ms as f64 / 1000.0
        );
        let mut zero_loss: Option<f64> = None;
        let mut clean_so_far = true;
        for step in &steps {
            let _ = writeln!(
                self.capacity,
                "| {}/s | {:.0}/s | {} | {} | {} | {} ({:.2} %) | {:.2} |",
                step.rate,
                step.achieved,
                step.made,
                step.recorded,
                step.lost,
                step.missing(),
                100.0 * step.missing() as f64 / step.made.max(1) as f64,
                step.cpu_s
            );
            if step.missing() == 0 && step.lost == 0 && clean_so_far {
                zero_loss = Some(step.achieved);
            } else {
                clean_so_far = false;
            }
        }
        let last = steps.last();
        let _ = writeln!(
            self.capacity,
            "\nHighest rate with zero loss: {}.{}",
            zero_loss.map_or("none of the rates tried".into(), |r| format!(
                "{r:.0} events/s"
            )),
            match last {
                Some(step) if step.achieved < 0.8 * step.rate as f64 => format!(
                    " The workload could not issue more than {:.0} writes/s while traced (the \
                     probes' cost per syscall caps it), so the stepping stopped there.",
                    step.achieved
                ),
                _ => String::new(),
            }
        );
        if size == 64 {
            self.goals.zero_loss_64 = zero_loss;
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
        crate::bench::replace_section(&path, "goals", &self.goals_text())?;
        println!("bench: wrote the compare, floor, capacity and goals sections");
        Ok(())
    }

    fn goals_text(&self) -> String {
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
        for Added {
            size,
            recorderd_kept,
            recorderd: rec,
            strace,
            floor,
        } in &g.added
        {
            let size = size_name(*size);
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
        }
        row(
            "zero loss up to ≥ 100k events/s with 64 B payloads",
            g.zero_loss_64
                .map_or("loss at every rate tried".into(), |r| {
                    format!("zero loss up to {r:.0}/s")
                }),
            Some(g.zero_loss_64.is_some_and(|r| r >= 95_000.0)),
        );
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

/// Added ns per syscall of `tracer` against the untraced median, one value per rep.
fn added_ns(samples: &[(Tracer, Vec<Sample>)], tracer: Tracer) -> Option<Stat> {
    let base = base_elapsed(samples)?;
    let runs = &samples.iter().find(|(t, _)| *t == tracer)?.1;
    Stat::of(
        runs.iter()
            .map(|s| (s.report.elapsed_ns as f64 - base) / s.report.syscalls.max(1) as f64),
    )
}

fn base_elapsed(samples: &[(Tracer, Vec<Sample>)]) -> Option<f64> {
    let runs = &samples.iter().find(|(t, _)| *t == Tracer::None)?.1;
    Stat::of(runs.iter().map(|s| s.report.elapsed_ns as f64)).map(|s| s.median)
}

fn data_table(samples: &[(Tracer, Vec<Sample>)], skip_floors: bool) -> String {
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
                "| untraced | 1 ({} ms a run) | ({} ns per syscall) | — | — | — | — | — | — |",
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
            "| {} | {} | {} | {} | {whole} | {} | {} | {} | {} |",
            tracer.label(),
            show(ratio, 3),
            show(added_ns(samples, *tracer), 0),
            completeness(runs),
            lost(&captured),
            show(disk, 0),
            cpu_per_m(&captured, false),
            rss(&captured, false),
        );
    }
    out
}

/// The worst run's events / syscalls made.
fn completeness(runs: &[Sample]) -> String {
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

fn completeness_per_request(per_request: Option<Stat>, reference: Option<Stat>) -> String {
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

fn lost(captured: &[&Captured]) -> String {
    let lost = captured.iter().map(|c| c.lost).sum::<u64>();
    match captured.iter().filter(|c| c.killed).count() {
        0 => lost.to_string(),
        n => format!("{lost} ({n} run(s) ignored SIGINT for 30 s and were killed)"),
    }
}

fn cpu_per_m(captured: &[&Captured], untraced: bool) -> String {
    if untraced {
        return "—".into();
    }
    show(
        Stat::of(
            captured
                .iter()
                .filter(|c| c.all_events > 0)
                .map(|c| c.cpu_ns as f64 / 1e9 / (c.all_events as f64 / 1e6)),
        ),
        2,
    )
}

fn rss(captured: &[&Captured], untraced: bool) -> String {
    if untraced {
        return "—".into();
    }
    let max = captured.iter().map(|c| c.max_rss_kib).max().unwrap_or(0);
    format!("{:.1} MiB", max as f64 / 1024.0)
}

fn size_name(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1024 && b % 1024 == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}
