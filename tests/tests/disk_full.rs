//! A full filesystem mid-recording: the segment being written ends at its last complete frame,
//! recorderd stays up and counts what it cannot write, and resumes in a new segment (opening
//! with a Loss frame) once space returns. Every frame written before is still readable.
//! See: issue #6.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use recorder_tests::{
    binary, record_busy, require_privileges, segment_files as segments, Recording,
};

/// The tmpfs, and the room left on it for the recording once the filler is in.
const DISK_BYTES: u64 = 2 * 1024 * 1024;
const ROOM_BYTES: u64 = 256 * 1024;

/// A small tmpfs mounted for the test; unmounted (lazily, in case something still holds a
/// file on it) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Tmpfs {
        std::fs::create_dir(at).unwrap();
        // mode=0700: recorderd refuses an output directory others can write to.
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={DISK_BYTES},mode=0700"))
            .arg("tmpfs")
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed: {status}");
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("--lazy").arg(&self.0).status();
    }
}

/// The numbers of the workload's `seq N` lines in `recording`, in order.
fn seqs(recording: &Recording) -> Vec<u64> {
    recording
        .events
        .iter()
        .filter(|event| event.syscall == "write")
        .filter_map(|event| {
            let data = &event.payload.as_ref()?.data;
            std::str::from_utf8(data)
                .ok()?
                .strip_prefix("seq ")?
                .trim_end()
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn a_full_disk_keeps_every_earlier_frame_and_the_daemon_alive() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&work.path().join("disk"));
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0u8; (DISK_BYTES - ROOM_BYTES) as usize]).unwrap();

    // The workload writes its file beside the output directory, off the tmpfs.
    let mut recorder = record_busy(&disk.0, &["--segment-bytes", "64KiB"]);
    let workload_pid = recorder.spawned_pid();

    recorder.wait_for_line_containing("Writing stopped");
    assert!(
        recorder.child.try_wait().unwrap().is_none(),
        "recorderd is still running with the disk full"
    );
    let at_failure = segments(&disk.0);
    assert!(
        at_failure.len() > 1,
        "several segments before the disk filled"
    );

    std::fs::remove_file(&filler).unwrap();
    recorder.wait_for_line_containing("Writing resumed");
    assert!(recorder.child.try_wait().unwrap().is_none());
    let first = recorder.stop();
    // SAFETY: the workload is our grandchild; it would otherwise write for 30 s (times the time scale).
    unsafe { libc::kill(workload_pid, libc::SIGKILL) };
    assert_eq!(first, at_failure[0]);

    // Every segment reads to its end through the production reader (it panics otherwise).
    let paths = segments(&disk.0);
    assert!(paths.len() > at_failure.len(), "a segment after the resume");
    let recordings: Vec<Recording> = paths.iter().map(|p| Recording::read(p)).collect();
    for (seq, recording) in recordings.iter().enumerate() {
        assert_eq!(
            recording.header.as_ref().expect("header").segment_seq,
            seq as u32
        );
    }
    // Segments finished before the disk filled are whole: rotated, with every line.
    let rotated = recordings
        .iter()
        .take_while(|r| {
            r.trailer
                .as_ref()
                .is_some_and(|t| t.end_reason == "rotated")
        })
        .count();
    assert!(rotated > 0, "segments finished before the failure");
    let mut written = Vec::new();
    for recording in &recordings {
        written.extend(seqs(recording));
    }
    let before: Vec<u64> = recordings[..rotated].iter().flat_map(seqs).collect();
    assert_eq!(
        before,
        (before[0]..before[0] + before.len() as u64).collect::<Vec<_>>(),
        "lines before the failure are gapless"
    );
    assert!(
        written.windows(2).all(|w| w[0] < w[1]),
        "what is readable is in order"
    );

    // The gap is counted: Loss frames report unwritten frames, at least the missing lines
    // (less what the kernel ring dropped).
    let unwritten: u64 = recordings
        .iter()
        .flat_map(|r| &r.losses)
        .map(|l| l.unwritten_frames)
        .sum();
    let dropped: u64 = recordings
        .iter()
        .flat_map(|r| &r.losses)
        .map(|l| l.syscalls + l.stash_failures)
        .sum();
    let missing: u64 = written.windows(2).map(|w| w[1] - w[0] - 1).sum();
    assert!(unwritten > 0, "Loss frames count unwritten frames");
    assert!(
        missing <= unwritten + dropped,
        "{missing} lines missing, {unwritten} frames unwritten, {dropped} dropped"
    );
    // The segment writing stopped in ends with a trailer saying why, or, when even that did
    // not fit, cleanly at its last complete frame (read above without error).
    assert!(rotated + 1 < recordings.len(), "a cut segment, then more");
    if let Some(trailer) = &recordings[rotated].trailer {
        assert_eq!(trailer.end_reason, "disk full");
    }
    let last = recordings
        .last()
        .unwrap()
        .trailer
        .as_ref()
        .expect("trailer");
    assert_eq!(last.end_reason, "terminated");

    // The reader CLI agrees: the recording verifies, and inspect shows the gap.
    let verify = Command::new(binary("recorder"))
        .arg("verify")
        .arg(&disk.0)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "verify: {stdout}");
    assert!(stdout.starts_with("complete: "), "{stdout}");
    let inspect = Command::new(binary("recorder"))
        .arg("inspect")
        .arg(&disk.0)
        .output()
        .unwrap();
    assert!(inspect.status.success());
    assert!(String::from_utf8_lossy(&inspect.stdout).contains("records not written"));
}
