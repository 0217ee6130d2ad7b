//! dist/recorderd.service: `systemd-analyze verify` accepts it, and
//! `systemd-analyze security --offline=true` rates its exposure at most 2.0 (the eBPF agents
//! people commonly deploy ship units rated 8 to 9.5). The figure is in docs/OPERATIONS.md.

use std::{path::Path, process::Command};

use recorder_tests::binary;

const MAX_EXPOSURE: f64 = 2.0;

/// The unit with ExecStart pointing at the recorderd just built: verify checks it exists.
fn unit_under_test(dir: &Path) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/recorderd.service");
    let text = std::fs::read_to_string(&shipped).expect("dist/recorderd.service");
    assert!(
        text.contains("ExecStart=/usr/local/bin/recorderd --config /etc/recorderd/recorderd.toml")
    );
    let built = binary("recorderd");
    let unit = dir.join("recorderd.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/recorderd", built.to_str().unwrap()),
    )
    .unwrap();
    unit
}

fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .unwrap_or_else(|error| {
            panic!("systemd-analyze is missing ({error}): `cargo xtask setup` installs it")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_unit_verifies_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let (ok, text) = systemd_analyze(&["verify"], &unit);
    assert!(ok, "systemd-analyze verify failed:\n{text}");
    assert!(
        !text.contains("recorderd.service:"),
        "warnings about the unit:\n{text}"
    );
}

#[test]
fn the_unit_exposure_is_at_most_two() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let (ok, text) = systemd_analyze(&["security", "--offline=true", "--threshold=20"], &unit);
    assert!(ok, "systemd-analyze security failed:\n{text}");
    let exposure: f64 = text
        .lines()
        .find_map(|line| {
            line.split("Overall exposure level for recorderd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    eprintln!("exposure {exposure}");
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} > {MAX_EXPOSURE}:\n{text}"
    );
}
