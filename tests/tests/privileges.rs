//! Least privilege, checked on the running daemon: once its probes are attached, a
//! foreground recorderd keeps only what reading /proc needs, and the service only what
//! loading more probes and reading /proc need (docs/SECURITY.md, "Privileges").

use std::{os::unix::fs::MetadataExt, path::Path};

use recorder_tests::{record_busy, require_privileges, segment_files, Recording};

const CAP_CHOWN: u32 = 0;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;

fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |mask, cap| mask | 1u64 << cap)
}

/// A field of /proc/PID/status.
fn status_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

fn caps_of(pid: u32, set: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, set), 16).unwrap()
}

#[test]
fn a_foreground_recording_keeps_only_what_reading_proc_needs() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    let recorder = record_busy(&output, &[]);
    let pid = recorder.child.id();
    let expected = mask(&[CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE]);
    assert_eq!(caps_of(pid, "CapEff:"), expected, "effective");
    assert_eq!(caps_of(pid, "CapPrm:"), expected, "permitted");
    assert_eq!(caps_of(pid, "CapInh:") | caps_of(pid, "CapAmb:"), 0);
    assert_eq!(caps_of(pid, "CapBnd:"), expected, "bounding");
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    // Still recording after the drop: the trailer is written and the writes are there.
    let path = recorder.stop();
    let recording = Recording::read(Path::new(&path));
    assert!(recording.trailer.is_some());
    assert!(!recording.events.is_empty());
}

/// With a reader group each new segment is given that group (fchown), which root, not being a
/// member, may do only with CAP_CHOWN: segments made after the drop must still get it.
#[test]
fn with_a_reader_group_segments_made_after_the_drop_get_the_group() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("recorderd.toml");
    // nogroup (65534) exists on every Debian host, and root is not a member of it.
    std::fs::write(&config, "[storage]\nreader_group = \"nogroup\"\n").unwrap();
    let output = work.path().join("recordings");
    let mut recorder = record_busy(
        &output,
        &[
            "--config",
            config.to_str().unwrap(),
            "--segment-bytes",
            "64KiB",
        ],
    );
    let pid = recorder.child.id();
    recorder.wait_for_line("workload: 20000 writes");
    let expected = mask(&[CAP_CHOWN, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE]);
    assert_eq!(caps_of(pid, "CapEff:"), expected, "effective");
    recorder.stop();
    let segments = segment_files(&output);
    assert!(segments.len() >= 2, "expected rotation, got {segments:?}");
    for segment in &segments {
        let meta = std::fs::metadata(segment).unwrap();
        assert_eq!(meta.gid(), 65534, "{} group", segment.display());
        assert_eq!(meta.mode() & 0o777, 0o640, "{} mode", segment.display());
    }
}
