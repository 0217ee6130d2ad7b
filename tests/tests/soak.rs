//! The soak (`cargo xtask soak --minutes N`, ignored by a plain `cargo test`): the service
//! records the workload's mixed load (HTTP, file churn, forks, PostgreSQL) for N minutes,
//! rotating segments every minute, sweeping every minute and reloading on SIGHUP every 20 s,
//! while recorderd's resident memory, open descriptors and CPU are sampled. It fails on a
//! growth trend past the tolerances below, on a file write, request, fork or query neither
//! recorded nor counted as lost, and on the secret anywhere in what recorderd wrote. See:
//! issue #16.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use recorder_proto::v1::payload::Direction;
use recorder_tests::{
    binary, contains, decompressed_segment, parse_report, require_privileges, segment_files,
    servers::Postgres, wait_timeout, Recorder, Recording, STEP_TIMEOUT,
};

/// Samples before this are the warm-up: pools, tables and the allocator fill.
const WARM_UP: Duration = Duration::from_secs(60);
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const RELOAD_EVERY: Duration = Duration::from_secs(20);
/// Tolerances after the warm-up. Memory: the least-squares line through the resident set
/// may rise by at most this much over the run, plus 5 % of its mean...
const RSS_SLACK_BYTES: f64 = 16.0 * 1024.0 * 1024.0;
/// ...descriptors by at most this many over the warm-up's most (a segment being rotated,
/// a control connection)...
const FD_SLACK: u64 = 4;
/// ...and CPU per second in the last half at most this many times the first half's.
const CPU_RATIO: f64 = 1.5;

struct Sample {
    at: Duration,
    rss_bytes: u64,
    fds: u64,
    cpu_ticks: u64,
}

#[test]
#[ignore = "the soak runs for minutes: cargo xtask soak --minutes N"]
fn soak() {
    if !require_privileges() {
        return;
    }
    let minutes: u64 = std::env::var("RECORDER_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(3);
    let work = tempfile::tempdir().unwrap();
    let base = work.path();
    let secret = format!("soaksecret{}", std::process::id());
    std::fs::create_dir(base.join("postgres")).unwrap();
    let postgres = Postgres::start(&base.join("postgres"), &secret, &[], &[]);
    std::fs::create_dir(base.join("files")).unwrap();
    // The workload's own directory must be writable by it and readable by the test.
    let recordings = base.join("recordings");
    let socket = base.join("control.sock");
    let config = base.join("recorderd.toml");
    write_config(&config, &recordings, &socket, false);

    let mut service = Recorder::spawn(&["--config", config.to_str().unwrap()], &[]);
    service.wait_for_line("recorderd: service listening");
    let service_pid = service.child.id();

    let seconds = minutes * 60;
    let workload = Command::new(binary("recorder-workload"))
        .args([
            "soak",
            &seconds.to_string(),
            base.join("files").to_str().unwrap(),
        ])
        .env("SOAK_SECRET", &secret)
        .env("SOAK_PG", postgres.conninfo())
        .env("PGPASSWORD", &secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // A short recording first, finished within the first minute, for the sweeps to delete.
    let short = control(
        &socket,
        &["start", "--pid", &workload.id().to_string(), "--for", "5s"],
    );
    assert!(
        short.status.success(),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
    let long = control(
        &socket,
        &[
            "start",
            "--pid",
            &workload.id().to_string(),
            "--for",
            &format!("{}s", seconds + 120),
        ],
    );
    assert!(
        long.status.success(),
        "{}",
        String::from_utf8_lossy(&long.stderr)
    );
    let long_id = started_id(&long);
    let workload_pid = workload.id();
    let mut workload = workload;
    workload.stdin.take().unwrap().write_all(b"go\n").unwrap();

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut reloads = 0u32;
    let mut next_reload = RELOAD_EVERY;
    // The last sample is taken while the workload still runs.
    while started.elapsed() + SAMPLE_EVERY < Duration::from_secs(seconds) {
        std::thread::sleep(SAMPLE_EVERY);
        samples.push(sample(service_pid, started.elapsed()));
        if started.elapsed() >= next_reload {
            reloads += 1;
            write_config(&config, &recordings, &socket, !reloads.is_multiple_of(2));
            // SAFETY: signalling the service we started.
            unsafe { libc::kill(service_pid as i32, libc::SIGHUP) };
            service.wait_for_line("recorderd: reloaded");
            next_reload += RELOAD_EVERY;
        }
    }
    let status = wait_timeout(&mut workload, *STEP_TIMEOUT);
    assert!(status.success(), "the workload failed: {status}");
    let mut report = String::new();
    std::io::Read::read_to_string(workload.stdout.as_mut().unwrap(), &mut report).unwrap();
    let report = parse_report(&report.replace(' ', "\n"));
    // The recording ends with the workload; SIGTERM finishes whatever is still being written.
    // SAFETY: as above.
    unsafe { libc::kill(service_pid as i32, libc::SIGTERM) };
    assert!(wait_timeout(&mut service.child, *STEP_TIMEOUT).success());

    print_samples(&samples);
    assert_no_growth(&samples);
    let segments: Vec<PathBuf> = segment_files(&recordings)
        .into_iter()
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .contains(&long_id[..12])
        })
        .collect();
    assert!(
        segments.len() as u64 >= minutes,
        "a segment a minute: {segments:?}"
    );
    assert_accounted(&segments, &report, &base.join("files"), workload_pid);
    assert_no_secret(&recordings, &secret);
    let audit = std::fs::read_to_string(recordings.join("audit.log")).unwrap();
    assert!(
        audit.contains("\"sweep.delete\""),
        "a sweep deleted the short recording"
    );
    println!(
        "soak: {minutes} min, {} segments, {reloads} reloads, workload {report:?}",
        segments.len()
    );
}

/// The service's config: a segment a minute, a sweep a minute that deletes what is a
/// minute old, the workload as the target; `extra_key` changes the redaction policy, so
/// that each reload compiles a new one.
fn write_config(config: &Path, recordings: &Path, socket: &Path, extra_key: bool) {
    let extra_keys = if extra_key { "[\"soak_key\"]" } else { "[]" };
    let text = format!(
        "[storage]\ndir = \"{}\"\nsegment_duration = \"1m\"\n\n\
         [retention]\nmax_age = \"1m\"\nsweep_interval = \"1m\"\n\n\
         [control]\nsocket = \"{}\"\n\n\
         [[targets]]\nname = \"workload\"\nexe = \"{}\"\n\n\
         [redaction]\nextra_keys = {extra_keys}\n",
        recordings.display(),
        socket.display(),
        binary("recorder-workload")
            .canonicalize()
            .unwrap()
            .display(),
    );
    std::fs::write(config, text).unwrap();
}

/// `recorder ARGS --socket SOCKET`, as root.
fn control(socket: &Path, args: &[&str]) -> Output {
    Command::new(binary("recorder"))
        .args(args)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .expect("run recorder")
}

fn started_id(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .strip_prefix("recording ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no recording id in {stdout:?}"))
        .to_owned()
}

fn sample(pid: u32, at: Duration) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name's closing parenthesis: state is field 3, utime and stime 14, 15.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let cpu_ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Sample {
        at,
        rss_bytes: rss_kib * 1024,
        fds,
        cpu_ticks,
    }
}

fn print_samples(samples: &[Sample]) {
    println!("soak: seconds  rss_MiB  fds  cpu_ticks");
    for sample in samples {
        println!(
            "soak: {:7.0}  {:7.1}  {:3}  {:9}",
            sample.at.as_secs_f64(),
            sample.rss_bytes as f64 / 1048576.0,
            sample.fds,
            sample.cpu_ticks
        );
    }
}

fn assert_no_growth(samples: &[Sample]) {
    let (warm, steady): (Vec<&Sample>, Vec<&Sample>) =
        samples.iter().partition(|sample| sample.at < WARM_UP);
    assert!(steady.len() >= 4, "too short a soak to see a trend");
    // Memory: the least-squares slope over the steady part, times its length.
    let xs: Vec<f64> = steady.iter().map(|s| s.at.as_secs_f64()).collect();
    let ys: Vec<f64> = steady.iter().map(|s| s.rss_bytes as f64).collect();
    let n = xs.len() as f64;
    let (mean_x, mean_y) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let covariance: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
    let growth = covariance / variance * (xs[xs.len() - 1] - xs[0]);
    assert!(
        growth <= RSS_SLACK_BYTES + 0.05 * mean_y,
        "recorderd's resident memory grew by {:.1} MiB over the steady part (mean {:.1} MiB)",
        growth / 1048576.0,
        mean_y / 1048576.0
    );
    let warm_fds = warm.iter().map(|s| s.fds).max().unwrap_or(0);
    let most_fds = steady.iter().map(|s| s.fds).max().unwrap();
    assert!(
        most_fds <= warm_fds + FD_SLACK,
        "recorderd's open descriptors grew from {warm_fds} to {most_fds}"
    );
    let half = steady.len() / 2;
    let rate = |part: &[&Sample]| {
        let (first, last) = (part[0], part[part.len() - 1]);
        (last.cpu_ticks - first.cpu_ticks) as f64 / (last.at - first.at).as_secs_f64()
    };
    let (early, late) = (rate(&steady[..=half]), rate(&steady[half..]));
    assert!(
        late <= early * CPU_RATIO + 1.0,
        "recorderd's CPU rose from {early:.1} to {late:.1} ticks a second"
    );
}

/// What the workload did is recorded, or within the records counted lost: each file write
/// (on a descriptor named by its file), each HTTP request's `connect`, each forked child's
/// `open` of its file, and each query's `psql`.
fn assert_accounted(
    segments: &[PathBuf],
    report: &std::collections::HashMap<String, String>,
    files: &Path,
    workload_pid: u32,
) {
    let made = |key: &str| report[key].parse::<u64>().unwrap();
    let churned = files.join("soak-").display().to_string();
    let forked = files.join("fork-").display().to_string();
    let (mut writes, mut connects, mut fork_opens) = (0u64, 0u64, 0u64);
    // Processes that ran psql: Debian's `psql` is a wrapper that execs the real one.
    let mut psql_pids = std::collections::BTreeSet::new();
    let mut lost = 0u64;
    // Writes of a churned file's lines, whatever name their descriptor was given: if the
    // count of writes falls short, this says whether events or names went missing.
    let mut lines_written = 0u64;
    let mut named_otherwise = std::collections::BTreeMap::<String, u64>::new();
    for path in segments {
        let recording = Recording::read(path);
        let trailer = recording
            .trailer
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no trailer", path.display()));
        // Each of these can be a syscall without its event: its record lost, its enter not
        // stashed (so its exit not recorded), or its frame not written.
        lost += trailer
            .losses
            .map_or(0, |l| l.syscalls + l.stash_failures + l.unwritten_frames);
        for event in &recording.events {
            match (event.syscall.as_str(), event.payload.as_ref()) {
                ("write", Some(payload)) if payload.direction() == Direction::Out => {
                    let name = event.resource.as_ref().map_or("", |r| r.name.as_str());
                    writes += u64::from(name.starts_with(&churned));
                    if payload.data.starts_with(b"line ")
                        && payload.data.windows(10).any(|w| w == b" user=soak")
                    {
                        lines_written += 1;
                        if !name.starts_with(&churned) {
                            *named_otherwise.entry(name.to_owned()).or_default() += 1;
                        }
                    }
                }
                // The requests are the only connections the workload's own process makes.
                ("connect", _) if event.pid == workload_pid && event.ret == 0 => connects += 1,
                ("open" | "openat", _) if event.ret >= 0 && event.path.starts_with(&forked) => {
                    fork_opens += 1
                }
                ("execve", _) if event.ret == 0 && event.path.ends_with("/psql") => {
                    psql_pids.insert(event.pid);
                }
                _ => {}
            }
        }
    }
    for (what, made, recorded) in [
        ("file writes", made("file_writes"), writes),
        ("HTTP requests' connects", made("requests"), connects),
        ("forked children's opens", made("forks"), fork_opens),
        (
            "queries' psql processes",
            made("queries"),
            psql_pids.len() as u64,
        ),
    ] {
        assert!(
            recorded <= made && made <= recorded + lost,
            "{what}: {made} made, {recorded} recorded, {lost} syscalls counted lost; \
             {lines_written} writes of the files' lines, of which named otherwise: \
             {named_otherwise:?}"
        );
    }
}

/// Neither a segment's bytes (decompressed) nor the audit log holds the secret.
fn assert_no_secret(recordings: &Path, secret: &str) {
    for path in segment_files(recordings) {
        assert!(
            !contains(&decompressed_segment(&path), secret.as_bytes()),
            "the secret is in {}",
            path.display()
        );
    }
    let audit = std::fs::read(recordings.join("audit.log")).unwrap();
    assert!(
        !contains(&audit, secret.as_bytes()),
        "the secret is in the audit log"
    );
}

/// The trend checks themselves, on made-up samples (no privileges needed): a steady run
/// passes; a resident set that climbs 1 MiB a sample, descriptors that leak, and CPU that
/// doubles each fail.
#[test]
fn growth_past_the_tolerances_fails_the_soak() {
    let run = |rss: &dyn Fn(u64) -> u64, fds: &dyn Fn(u64) -> u64, cpu: &dyn Fn(u64) -> u64| {
        let samples: Vec<Sample> = (1..=36)
            .map(|i| Sample {
                at: SAMPLE_EVERY * i as u32,
                rss_bytes: rss(i),
                fds: fds(i),
                cpu_ticks: cpu(i),
            })
            .collect();
        std::panic::catch_unwind(|| assert_no_growth(&samples)).is_ok()
    };
    let steady_rss = |i: u64| (110 << 20) + (i % 3) * 4096;
    let steady_fds = |_| 60;
    let steady_cpu = |i: u64| 300 + 30 * i;
    // The failing runs' panics are expected: kept out of the test's output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let passed = [
        run(&steady_rss, &steady_fds, &steady_cpu),
        run(&|i| (110 << 20) + i * (1 << 20), &steady_fds, &steady_cpu),
        run(&steady_rss, &|i| 60 + i, &steady_cpu),
        run(&steady_rss, &steady_fds, &|i| 300 + 30 * i + 10 * i * i),
    ];
    std::panic::set_hook(default_hook);
    assert_eq!(passed, [true, false, false, false]);
}
