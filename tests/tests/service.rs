//! The service (`recorderd --config FILE`) with the real probes: the control socket lets
//! members of its group start, list and stop recordings without root and refuses everyone
//! else; only configured targets are recorded; SIGHUP reloads redaction without dropping a
//! running recording; SIGTERM finishes every recording with its trailer.

use std::{
    io::{Read, Write},
    os::unix::{fs::PermissionsExt, net::UnixStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use recorder_tests::{
    binary, build_compat_program, require_privileges, segment_files, wait_timeout, Recorder,
    Recording, STEP_TIMEOUT,
};

/// The group the tests give the control socket; uid 65534 stands in for its members.
const CONTROL_GROUP: &str = "nogroup";
const NOGROUP_GID: &str = "65534";
/// A gid that is not the control group.
const OTHER_GID: &str = "12345";

const CONFIG: &str = "recorderd.toml";
const SOCKET: &str = "run/control.sock";
const RECORDINGS: &str = "recordings";

/// The service's config in `base`: storage, socket and one target (the workload, by its
/// executable) from here, then `extra`.
fn write_config(base: &Path, extra: &str) {
    let text =
        format!(
        "[storage]\ndir = \"{}\"\n\n[control]\nsocket = \"{}\"\ngroup = \"{CONTROL_GROUP}\"\n\n\
         [[targets]]\nname = \"workload\"\nexe = \"{}\"\n\n{extra}",
        base.join(RECORDINGS).display(),
        base.join(SOCKET).display(),
        binary("recorder-workload").canonicalize().unwrap().display(),
    );
    std::fs::write(base.join(CONFIG), text).unwrap();
}

/// A running service with its own config, recordings directory and socket.
struct Service {
    recorder: Recorder,
    base: tempfile::TempDir,
}

impl Service {
    /// Writes the config (the `[storage]` and `[control]` tables are added here) and starts
    /// `recorderd --config` on it.
    fn start(extra_config: &str) -> Service {
        let base = tempfile::tempdir().unwrap();
        // Members need to pass through to the socket and to the `recorder` copy.
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let client = base.path().join("recorder");
        std::fs::copy(binary("recorder"), &client).unwrap();
        std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
        write_config(base.path(), extra_config);
        let config = base.path().join(CONFIG);
        let mut recorder = Recorder::spawn(&["--config", config.to_str().unwrap()], &[]);
        recorder.wait_for_line("recorderd: service listening");
        Service { recorder, base }
    }

    fn config_path(&self) -> PathBuf {
        self.base.path().join(CONFIG)
    }

    fn socket(&self) -> PathBuf {
        self.base.path().join(SOCKET)
    }

    fn recordings(&self) -> PathBuf {
        self.base.path().join(RECORDINGS)
    }

    fn write_config(&self, extra: &str) {
        write_config(self.base.path(), extra);
    }

    /// Runs `recorder ARGS --socket S` as root.
    fn recorder(&self, args: &[&str]) -> Output {
        self.recorder_as(&[], args)
    }

    /// Runs `recorder ARGS --socket S` under `setpriv SETPRIV_ARGS` (another uid and groups).
    fn recorder_as(&self, setpriv: &[&str], args: &[&str]) -> Output {
        self.command_as(setpriv, args)
            .output()
            .expect("run recorder")
    }

    /// `recorder ARGS --socket S` under `setpriv SETPRIV_ARGS`, to run.
    fn command_as(&self, setpriv: &[&str], args: &[&str]) -> Command {
        let client = self.base.path().join("recorder");
        let socket = self.socket();
        let mut command = if setpriv.is_empty() {
            Command::new(&client)
        } else {
            let mut command = Command::new("setpriv");
            command.args(setpriv).arg(&client);
            command
        };
        command
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .env_remove("RECORDER_SOCKET")
            .stdin(Stdio::null());
        command
    }

    fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.recorder.child.id() as i32, signal) };
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.recorder.child.kill();
        let _ = self.recorder.child.wait();
    }
}

/// uid 65534 in the control group (as its primary group) or outside it.
fn member() -> Vec<&'static str> {
    vec![
        "--reuid=65534",
        "--regid",
        OTHER_GID,
        "--groups",
        NOGROUP_GID,
    ]
}

fn outsider() -> Vec<&'static str> {
    vec!["--reuid=65534", "--regid", OTHER_GID, "--clear-groups"]
}

/// The busy workload (a configured target by its executable), killed on drop.
struct Workload(Child);

impl Workload {
    fn start(dir: &Path) -> Workload {
        let output = dir.join(format!("busy-{}.txt", rand_suffix()));
        Workload(
            Command::new(binary("recorder-workload"))
                .arg("busy")
                .arg(output)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn workload"),
        )
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `recorder start …` must succeed; returns the new recording's id.
fn started_id(output: &Output) -> String {
    assert!(
        output.status.success(),
        "start failed: {}{}",
        stdout(output),
        stderr(output)
    );
    let text = stdout(output);
    text.strip_prefix("recording ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no id in {text}"))
        .to_owned()
}

/// `recorder stop ID` must succeed; returns the segment paths it printed.
fn stopped_paths(output: &Output, reason: &str) -> Vec<PathBuf> {
    let text = stdout(output);
    assert!(
        output.status.success() && text.contains(&format!("stopped ({reason})")),
        "stop failed: {text}{}",
        stderr(output)
    );
    text.lines()
        .filter_map(|line| line.strip_prefix("recording: "))
        .map(PathBuf::from)
        .collect()
}

/// Polls `recorder status --json` (the service's own state, no sleeping in place of it)
/// until `done` holds of it.
fn wait_for_status(
    service: &Service,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + *STEP_TIMEOUT;
    loop {
        let output = service.recorder(&["status", "--json"]);
        assert!(
            output.status.success(),
            "status failed: {}",
            stderr(&output)
        );
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "status never got there: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn running(status: &serde_json::Value) -> Vec<serde_json::Value> {
    status["recordings"].as_array().cloned().unwrap_or_default()
}

#[test]
fn members_start_list_and_stop_and_everyone_else_is_refused() {
    if !require_privileges() {
        return;
    }
    // `[capture] tls = "off"`: the service's recordings set no uprobes.
    let service = Service::start(
        "[limits]\nmax_duration = \"10m\"\nmax_concurrent = 1\n[capture]\ntls = \"off\"\n",
    );
    // Least privilege: probes (BPF, PERFMON), other users' /proc (DAC_READ_SEARCH,
    // SYS_PTRACE) and the real-time drain thread (SYS_NICE), nothing else; CAP_CHOWN went
    // once the socket had its group.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", service.recorder.child.id())).unwrap();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    assert_eq!(
        u64::from_str_radix(effective, 16).unwrap(),
        (1 << 39) | (1 << 38) | (1 << 2) | (1 << 19) | (1 << 23),
        "{status}"
    );
    let socket_meta = std::fs::metadata(service.socket()).unwrap();
    assert_eq!(socket_meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&socket_meta),
        NOGROUP_GID.parse::<u32>().unwrap()
    );
    let workload = Workload::start(service.base.path());

    // Outside the group: the socket's mode stops them...
    let refused = service.recorder_as(&outsider(), &["status"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Permission denied"),
        "{}",
        stderr(&refused)
    );
    // ...and so does the service's own peer check, should the mode ever be wrong.
    std::fs::set_permissions(service.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = service.recorder_as(&outsider(), &["start", "--pid", &workload.pid()]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not in the control group"),
        "{}",
        stderr(&refused)
    );
    std::fs::set_permissions(service.socket(), std::fs::Permissions::from_mode(0o660)).unwrap();

    // A member (by supplementary group) records a configured target, within the limits.
    let too_long = service.recorder_as(
        &member(),
        &["start", "--pid", &workload.pid(), "--for", "2h"],
    );
    assert!(
        stderr(&too_long).contains("max_duration"),
        "{}",
        stderr(&too_long)
    );
    let not_a_target = service.recorder_as(
        &member(),
        &["start", "--pid", &std::process::id().to_string()],
    );
    assert!(!not_a_target.status.success());
    assert!(
        stderr(&not_a_target).contains("none of the targets"),
        "{}",
        stderr(&not_a_target)
    );
    let id = started_id(&service.recorder_as(
        &member(),
        &["start", "--pid", &workload.pid(), "--for", "5m"],
    ));
    let second = service.recorder_as(&member(), &["start", "--pid", &workload.pid()]);
    assert!(
        stderr(&second).contains("max_concurrent"),
        "{}",
        stderr(&second)
    );

    let status = wait_for_status(&service, |status| {
        running(status)
            .first()
            .is_some_and(|r| r["events"].as_u64().unwrap_or(0) > 0)
    });
    let listed = &running(&status)[0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["requested_by"], "nobody");
    assert!(listed["target"].as_str().unwrap().contains(&workload.pid()));
    let table = stdout(&service.recorder_as(&member(), &["status"]));
    assert!(
        table.contains("1 of 1 recordings running") && table.contains(&id),
        "{table}"
    );

    let paths = stopped_paths(
        &service.recorder_as(&member(), &["stop", &id[..8]]),
        "stopped on request",
    );
    let recording = Recording::read(&paths[0]);
    assert_eq!(recording.header.as_ref().unwrap().recording_id, id);
    let pid: u32 = workload.pid().parse().unwrap();
    assert!(
        !recording.of_pid(pid).is_empty(),
        "the workload's writes were recorded"
    );
    let last = Recording::read(paths.last().unwrap());
    assert_eq!(
        last.trailer.expect("a trailer").end_reason,
        "stopped on request"
    );
    let status = wait_for_status(&service, |status| running(status).is_empty());
    assert_eq!(status["max_concurrent"], 1);
    let header = recording.header.unwrap();
    assert_eq!(
        header.target.unwrap().requested_by,
        "nobody (uid 65534) via the control socket"
    );
    let limits = header.limits.unwrap();
    assert_eq!(
        (limits.tls.as_str(), limits.tls_libraries.len()),
        ("off", 0)
    );

    // The audit log has who did what, and its chain holds.
    let entries = audit_entries(&service);
    let events: Vec<&str> = entries
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events[0], "daemon.start");
    assert!(events.contains(&"control.refused"), "{events:?}");
    let started = entries
        .iter()
        .find(|e| e["event"] == "recording.start")
        .unwrap();
    assert_eq!(
        (started["id"].as_str(), started["by"]["uid"].as_u64()),
        (Some(id.as_str()), Some(65534))
    );
    let stopped = entries
        .iter()
        .find(|e| e["event"] == "recording.stop")
        .unwrap();
    assert_eq!(stopped["reason"], "stopped on request");
    assert!(stopped["events"].as_u64().unwrap() > 0);
    let verify = Command::new(binary("recorder"))
        .args(["audit", "verify", "--dir"])
        .arg(service.recordings())
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stderr(&verify));
}

fn audit_entries(service: &Service) -> Vec<serde_json::Value> {
    std::fs::read_to_string(service.recordings().join("audit.log"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn sighup_reloads_redaction_and_keeps_running_recordings() {
    if !require_privileges() {
        return;
    }
    let mut service = Service::start("");
    let workload = Workload::start(service.base.path());
    // An old recording, for the new retention policy to sweep at reload.
    let old = started_id(&service.recorder(&["start", "--pid", &workload.pid()]));
    for path in stopped_paths(&service.recorder(&["stop", &old]), "stopped on request") {
        let touched = Command::new("touch")
            .args(["-d", "3 days ago"])
            .arg(&path)
            .status();
        assert!(touched.unwrap().success());
    }
    let before = started_id(&service.recorder(&["start", "--pid", &workload.pid()]));

    service.write_config(
        "[retention]\nmax_age = \"2d\"\n\n\
         [[redaction.rules]]\nname = \"ticket-id\"\npattern = \"TKT-[0-9]{8}\"\n",
    );
    service.signal(libc::SIGHUP);
    service.recorder.wait_for_line("recorderd: reloaded");
    let swept = service.recorder.wait_for_line("recorderd: swept recording");
    assert!(
        swept.contains(&old) && swept.contains("older than 2d"),
        "{swept}"
    );
    assert!(segment_files(&service.recordings())
        .iter()
        .all(|path| !path.to_str().unwrap().contains(&old[..12])));
    let deleted = audit_entries(&service)
        .into_iter()
        .find(|e| e["event"] == "sweep.delete")
        .expect("the deletion is audited");
    assert_eq!(deleted["id"], old.as_str());
    let after = started_id(&service.recorder(&["start", "--pid", &workload.pid()]));
    let status = wait_for_status(&service, |status| running(status).len() == 2);
    assert!(running(&status).iter().any(|r| r["id"] == before.as_str()));

    // A config that does not parse is refused; the service carries on with the last good one.
    std::fs::write(
        service.config_path(),
        "[limits]\nmax_concurrent = \"many\"\n",
    )
    .unwrap();
    service.signal(libc::SIGHUP);
    let refused = service.recorder.wait_for_line("recorderd: reload refused");
    assert!(refused.contains("line 2"), "{refused}");

    let rules = |id: &str| -> Vec<String> {
        let paths = stopped_paths(&service.recorder(&["stop", id]), "stopped on request");
        let first = Recording::read(&paths[0]);
        let last = Recording::read(paths.last().unwrap());
        assert!(last.trailer.is_some(), "{id} was finished with a trailer");
        assert!(!first.events.is_empty(), "{id} recorded events");
        first.header.unwrap().redaction.unwrap_or_default().rules
    };
    assert!(
        !rules(&before).contains(&"ticket-id".to_owned()),
        "the old policy stays"
    );
    assert!(
        rules(&after).contains(&"ticket-id".to_owned()),
        "new recordings get the new policy"
    );
}

#[test]
fn sigterm_finishes_every_recording_with_its_trailer() {
    if !require_privileges() {
        return;
    }
    let mut service = Service::start("");
    let first = Workload::start(service.base.path());
    let second = Workload::start(service.base.path());
    let ids = [
        started_id(&service.recorder(&["start", "--pid", &first.pid()])),
        started_id(&service.recorder(&["start", "--pid", &second.pid()])),
    ];
    service.signal(libc::SIGTERM);
    let status = wait_timeout(&mut service.recorder.child, *STEP_TIMEOUT);
    assert!(
        status.success(),
        "the service exits 0 after SIGTERM ({status})"
    );
    assert!(!service.socket().exists(), "the socket is removed");
    for id in &ids {
        let segments: Vec<PathBuf> = segment_files(&service.recordings())
            .into_iter()
            .filter(|path| path.to_str().unwrap().contains(&id[..12]))
            .collect();
        let last = Recording::read(segments.last().expect("a segment"));
        let trailer = last.trailer.expect("the last segment has a trailer");
        assert_eq!(trailer.end_reason, "terminated");
        let all_events: usize = segments
            .iter()
            .map(|s| Recording::read(s).events.len())
            .sum();
        assert!(all_events > 0, "{id} recorded events");
        for segment in &segments {
            let header = Recording::read(segment).header.expect("a header");
            assert_eq!(&header.recording_id, id);
        }
    }
}

/// `recorder start --pid` of a 32-bit program says, on the line after the start, that its
/// syscalls are counted, not recorded (as recorderd does in the foreground); a 64-bit one
/// gets the start line alone.
#[test]
fn starting_a_32_bit_program_says_its_syscalls_are_counted() {
    if !require_privileges() {
        return;
    }
    let service = Service::start("");
    let program = build_compat_program(service.base.path());
    let mut compat = Command::new(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = compat.id();
    let output = service.recorder(&["start", "--pid", &pid.to_string()]);
    started_id(&output);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "the start line and one note: {text}");
    assert!(
        lines[1].starts_with(&format!("note: pid {pid} runs a 32-bit program"))
            && lines[1].contains("counted"),
        "{text}"
    );
    compat.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(wait_timeout(&mut compat, *STEP_TIMEOUT).success());

    let workload = Workload::start(service.base.path());
    let output = service.recorder(&["start", "--pid", &workload.pid()]);
    started_id(&output);
    assert_eq!(stdout(&output).lines().count(), 1, "{}", stdout(&output));
}

/// A start's probe load (about a second: the kernel verifying the programs) does not hold
/// the service's loop: status requests sent meanwhile are answered at once.
#[test]
fn status_is_answered_while_a_recording_starts() {
    if !require_privileges() {
        return;
    }
    let service = Service::start("");
    let workload = Workload::start(service.base.path());
    let mut start = service
        .command_as(&[], &["start", "--pid", &workload.pid()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // How long each status request sent while the start was pending took to be answered.
    let mut during = Vec::new();
    while start.try_wait().unwrap().is_none() {
        let asked = Instant::now();
        let mut stream = UnixStream::connect(service.socket()).unwrap();
        stream.write_all(b"{\"op\":\"status\"}\n").unwrap();
        let said = answer(&mut stream);
        assert!(said.contains("\"result\":\"status\""), "{said}");
        during.push(asked.elapsed());
    }
    started_id(&start.wait_with_output().unwrap());
    assert!(
        during.len() >= 3,
        "status was asked {} times while the start was pending",
        during.len()
    );
    let slowest = *during.iter().max().unwrap();
    assert!(
        slowest < Duration::from_millis(200) * recorder_tests::time_scale(),
        "a status request took {slowest:?} while a recording started ({} asked)",
        during.len()
    );
}

/// Reads a connection's one-line answer (the service closes it after).
fn answer(stream: &mut UnixStream) -> String {
    stream
        .set_read_timeout(Some(*STEP_TIMEOUT))
        .expect("read timeout");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text
}

#[test]
fn idle_and_endless_clients_do_not_stall_the_control_socket() {
    if !require_privileges() {
        return;
    }
    let service = Service::start("[limits]\nmax_duration = \"10m\"\n[capture]\ntls = \"off\"\n");
    let workload = Workload::start(service.base.path());
    // What a member's `recorder status` takes with nobody else connected: starting setpriv
    // and recorder is most of it, and emulated (`vm-test`) that alone is about a second.
    let asked = Instant::now();
    assert!(service.recorder_as(&member(), &["status"]).status.success());
    let alone = asked.elapsed();

    // One client (root) sends a request line without end...
    let mut endless = UnixStream::connect(service.socket()).unwrap();
    let writer = {
        let mut stream = endless.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = [b'a'; 4096];
            // Until the service gives up on the line and closes.
            while stream.write_all(&chunk).is_ok() {}
        })
    };
    // ...and 50 more connect and send nothing: root's first ones are read in the
    // background until their deadline, the rest are refused at once.
    let mut idle: Vec<UnixStream> = (0..50)
        .map(|_| UnixStream::connect(service.socket()).unwrap())
        .collect();

    // Before the idle clients' 5 s deadline a member is answered at once: the old loop read
    // one client at a time and made them wait 5 s for each idle one.
    let asked = Instant::now();
    let status = service.recorder_as(&member(), &["status"]);
    let took = asked.elapsed();
    assert!(status.status.success(), "{}", stderr(&status));
    // At most 200 ms more than alone (five times that emulated, `time_scale`): far from
    // the 5 s stall.
    assert!(
        took < alone + Duration::from_millis(200) * recorder_tests::time_scale(),
        "status took {took:?} with idle clients connected, {alone:?} alone"
    );
    let id = started_id(&service.recorder_as(
        &member(),
        &["start", "--pid", &workload.pid(), "--for", "5m"],
    ));
    stopped_paths(
        &service.recorder_as(&member(), &["stop", &id]),
        "stopped on request",
    );

    // The endless line was cut at the request size cap, and answered.
    writer.join().unwrap();
    let said = answer(&mut endless);
    assert!(said.contains("not a request"), "{said}");
    // Root's connections past its allowance were refused, saying why.
    let said = answer(idle.last_mut().unwrap());
    assert!(
        said.contains("connections open to recorderd: close some"),
        "{said}"
    );
    // The first idle ones, kept, are told their request came too late.
    let said = answer(&mut idle[0]);
    assert!(said.contains("no request within 5 s"), "{said}");
}
