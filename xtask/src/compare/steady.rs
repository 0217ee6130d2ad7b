//! What one event costs recorderd in steady state, apart from what a recording costs once:
//! its heap allocations (under the counting build) and its CPU, each from the syscall-heavy
//! loops at their length and at ten times it.

use std::{path::Path, process::Command};

use anyhow::{Context as _, Result};

use super::{
    gated, report, syscalls_args,
    tracer::{Captured, Scope, Tracer},
    workload, Bins, Plan,
};
use crate::setup;

/// recorderd built with its counting global allocator (`--features count-allocations`), in
/// a target directory of its own so the measured binaries stay as they are.
fn build_counting(root: &Path, bins: &Bins) -> Result<Bins> {
    let target = bins.dir.join("count-allocations");
    let mut cargo = Command::new("cargo");
    cargo
        .args([
            "build",
            "--release",
            "-p",
            "recorder-daemon",
            "--bin",
            "recorderd",
        ])
        .args(["--features", "count-allocations", "--target-dir"])
        .arg(&target);
    setup::run_checked(cargo.current_dir(root))?;
    Ok(Bins {
        recorderd: target.join("release/recorderd"),
        ..bins.clone()
    })
}

/// Heap allocations per event in steady state: the syscall-heavy loops under the counting
/// build, each at its length and at ten times it; recorderd reports what it allocated from
/// its first batch to its trailer. The start (buffers filling, streams opening) is the same
/// in both runs, so the difference over the difference in events is the steady state.
pub(super) fn allocations(
    plan: &Plan,
    root: &Path,
    bins: &Bins,
    work: &Path,
    doc: &mut report::Doc,
) -> Result<()> {
    if plan.quick {
        return Ok(());
    }
    let counting = build_counting(root, bins)?;
    let mut rows = Vec::new();
    for &(size, iters) in &plan.syscalls {
        let short = counted_allocations(&counting, work, size, iters)?;
        let long = counted_allocations(&counting, work, size, 10 * iters)?;
        println!(
            "allocations {size} B: {} for {} events, {} for {} events",
            short.0, short.1, long.0, long.1
        );
        rows.push(report::Allocations { size, short, long });
    }
    doc.allocations(rows);
    Ok(())
}

/// (heap allocations, events) of one syscall-heavy run under the counting build.
fn counted_allocations(counting: &Bins, work: &Path, size: u64, iters: u64) -> Result<(u64, u64)> {
    let dir = work.join(format!("allocations-{size}-{iters}"));
    let args = syscalls_args(work, size, iters);
    let (_, captured) =
        workload::run_gated(counting, Tracer::Recorderd, &args, &dir, Scope::DataFds)?;
    let stderr = std::fs::read_to_string(dir.join("tracer.stderr")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let allocations = stderr
        .lines()
        .find_map(|line| {
            line.strip_prefix("recorderd: ")?
                .split_once(" heap allocations")
        })
        .and_then(|(count, _)| count.parse::<u64>().ok())
        .context("the counting recorderd reported no allocations")?;
    Ok((allocations, captured.all_events))
}

/// recorderd's CPU per event in steady state: the syscall-heavy loops under recorderd at
/// their length and at ten times it, in pairs. What a recording costs once (its pipeline
/// filling its buffers, detaching the probes, freeing its memory) is in both runs alike, so
/// the difference in CPU over the difference in events is an event's cost, apart from it.
pub(super) fn cpu(plan: &Plan, bins: &Bins, work: &Path, doc: &mut report::Doc) -> Result<()> {
    let mut rows = Vec::new();
    for &(size, iters) in &plan.syscalls {
        let run = |iters: u64, rep: usize| -> Result<Captured> {
            let dir = work.join(format!("steady-{size}-{iters}-{rep}"));
            let args = syscalls_args(work, size, iters);
            let sample = gated(bins, Tracer::Recorderd, args, &dir, Scope::DataFds)?;
            println!(
                "{}",
                report::progress("steady", size, Tracer::Recorderd, &sample)
            );
            Ok(sample.captured)
        };
        let pairs = (0..plan.reps)
            .map(|rep| Ok((run(iters, rep)?, run(10 * iters, rep)?)))
            .collect::<Result<_>>()?;
        rows.push(report::SteadyRuns { size, pairs });
    }
    doc.steady(rows);
    Ok(())
}
