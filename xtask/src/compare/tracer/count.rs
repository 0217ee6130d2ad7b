//! Counting what each recorder kept: recorderd's recordings through `recorder export`, the
//! text tools' output files line by line, and the floor consumer's summary.

use std::{
    fs::File,
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use super::{Captured, Scope};
use crate::compare::Bins;

/// The value after `"key":` in one line of compact JSON, as a number or a bare string. Keys
/// inside JSON strings are escaped (`\"key\":`), so they never match.
pub fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[at..];
    if let Some(text) = rest.strip_prefix('"') {
        return text.split('"').next();
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

fn json_u64(line: &str, key: &str) -> u64 {
    json_field(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Counts a recordings directory through `recorder export --format jsonl`.
pub(super) fn recorderd_counts(bins: &Bins, dir: &Path, scope: Scope) -> Result<Captured> {
    let mut child = Command::new(bins.dir.join("recorder"))
        .args(["export", "--format", "jsonl"])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("running recorder export")?;
    let mut captured = Captured {
        whole_payloads: Some(0),
        ..Captured::default()
    };
    let stdout = child.stdout.take().context("export stdout")?;
    for line in BufReader::with_capacity(1 << 20, stdout).lines() {
        let line = line?;
        match json_field(&line, "type") {
            Some("event") => {
                captured.all_events += 1;
                let syscall = json_field(&line, "syscall").unwrap_or("");
                let fd = json_field(&line, "fd").and_then(|v| v.parse().ok());
                if scope.counts(syscall, fd) {
                    captured.events += 1;
                    let whole = line.contains("\"incomplete\":false")
                        && line.contains("\"truncated\":false");
                    if whole {
                        *captured.whole_payloads.get_or_insert(0) += 1;
                    }
                    let moved = json_u64(&line, "length");
                    let missing = json_u64(&line, "lost_bytes") + json_u64(&line, "capped_bytes");
                    captured.payload_moved += moved;
                    captured.payload_kept += moved.saturating_sub(missing);
                }
            }
            Some("loss") => {
                captured.lost += json_u64(&line, "syscalls")
                    + json_u64(&line, "payload_chunks")
                    + json_u64(&line, "stash_failures")
                    + json_u64(&line, "payloads_shed");
            }
            _ => {}
        }
    }
    let status = child.wait()?;
    // Exit 3 is "incomplete"; everything readable was still exported.
    if !status.success() && status.code() != Some(3) {
        bail!("recorder export {} failed ({status})", dir.display());
    }
    captured.disk_bytes = dir_bytes(dir)?;
    Ok(captured)
}

fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// One parsed output line: syscall name and first descriptor argument.
pub(super) type Parsed<'a> = Option<(&'a str, Option<i64>)>;

pub(super) fn text_counts(
    path: &Path,
    scope: Scope,
    parse: fn(&str) -> Parsed<'_>,
) -> Result<Captured> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut captured = Captured {
        disk_bytes: file.metadata()?.len(),
        ..Captured::default()
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut raw = Vec::new();
    while reader.read_until(b'\n', &mut raw)? > 0 {
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim_end();
        if let Some(lost) = lost_count(line) {
            captured.lost += lost;
        } else if let Some((syscall, fd)) = parse(line) {
            captured.all_events += 1;
            if scope.counts(syscall, fd) {
                captured.events += 1;
            }
        }
        raw.clear();
    }
    Ok(captured)
}

/// bpftrace's "Lost N events" and perf's "LOST N events!".
fn lost_count(line: &str) -> Option<u64> {
    let rest = line
        .strip_prefix("Lost ")
        .or_else(|| line.trim_start().strip_prefix("LOST "))?;
    rest.split_whitespace().next()?.parse().ok()
}

fn leading_fd(args: &str) -> Option<i64> {
    let digits: String = args
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// `[PID ]name(fd, ...` — skips exit notes, signals and the second half of split calls.
pub(super) fn parse_strace(line: &str) -> Parsed<'_> {
    let line = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
    if line.starts_with("+++") || line.starts_with("---") || line.starts_with('<') {
        return None;
    }
    let (name, args) = line.split_once('(')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    Some((name, leading_fd(args)))
}

/// `  0.000 ( 0.045 ms): comm/tid name(fd: 4</path>, ...) = 4`; with `-p` there is no
/// `comm/tid`.
pub(super) fn parse_perf(line: &str) -> Parsed<'_> {
    let (_, rest) = line.split_once("): ")?;
    let call = match rest.split_once(' ') {
        Some((first, tail)) if !first.contains('(') => tail,
        _ => rest,
    };
    let (name, args) = call.split_once('(')?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let fd = args.strip_prefix("fd: ").and_then(leading_fd);
    Some((name, fd))
}

/// Our script's `name fd ...` lines (`probe` prints the whole tracepoint name).
pub(super) fn parse_bpftrace(line: &str) -> Parsed<'_> {
    let line = line
        .strip_prefix("tracepoint:syscalls:sys_enter_")
        .unwrap_or(line);
    let mut words = line.split(' ');
    let name = words.next()?;
    let fd = words.next()?.parse().ok();
    (!name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
    .then_some((name, fd))
}

pub(super) fn floor_counts(stdout: &Path) -> Result<Captured> {
    let text = std::fs::read_to_string(stdout)?;
    let value = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Captured {
        events: value("records"),
        all_events: value("records"),
        lost: value("losses"),
        ..Captured::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_tool() {
        assert_eq!(
            parse_strace("1234  write(101, \"abc\", 3) = 3\n"),
            Some(("write", Some(101)))
        );
        assert_eq!(parse_strace("+++ exited with 0 +++"), None);
        assert_eq!(parse_strace("<... read resumed>\"x\", 1) = 1"), None);
        assert_eq!(
            parse_perf("     0.070 ( 0.019 ms): cat/19684 close(fd: 4</etc/locale.alias>) = 0"),
            Some(("close", Some(4)))
        );
        assert_eq!(
            parse_perf("     0.056 ( 0.024 ms): write(fd: 101, buf: 0x55d2, count: 64)    = 64"),
            Some(("write", Some(101)))
        );
        assert_eq!(
            parse_perf("  ? (  ):  ... [continued]: read())   = 3"),
            None
        );
        assert_eq!(
            parse_bpftrace("pwrite64 104 64 {\\x22order"),
            Some(("pwrite64", Some(104)))
        );
        assert_eq!(parse_bpftrace("Attaching 20 probes..."), None);
        assert_eq!(
            parse_bpftrace("tracepoint:syscalls:sys_enter_writev 7"),
            Some(("writev", Some(7)))
        );
        assert_eq!(lost_count("Lost 12 events"), Some(12));
        let line =
            r#"{"fd":100,"payload":{"utf8_preview":"\"fd\":7"},"syscall":"write","type":"event"}"#;
        assert_eq!(json_field(line, "fd"), Some("100"));
        assert_eq!(json_field(line, "syscall"), Some("write"));
        assert_eq!(json_field(line, "type"), Some("event"));
    }
}
