//! `cargo xtask bench`'s side-by-side comparison: each workload untraced, under recorderd,
//! strace, perf trace, bpftrace and a floor probe, on the same machine in one run; then
//! recorderd's capacity (the highest paced event rate with zero loss). Writes the
//! `compare`, `floor`, `capacity` and `goals` sections of docs/BENCHMARKS.md; `--quick`
//! runs tiny versions of everything to check that the harness works and writes nothing.

mod report;
mod steady;
mod tracer;
mod workload;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context as _, Result};
use tracer::{Captured, Scope, Tracer, Wakeup};
use workload::{Nginx, Report};

use crate::setup;
use xtask::ebpf;

/// Where the built binaries are.
#[derive(Clone)]
pub struct Bins {
    pub dir: PathBuf,
    /// The recorderd under test (in `dir`, or the allocation-counting build).
    pub recorderd: PathBuf,
    /// The floor probe's own eBPF object, which `recorder-bench-floor` loads.
    pub floor_object: PathBuf,
}

/// Sizes of one bench run.
struct Plan {
    quick: bool,
    reps: usize,
    /// (payload size, iterations) of the syscall-heavy loop (6 syscalls an iteration).
    syscalls: Vec<(u64, u64)>,
    copy_file_bytes: u64,
    copy_buffers: Vec<u64>,
    http_secs: u64,
    /// (payload size, rates to try) for the capacity run.
    capacity: Vec<(u64, Vec<u64>)>,
    capacity_ms: u64,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            return Plan {
                quick,
                reps: 1,
                syscalls: vec![(64, 200)],
                copy_file_bytes: 256 * 1024,
                copy_buffers: vec![4096],
                http_secs: 1,
                capacity: vec![(64, vec![20_000])],
                capacity_ms: 300,
            };
        }
        Plan {
            quick,
            reps: 3,
            syscalls: vec![(64, 20_000), (4096, 5_000)],
            copy_file_bytes: 16 * 1024 * 1024,
            copy_buffers: vec![4096, 1024 * 1024],
            http_secs: 5,
            capacity: vec![
                (
                    64,
                    vec![
                        50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 600_000, 800_000,
                    ],
                ),
                (
                    4096,
                    vec![25_000, 50_000, 60_000, 75_000, 100_000, 150_000, 200_000],
                ),
                (65536, vec![5_000, 10_000, 20_000, 40_000, 60_000]),
            ],
            capacity_ms: 2000,
        }
    }
}

/// A tool that could not run here, and why.
pub struct Skipped {
    pub tracer: Tracer,
    pub why: String,
}

/// The recorders this machine can run, and the ones it cannot.
struct Tools {
    available: Vec<Tracer>,
    skipped: Vec<Skipped>,
    http: Result<(), String>,
}

impl Tools {
    fn detect() -> Tools {
        let mut tools = Tools {
            available: vec![Tracer::None, Tracer::Recorderd],
            skipped: Vec::new(),
            http: Ok(()),
        };
        let checks: [(Tracer, &str, &[&str]); 3] = [
            (Tracer::Strace, "strace", &["-V"]),
            (
                Tracer::Perf,
                "perf",
                &["trace", "-o", "/dev/null", "-e", "write", "--", "true"],
            ),
            (Tracer::Bpftrace, "bpftrace", &["--version"]),
        ];
        for (tracer, program, args) in checks {
            match Command::new(program).args(args).output() {
                Ok(out) if out.status.success() => tools.available.push(tracer),
                Ok(out) => tools.skipped.push(Skipped {
                    tracer,
                    why: format!(
                        "`{program} {}` fails here: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr)
                            .lines()
                            .next()
                            .unwrap_or("")
                    ),
                }),
                Err(_) => tools.skipped.push(Skipped {
                    tracer,
                    why: format!("{program} is not installed"),
                }),
            }
        }
        let has = |program: &str, arg: &str| Command::new(program).arg(arg).output().is_ok();
        if !has("wrk", "-v") || !has(workload::nginx_binary(), "-v") {
            tools.http = Err("wrk or nginx is not installed".into());
        }
        tools
    }
}

const FLOORS: [Tracer; 3] = [
    Tracer::Floor(Wakeup::Adaptive),
    Tracer::Floor(Wakeup::Force),
    Tracer::Floor(Wakeup::NonePolled),
];

pub fn run(root: &Path, quick: bool) -> Result<()> {
    if !setup::is_root() {
        if quick {
            println!("bench compare: SKIPPED — loading probes and attaching tracers needs root");
            return Ok(());
        }
        bail!("the tracer comparison loads probes and needs root: run `sudo -E cargo xtask bench`");
    }
    let started = Instant::now();
    // The comparison tools are installed for the full bench only; CI's quick run uses what
    // is there and says what it skipped.
    if !quick {
        setup::ensure_apt_packages(setup::BENCH_PACKAGES)?;
    }
    let bins = build(root, quick)?;
    let tools = Tools::detect();
    for skipped in &tools.skipped {
        println!(
            "bench compare: {} SKIPPED: {}",
            skipped.tracer.label(),
            skipped.why
        );
    }
    if let Err(why) = &tools.http {
        println!("bench compare: HTTP workload SKIPPED: {why}");
    }
    let plan = Plan::new(quick);
    let work = bins.dir.join("bench-compare");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let mut doc = report::Doc::new(plan.reps, &tools.skipped);
    syscall_heavy(&plan, &bins, &tools, &work, &mut doc)?;
    http(&plan, &bins, &tools, &work, &mut doc)?;
    file_copy(&plan, &bins, &tools, &work, &mut doc)?;
    capacity(&plan, &bins, &work, &mut doc)?;
    steady::allocations(&plan, root, &bins, &work, &mut doc)?;
    steady::cpu(&plan, &bins, &work, &mut doc)?;
    let _ = std::fs::remove_dir_all(&work);
    let elapsed = started.elapsed().as_secs_f64();
    println!("bench compare: done in {elapsed:.0} s");
    if quick {
        println!("bench compare --quick: the harness runs; figures not recorded");
        return Ok(());
    }
    doc.write(root, elapsed)
}

/// Builds recorderd, the reader and the workloads (release for figures; debug for --quick,
/// which `cargo xtask test` builds anyway), and the floor probe's object: recorderd's object
/// does not contain the floor, so nothing else builds it.
fn build(root: &Path, quick: bool) -> Result<Bins> {
    let floor_object = crate::build_ebpf(ebpf::FLOOR_OBJECT_NAME)?;
    let mut cargo = Command::new("cargo");
    cargo.arg("build").args(crate::RECORDING_BINS);
    if !quick {
        cargo.arg("--release");
    }
    setup::run_checked(cargo.current_dir(root))?;
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = base.join(if quick { "debug" } else { "release" });
    Ok(Bins {
        recorderd: dir.join("recorderd"),
        dir,
        floor_object,
    })
}

/// One measured run of a gated workload.
pub struct Sample {
    pub report: Report,
    pub captured: Captured,
}

fn gated(
    bins: &Bins,
    tracer: Tracer,
    args: Vec<String>,
    dir: &Path,
    scope: Scope,
) -> Result<Sample> {
    let (report, captured) = workload::run_gated(bins, tracer, &args, dir, scope)
        .with_context(|| format!("{} under {}", args.join(" "), tracer.label()))?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(Sample { report, captured })
}

/// `recorder-bench-load syscalls WORK SIZE ITERS`: the syscall-heavy loop's arguments.
fn syscalls_args(work: &Path, size: u64, iters: u64) -> Vec<String> {
    vec![
        "syscalls".to_owned(),
        work.display().to_string(),
        size.to_string(),
        iters.to_string(),
    ]
}

fn syscall_heavy(
    plan: &Plan,
    bins: &Bins,
    tools: &Tools,
    work: &Path,
    doc: &mut report::Doc,
) -> Result<()> {
    let mut tracers = tools.available.clone();
    tracers.push(Tracer::RecorderdStacks);
    tracers.push(Tracer::Neighbour);
    tracers.extend(FLOORS);
    for &(size, iters) in &plan.syscalls {
        let samples = interleaved(plan.reps, &tracers, |tracer, rep| {
            let dir = work.join(format!("syscalls-{size}-{rep}"));
            let args = syscalls_args(work, size, iters);
            let sample = gated(bins, tracer, args, &dir, Scope::DataFds)?;
            println!("{}", report::progress("syscalls", size, tracer, &sample));
            Ok(sample)
        })?;
        doc.syscalls(size, iters, samples);
    }
    Ok(())
}

fn file_copy(
    plan: &Plan,
    bins: &Bins,
    tools: &Tools,
    work: &Path,
    doc: &mut report::Doc,
) -> Result<()> {
    let src = work.join("copy-source.bin");
    let line = b"{\"order\":8841,\"sku\":\"A-1177\",\"qty\":3,\"price\":\"19.90\",\"note\":\"leave at door\"}\n";
    let bytes: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(plan.copy_file_bytes as usize)
        .collect();
    std::fs::write(&src, bytes)?;
    let dst = work.join("copy-destination.bin");
    let tracers = whole_run_tracers(plan, tools);
    for &buffer in &plan.copy_buffers {
        let samples = interleaved(plan.reps, &tracers, |tracer, rep| {
            let dir = work.join(format!("copy-{buffer}-{rep}"));
            let args = vec![
                "copy".to_owned(),
                src.display().to_string(),
                dst.display().to_string(),
                buffer.to_string(),
            ];
            let sample = gated(bins, tracer, args, &dir, Scope::DataFds)?;
            println!("{}", report::progress("copy", buffer, tracer, &sample));
            Ok(sample)
        })?;
        doc.copy(plan.copy_file_bytes, buffer, samples);
    }
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    Ok(())
}

fn http(plan: &Plan, bins: &Bins, tools: &Tools, work: &Path, doc: &mut report::Doc) -> Result<()> {
    if let Err(why) = &tools.http {
        doc.http_skipped(why);
        return Ok(());
    }
    // Then again with wrk on one core and nginx sharing the other with the recorder, so the
    // recorder's cost shows alone; then over TLS, where recorderd records the plaintext.
    // `--priority background` where the recorder competes with the server for the CPU.
    let mut unpinned = whole_run_tracers(plan, tools);
    unpinned.push(Tracer::RecorderdBackground);
    let pinned = vec![Tracer::None, Tracer::Recorderd, Tracer::RecorderdBackground];
    let runs = [
        (false, false, unpinned),
        (true, false, pinned),
        (false, true, vec![Tracer::None, Tracer::Recorderd]),
    ];
    for (pinned, tls, tracers) in runs {
        let nginx = Nginx::start(&work.join("nginx"), tls)?;
        let samples = interleaved(plan.reps, &tracers, |tracer, rep| {
            let dir = work.join(format!("http-{rep}"));
            let (http, captured) =
                workload::run_http(bins, tracer, &nginx, plan.http_secs, pinned, &dir)
                    .with_context(|| format!("HTTP under {}", tracer.label()))?;
            let _ = std::fs::remove_dir_all(&dir);
            println!(
                "http{}{} {:<36} {:>9.0} req/s  events {:>8}  lost {}",
                if pinned { " (pinned)" } else { "" },
                if tls { "s" } else { "" },
                tracer.label(),
                http.rate(),
                captured.all_events,
                captured.lost
            );
            Ok((http, captured))
        })?;
        doc.http(plan.http_secs, pinned, tls, samples);
    }
    Ok(())
}

/// Runs `sample(tracer, rep)` `reps` times for every tracer, the tracers taking turns within
/// each repetition (so a machine that gets busier part-way hurts them alike); returns each
/// tracer's samples in order.
fn interleaved<T>(
    reps: usize,
    tracers: &[Tracer],
    mut sample: impl FnMut(Tracer, usize) -> Result<T>,
) -> Result<Vec<(Tracer, Vec<T>)>> {
    let mut samples: Vec<(Tracer, Vec<T>)> = tracers.iter().map(|&t| (t, Vec::new())).collect();
    for rep in 0..reps {
        for (tracer, runs) in &mut samples {
            runs.push(sample(*tracer, rep)?);
        }
    }
    Ok(samples)
}

/// The tracers a whole-program workload runs under: all of them, or in a quick run only
/// untraced and recorderd.
fn whole_run_tracers(plan: &Plan, tools: &Tools) -> Vec<Tracer> {
    if plan.quick {
        vec![Tracer::None, Tracer::Recorderd]
    } else {
        tools.available.clone()
    }
}

/// Paced writes under recorderd, stepping the rate up until the workload cannot keep pace
/// or loss is well past zero.
fn capacity(plan: &Plan, bins: &Bins, work: &Path, doc: &mut report::Doc) -> Result<()> {
    for (size, rates) in &plan.capacity {
        let mut steps = Vec::new();
        let mut lossy_steps = 0;
        for &rate in rates {
            let dir = work.join(format!("capacity-{size}-{rate}"));
            let args = vec![
                "paced".to_owned(),
                size.to_string(),
                rate.to_string(),
                plan.capacity_ms.to_string(),
            ];
            let sample = gated(bins, Tracer::Recorderd, args, &dir, Scope::DataFds)?;
            let step = report::Step::new(rate, plan.capacity_ms, &sample);
            println!(
                "capacity {size} B at {rate}/s: achieved {:.0}/s, recorded {} of {}, lost {}",
                step.achieved, step.recorded, step.made, step.lost
            );
            let (lossy, behind) = (step.missing() > 0, step.achieved < 0.8 * rate as f64);
            steps.push(step);
            lossy_steps += usize::from(lossy);
            if behind || lossy_steps >= 2 {
                break;
            }
        }
        doc.capacity(*size, plan.capacity_ms, steps);
    }
    Ok(())
}
