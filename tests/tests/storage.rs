//! Recordings are private: an output directory others could tamper with is refused before
//! anything is written, and every file recorderd and `recorder` create is 0600 in a 0700
//! directory. See: issue #6.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    process::Command,
};

use recorder_tests::{binary, record_gated_workload, require_privileges};

/// Runs recorderd against OUTPUT and returns its exit code and stderr lines (no panic).
fn refused(output: &Path) -> (i32, Vec<String>) {
    let result = Command::new(binary("recorderd"))
        .args(["--pid", &std::process::id().to_string(), "--output"])
        .arg(output)
        .output()
        .expect("run recorderd");
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let code = result.status.code().expect("an exit code, not a signal");
    (code, stderr.lines().map(str::to_owned).collect())
}

fn assert_empty(dir: &Path) {
    let entries: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(entries.is_empty(), "{} holds {entries:?}", dir.display());
}

#[test]
fn unsafe_output_directories_are_refused_with_the_fix() {
    if !require_privileges() {
        return;
    }
    let base = tempfile::tempdir().unwrap();

    let open = base.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, lines) = refused(&open);
    assert_eq!((code, lines.len()), (2, 1), "{lines:?}");
    assert!(
        lines[0].contains("writable by group or others"),
        "{lines:?}"
    );
    assert!(
        lines[0].contains(&format!("chmod 700 {}", open.display())),
        "{lines:?}"
    );
    assert_empty(&open);

    let real = base.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for output in [link.clone(), link.join("recordings")] {
        let (code, lines) = refused(&output);
        assert_eq!((code, lines.len()), (2, 1), "{lines:?}");
        assert!(
            lines[0].contains(&format!("through the symlink {}", link.display())),
            "{lines:?}"
        );
        assert!(lines[0].contains("realpath"), "{lines:?}");
        assert_empty(&real);
    }

    let theirs = base.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let (code, lines) = refused(&theirs);
    assert_eq!((code, lines.len()), (2, 1), "{lines:?}");
    assert!(lines[0].contains("belongs to uid 65534"), "{lines:?}");
    assert_empty(&theirs);
}

#[test]
fn every_file_of_a_recording_is_0600_in_a_0700_directory() {
    if !require_privileges() {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let recordings = base.path().join("recordings");
    let run = record_gated_workload(&["vectored", work.path().to_str().unwrap()], &recordings);
    let id = run.recording.header.as_ref().unwrap().recording_id.clone();
    // `recorder hold` adds a hold file and the audit log beside the segments.
    let held = Command::new(binary("recorder"))
        .args(["hold", &id, "--reason", "INC-1", "--dir"])
        .arg(&recordings)
        .output()
        .unwrap();
    assert!(held.status.success(), "{held:?}");

    let dir_meta = std::fs::metadata(&recordings).unwrap();
    assert_eq!(dir_meta.mode() & 0o7777, 0o700);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&recordings).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(meta.is_file(), "{name} is a plain file");
        assert_eq!(meta.mode() & 0o7777, 0o600, "{name}");
        assert_eq!(meta.uid(), dir_meta.uid(), "{name}");
        names.push(name);
    }
    names.sort();
    assert!(names.iter().any(|n| n.ends_with(".rcd")), "{names:?}");
    assert!(names.contains(&format!("{id}.hold")), "{names:?}");
    assert!(names.contains(&"audit.log".to_owned()), "{names:?}");
}
