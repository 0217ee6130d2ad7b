//! The reader as people use it in an incident: a rotated recording listed, verified,
//! filtered and exported; a damaged one named precisely. See: issue #4.

use std::{path::Path, process::Command};

use recorder_tests::{binary, require_privileges, segment_files};

fn recorder(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(binary("recorder"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr,
    )
}

/// Records 10,000 of the busy workload's writes (about 150 KB of frames) into 64 KiB
/// segments, then stops. Counted in writes, not seconds: emulated (`vm-test`), two seconds
/// made 820 events, one segment.
fn rotated_recording(output: &Path) {
    let mut recorder = recorder_tests::record_busy(output, &["--segment-bytes", "64KiB"]);
    recorder.wait_for_line("workload: 10000 writes");
    recorder.stop();
}

fn record_busy(output: &Path, options: &[&str]) {
    recorder_tests::record_busy(output, options).finish();
}

#[test]
fn segments_also_rotate_by_age() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    record_busy(
        &output,
        &["--segment-duration", "1s", "--duration", "2500ms"],
    );
    let (code, stdout, _) = recorder(&["list", output.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let segments = rows[0]["segments"].as_array().unwrap().len();
    assert!(
        (2..=4).contains(&segments),
        "2.5 s in 1 s segments: {segments}"
    );
    assert_eq!(rows[0]["state"], "complete");
}

#[test]
fn a_rotated_recording_reads_as_one() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    rotated_recording(&output);
    let dir = output.to_str().unwrap();

    let (code, stdout, stderr) = recorder(&["list", dir, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(
        rows.len(),
        1,
        "one recording, however many segments: {stdout}"
    );
    let row = &rows[0];
    let segments = row["segments"].as_array().unwrap().len();
    assert!(segments >= 2, "64 KiB segments rotate: {row}");
    assert_eq!(row["state"], "complete");
    let id = row["id"].as_str().unwrap();

    let (code, stdout, _) = recorder(&["verify", &id[..8], "--dir", dir]);
    assert_eq!(
        (code, stdout.starts_with("complete: ")),
        (0, true),
        "{stdout}"
    );

    // The export holds every numbered line once, in order, across segments.
    let (code, stdout, stderr) = recorder(&["export", dir, "--format", "jsonl"]);
    assert_eq!(code, 0, "{stderr}");
    let frames: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let headers = frames.iter().filter(|f| f["type"] == "header").count();
    let trailers: Vec<&serde_json::Value> =
        frames.iter().filter(|f| f["type"] == "trailer").collect();
    assert_eq!((headers, trailers.len()), (segments, segments));
    assert_eq!(trailers.last().unwrap()["end_reason"], "terminated");
    let lines: Vec<String> = frames
        .iter()
        .filter(|f| f["type"] == "event" && f["syscall"] == "write")
        .filter_map(|f| f["payload"]["utf8_preview"].as_str().map(str::to_owned))
        .filter(|text| text.starts_with("seq "))
        .collect();
    assert!(lines.len() > 1000, "{} writes", lines.len());
    for (expected, line) in lines.iter().enumerate() {
        assert_eq!(line, &format!("seq {expected}\n"));
    }
    let events = frames.iter().filter(|f| f["type"] == "event").count() as u64;
    assert_eq!(events, row["events"].as_u64().unwrap());

    // Filters: one numbered line, found by its payload, on the file's fd only.
    let (code, stdout, _) = recorder(&["inspect", dir, "--grep", "seq 777\n", "--kind", "file"]);
    assert_eq!(code, 0);
    let matches: Vec<&str> = stdout.lines().filter(|l| l.contains(" write ")).collect();
    assert_eq!(matches.len(), 1, "{stdout}");
    assert!(
        matches[0].ends_with("[8 B] \"seq 777\\n\""),
        "{}",
        matches[0]
    );
}

#[test]
fn damage_is_named_by_segment_and_byte() {
    if !require_privileges() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    rotated_recording(&output);
    let segments = segment_files(&output);
    let victim = &segments[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(victim, &bytes).unwrap();

    let (code, stdout, _) = recorder(&["verify", output.to_str().unwrap()]);
    assert_eq!(code, 4, "{stdout}");
    assert!(stdout.starts_with("corrupt: "), "{stdout}");
    assert!(
        stdout.contains(&victim.display().to_string()) && stdout.contains(" at byte "),
        "{stdout}"
    );

    // inspect prints what is readable, then says where it stopped, and exits 4.
    let (code, stdout, stderr) = recorder(&["inspect", victim.to_str().unwrap()]);
    assert_eq!(code, 4, "{stderr}");
    // The header sits in a zstd frame of its own, before the damaged one.
    assert!(
        stdout.starts_with("recording "),
        "the frames before the damage are shown: {stdout}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is corrupt at byte"), "{stderr}");
}

#[test]
fn follow_prints_a_recording_as_it_is_written() {
    if !require_privileges() {
        return;
    }
    use std::io::{BufRead, BufReader};
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("recordings");
    let mut recording = recorder_tests::record_busy(&output, &[]);
    let mut follow = Command::new(binary("recorder"))
        .args([
            "inspect",
            "--follow",
            output.to_str().unwrap(),
            "--grep",
            "seq 2000\n",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // The event appears while recorderd is still recording...
    let seen = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|line| line.contains("\"seq 2000\\n\""));
    assert!(seen.is_some(), "--follow never showed the event");
    assert!(
        recording.child.try_wait().unwrap().is_none(),
        "recorderd is still recording"
    );
    // ...and --follow ends by itself once the recording is finished.
    // SAFETY: signalling the recorderd child we started.
    unsafe { libc::kill(recording.child.id() as i32, libc::SIGTERM) };
    recording.finish();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.last()
            .is_some_and(|line| line.starts_with("end: terminated")),
        "{rest:?}"
    );
    assert!(recorder_tests::wait_timeout(&mut follow, *recorder_tests::STEP_TIMEOUT).success());
}
