//! `recorder sweep [--dry-run]`: one retention sweep by hand, printing each deletion and why.

use std::{io::Write, path::Path, process::ExitCode, time::SystemTime};

use recorder_config::defaults::OUTPUT_DIR;
use recorder_store::{
    audit::{self, AuditLog},
    retention::{self, format_bytes},
    OutputDir,
};

use super::CommandError;

pub fn run(
    dir: Option<&Path>,
    config: Option<&Path>,
    dry_run: bool,
    out: &mut impl Write,
) -> Result<ExitCode, CommandError> {
    let config = recorder_config::load(config)?;
    let policy = config.retention.policy()?;
    let dir = dir
        .map(Path::to_owned)
        .or(config.storage.dir)
        .unwrap_or_else(|| OUTPUT_DIR.into());
    // Checked before the audit log is created in it.
    OutputDir::open_existing(&dir)?;
    let audit = match dry_run {
        true => None,
        false => Some(AuditLog::open(&audit::path_in(&dir))?),
    };
    let report = retention::sweep(&dir, &policy, SystemTime::now(), dry_run, audit.as_ref())?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for deletion in &report.plan.deletions {
        let names: Vec<String> = deletion
            .segments
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        writeln!(
            out,
            "{verb} {} ({} {}: {}; {}): {}",
            deletion.recording_id,
            names.len(),
            if names.len() == 1 {
                "segment"
            } else {
                "segments"
            },
            names.join(", "),
            format_bytes(deletion.bytes),
            deletion.reason
        )?;
    }
    for kept in &report.plan.kept {
        writeln!(
            out,
            "kept {} ({}, {}): would otherwise go, {}",
            kept.recording_id,
            kept.protection,
            format_bytes(kept.bytes),
            kept.rule
        )?;
    }
    for id in &report.spared {
        writeln!(
            out,
            "kept {id}: it became held or was being written during the sweep"
        )?;
    }
    for unmet in &report.plan.unmet {
        writeln!(out, "warning: {unmet}")?;
    }
    let freed: u64 = report.plan.deletions.iter().map(|d| d.bytes).sum();
    writeln!(
        out,
        "{}: {verb} {} recordings ({}) of {} in {}; kept {} held or being written",
        if dry_run { "dry run" } else { "swept" },
        report.plan.deletions.len(),
        format_bytes(freed),
        format_bytes(report.total_bytes),
        dir.display(),
        report.plan.kept.len() + report.spared.len(),
    )?;
    Ok(ExitCode::SUCCESS)
}
