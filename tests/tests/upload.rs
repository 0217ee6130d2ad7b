//! The service shipping finished segments and its audit log to a real S3-compatible server
//! (moto, SigV4 checked), and `recorder` reading them back from the bucket: bytes equal to
//! the local segments, the same timeline, sealed ones only with the identity; a SIGKILL in
//! the middle of a multipart upload; a server that stops for 30 s; the queue's bound; wrong
//! credentials; unsealed segments refused.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use recorder_tests::{
    binary, require_privileges,
    s3::{Gate, S3Server},
    segment_files, Recorder, STEP_TIMEOUT,
};

const BUCKET: &str = "fleet-recordings";

/// One host of the fleet: a service, its config and recordings, and the identity its
/// recordings are sealed to.
struct Host {
    base: tempfile::TempDir,
    service: Option<Recorder>,
    /// What stopped services printed.
    said: Vec<String>,
}

impl Host {
    /// A host whose `[upload]` goes to `endpoint`, with credentials holding `secret`;
    /// `storage` and `upload` are added to their tables. Not started yet.
    fn new(server: &S3Server, endpoint: &str, secret: &str, storage: &str, upload: &str) -> Host {
        let base = tempfile::tempdir().unwrap();
        let host = Host {
            base,
            service: None,
            said: Vec::new(),
        };
        server.credentials_file(&host.path("credentials"), secret);
        let config = format!(
            "[storage]\ndir = \"{}\"\n{storage}\n\n[control]\nsocket = \"{}\"\n\n\
             [upload]\nbucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\n\
             credentials_file = \"{}\"\naudit_interval = \"1s\"\npart_size = \"5MiB\"\n{upload}\n",
            host.recordings().display(),
            host.path("control.sock").display(),
            host.path("credentials").display(),
        );
        std::fs::write(host.path("recorderd.toml"), config).unwrap();
        host
    }

    /// A host that seals to a key of its own (`identity`).
    fn sealed(server: &S3Server, upload: &str) -> (Host, PathBuf) {
        let scratch = tempfile::tempdir().unwrap();
        let identity = scratch.keep().join("identity");
        let recipient = keygen(&identity);
        let host = Host::new(
            server,
            &server.endpoint,
            &server.secret_key,
            &format!("segment_duration = \"2s\"\nseal_to = [\"{recipient}\"]"),
            upload,
        );
        (host, identity)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }

    fn recordings(&self) -> PathBuf {
        self.path("recordings")
    }

    fn start(&mut self) {
        let config = self.path("recorderd.toml");
        let mut service = Recorder::spawn(&["--config", config.to_str().unwrap()], &[]);
        service.wait_for_line("recorderd: service listening");
        self.service = Some(service);
    }

    fn service(&mut self) -> &mut Recorder {
        self.service.as_mut().expect("the service runs")
    }

    fn signal(&self, signal: i32) {
        let service = self.service.as_ref().expect("the service runs");
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(service.child.id() as i32, signal) };
    }

    /// SIGTERM, and the service's exit.
    fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let mut service = self.service.take().expect("the service runs");
        let status = recorder_tests::wait_timeout(&mut service.child, *STEP_TIMEOUT);
        assert!(status.success(), "the service failed: {status}");
        service.wait_for_line("recorderd: service stopped");
        self.said.extend(service.stderr_seen);
    }

    /// Everything the services stopped so far printed.
    fn service_lines(&self) -> &[String] {
        &self.said
    }

    fn recorder(&self, args: &[&str]) -> Output {
        Command::new(binary("recorder"))
            .args(args)
            .arg("--socket")
            .arg(self.path("control.sock"))
            .output()
            .expect("run recorder")
    }

    /// `recorder status --json`'s upload part.
    fn upload_status(&self) -> serde_json::Value {
        let output = self.recorder(&["status", "--json"]);
        assert!(output.status.success(), "{}", text(&output.stderr));
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        status["upload"].clone()
    }

    /// Polls the service's status until `done` holds, failing after `limit`.
    fn wait_status(&self, limit: Duration, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.upload_status();
            if done(&status) {
                return;
            }
            assert!(Instant::now() < deadline, "never {what}: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Records the busy workload for `secs` through the service; returns its id once the
    /// recording has finished.
    fn record(&self, secs: u32) -> String {
        let mut workload = Workload::start(self.base.path());
        let id = self.start_recording(&workload, secs);
        let deadline = Instant::now() + Duration::from_secs(u64::from(secs)) + *STEP_TIMEOUT;
        while text(&self.recorder(&["status"]).stdout).contains(&id) {
            assert!(Instant::now() < deadline, "recording {id} never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
        workload.stop();
        id
    }

    /// `recorder start --pid` of the workload for `secs`; the new recording's id.
    fn start_recording(&self, workload: &Workload, secs: u32) -> String {
        let pid = workload.0.id().to_string();
        let started = self.recorder(&["start", "--pid", &pid, "--for", &format!("{secs}s")]);
        assert!(started.status.success(), "{}", text(&started.stderr));
        text(&started.stdout)
            .strip_prefix("recording ")
            .and_then(|rest| rest.split(' ').next())
            .expect("an id")
            .to_owned()
    }

    fn audit_log(&self) -> String {
        std::fs::read_to_string(self.recordings().join("audit.log")).unwrap()
    }

    fn audit_events(&self, event: &str) -> Vec<serde_json::Value> {
        self.audit_log()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|entry| entry["event"] == event)
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(service) = self.service.as_mut() {
            let _ = service.child.kill();
            let _ = service.child.wait();
        }
    }
}

/// The busy workload: about 10k small file writes a second.
struct Workload(Child);

impl Workload {
    fn start(dir: &Path) -> Workload {
        Workload(
            Command::new(binary("recorder-workload"))
                .arg("busy")
                .arg(dir.join("busy.txt"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn workload"),
        )
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn keygen(path: &Path) -> String {
    let output = Command::new(binary("recorder"))
        .args(["keygen", "--output", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_owned()
}

/// `recorder ARGS` with the server's endpoint and key in the environment, as on a laptop.
fn reader(server: &S3Server, args: &[&str]) -> Output {
    Command::new(binary("recorder"))
        .args(args)
        .envs(server.env())
        .env("HOME", "/nonexistent")
        .output()
        .expect("run recorder")
}

/// `recorder ARGS` with nothing in the environment but a profile in the AWS shared files
/// (`AWS_PROFILE=fleet`): its keys in the credentials file, its endpoint and region in the
/// config file.
fn reader_by_profile(server: &S3Server, dir: &Path, args: &[&str]) -> Output {
    let credentials = dir.join("aws-credentials");
    let config = dir.join("aws-config");
    let keys = format!(
        "[fleet]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        server.access_key, server.secret_key
    );
    std::fs::write(&credentials, keys).unwrap();
    let settings = format!(
        "[profile fleet]\nregion = us-east-1\nendpoint_url = {}\n",
        server.endpoint
    );
    std::fs::write(&config, settings).unwrap();
    Command::new(binary("recorder"))
        .args(args)
        .env_clear()
        .env("AWS_PROFILE", "fleet")
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_CONFIG_FILE", &config)
        .output()
        .expect("run recorder")
}

/// The host's folder in the bucket: the first part of every key.
fn host_prefix(server: &S3Server) -> String {
    let objects = server.objects("");
    let key = &objects.first().expect("an object in the bucket").0;
    key.split('/').next().unwrap().to_owned()
}

/// Every segment the host has, by file name, is in the bucket exactly once with the same
/// bytes; returns the number of segments.
fn assert_bucket_holds_segments(server: &S3Server, host: &Host, prefix: &str) -> usize {
    let segments = segment_files(&host.recordings());
    let objects: Vec<(String, Vec<u8>)> = server
        .objects(prefix)
        .into_iter()
        .filter(|(key, _)| key.ends_with(".rcd"))
        .collect();
    assert_eq!(objects.len(), segments.len(), "one object per segment");
    for segment in &segments {
        let name = segment.file_name().unwrap().to_str().unwrap();
        let held: Vec<&(String, Vec<u8>)> = objects
            .iter()
            .filter(|(key, _)| key.ends_with(name))
            .collect();
        assert_eq!(held.len(), 1, "{name} is in the bucket exactly once");
        assert!(
            held[0].1 == std::fs::read(segment).unwrap(),
            "{} does not hold {name}'s bytes",
            held[0].0
        );
    }
    segments.len()
}

#[test]
fn a_sealed_recording_lands_in_the_bucket_and_reads_the_same_from_there() {
    if !require_privileges() {
        return;
    }
    let server = S3Server::start(BUCKET);
    let (mut host, identity) = Host::sealed(&server, "");
    host.start();
    let id = host.record(5);
    let segments = segment_files(&host.recordings()).len();
    assert!(segments >= 2, "the recording rotated ({segments} segments)");
    host.wait_status(*STEP_TIMEOUT, "uploaded every segment", |status| {
        status["uploaded"] == segments && status["queued"] == 0
    });
    host.stop();
    // Read before `recorder inspect` below adds a `read` entry to it.
    let entries = host.audit_log().lines().count();

    let prefix = host_prefix(&server);
    assert_eq!(
        assert_bucket_holds_segments(&server, &host, &prefix),
        segments
    );
    let done = host.audit_events("upload.done");
    assert_eq!(done.len(), segments, "every upload is audited");
    assert!(done.iter().all(|entry| entry["recording"] == id.as_str()));

    // Listed from the bucket; its timeline from there is the local one, only with the key.
    let listed = reader_by_profile(
        &server,
        host.base.path(),
        &["list", &format!("s3://{BUCKET}/{prefix}/")],
    );
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains(&id[..12]),
        "{}",
        text(&listed.stdout)
    );
    let address = format!(
        "s3://{BUCKET}/{prefix}/{}/{}",
        utc_date_of(&done[0]),
        &id[..8]
    );
    let key = identity.to_str().unwrap();
    let remote = reader(&server, &["inspect", &address, "--identity", key]);
    assert!(remote.status.success(), "{}", text(&remote.stderr));
    let local = Command::new(binary("recorder"))
        .args(["inspect", &id, "--dir", host.recordings().to_str().unwrap()])
        .args(["--identity", key])
        .output()
        .unwrap();
    assert!(local.status.success(), "{}", text(&local.stderr));
    assert!(remote.stdout.len() > 1000);
    assert!(
        remote.stdout == local.stdout,
        "the bucket's timeline differs"
    );
    // The export too, with the endpoint given by flag rather than by the environment.
    let export = |source: &str, extra: &[&str]| {
        let mut command = Command::new(binary("recorder"));
        command
            .args(["export", "--format", "jsonl", source, "--identity", key])
            .args(extra);
        let output = command
            .envs(server.env())
            .env_remove("AWS_ENDPOINT_URL")
            .output();
        let output = output.unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        output.stdout
    };
    let from_bucket = export(&address, &["--endpoint", &server.endpoint]);
    let recordings = host.recordings();
    let from_disk = export(&id, &["--dir", recordings.to_str().unwrap()]);
    assert!(from_bucket == from_disk, "the bucket's export differs");
    let sealed = reader(&server, &["inspect", &address]);
    assert_eq!(sealed.status.code(), Some(5), "{}", text(&sealed.stderr));
    let verified = reader(&server, &["verify", &address, "--identity", key]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));

    // The shipped audit log is the local one, ending with the service's stop; a piece
    // taken away is named as a gap.
    let audit_prefix = format!("s3://{BUCKET}/{prefix}/audit/");
    let shipped = reader(&server, &["audit", "verify", &audit_prefix]);
    assert!(
        text(&shipped.stdout).contains(&format!("OK: {entries} entries")),
        "{}{}",
        text(&shipped.stdout),
        text(&shipped.stderr)
    );
    let pieces: Vec<String> = server
        .objects(&format!("{prefix}/audit/"))
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert!(pieces.len() >= 3, "the log went up in pieces: {pieces:?}");
    // Tagged by kind, for lifecycle rules.
    assert_eq!(server.tags(&pieces[0])["recorderd"], "audit");
    let segment_key = done[0]["key"].as_str().unwrap();
    assert_eq!(server.tags(segment_key)["recorderd"], "segment");
    server.delete(&pieces[1]);
    let gap = reader(&server, &["audit", "verify", &audit_prefix]);
    assert_eq!(gap.status.code(), Some(4));
    assert!(
        text(&gap.stdout).starts_with("gap: entries "),
        "{}",
        text(&gap.stdout)
    );
}

/// The recording's start date as its keys carry it, from an `upload.done` entry's key.
fn utc_date_of(done: &serde_json::Value) -> String {
    done["key"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn a_service_killed_mid_multipart_upload_leaves_each_segment_once_after_its_restart() {
    if !require_privileges() {
        return;
    }
    let server = S3Server::start(BUCKET);
    // The second part of a multipart upload is held: the service is stuck between parts.
    let gate = Gate::new(&server.endpoint, b"partNumber=2");
    let scratch = tempfile::tempdir().unwrap();
    let recipient = keygen(&scratch.path().join("identity"));
    let mut host = Host::new(
        &server,
        &gate.endpoint,
        &server.secret_key,
        &format!("seal_to = [\"{recipient}\"]"),
        "",
    );
    // A recording of 20 MiB of random bytes: four 5 MiB parts.
    std::fs::create_dir(host.recordings()).unwrap();
    let recorded = Command::new(binary("recorderd"))
        .args([
            "--output",
            host.recordings().to_str().unwrap(),
            "--seal-to",
            &recipient,
        ])
        .args(["--", "dd", "if=/dev/urandom", "bs=64k", "count=320"])
        .arg(format!("of={}", host.path("random").display()))
        .output()
        .unwrap();
    assert!(recorded.status.success(), "{}", text(&recorded.stderr));
    let segment = &segment_files(&host.recordings())[0];
    assert!(std::fs::metadata(segment).unwrap().len() > 15 << 20);

    host.start();
    gate.wait_held();
    host.signal(libc::SIGKILL);
    let _ = host.service().child.wait();
    host.service = None;
    assert_eq!(server.open_multipart_uploads(), 1, "killed mid-upload");

    gate.open();
    host.start();
    host.wait_status(*STEP_TIMEOUT, "uploaded the segment", |status| {
        status["uploaded"] == 1 && status["queued"] == 0
    });
    host.stop();
    let prefix = host_prefix(&server);
    assert_eq!(assert_bucket_holds_segments(&server, &host, &prefix), 1);
    let done = host.audit_events("upload.done");
    assert_eq!(done.len(), 1, "uploaded once: {done:?}");
    assert!(done[0]["parts"].as_u64().unwrap() >= 4, "{}", done[0]);
    assert_eq!(
        server.tags(done[0]["key"].as_str().unwrap())["recorderd"],
        "segment"
    );
}

#[test]
fn uploads_wait_out_a_stopped_server_and_a_full_queue_drops_what_it_must() {
    if !require_privileges() {
        return;
    }
    let server = S3Server::start(BUCKET);
    let mut host = Host::new(
        &server,
        &server.endpoint,
        &server.secret_key,
        "segment_duration = \"1s\"",
        "require_sealed = false\nqueue_limit = \"256KiB\"",
    );
    host.start();
    let mut workload = Workload::start(host.base.path());
    let id = host.start_recording(&workload, 60);
    host.wait_status(*STEP_TIMEOUT, "uploaded a segment", |s| {
        s["uploaded"].as_u64() > Some(0)
    });

    server.pause();
    let events_at_pause = recording_events(&host);
    // The server stays stopped for 30 s: segments pile up past the queue's bound, and the
    // recording goes on (its workload writes for 30 s from its start).
    let paused = Instant::now();
    let (mut most_queued, mut events_while_paused) = (0, 0);
    while paused.elapsed() < Duration::from_secs(30) {
        most_queued = most_queued.max(host.upload_status()["queued"].as_u64().unwrap());
        if paused.elapsed() > Duration::from_secs(10) && events_while_paused == 0 {
            events_while_paused = recording_events(&host);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = host.upload_status();
    assert!(
        most_queued >= 2,
        "segments queued while the server was away: {status}"
    );
    assert!(status["dropped"].as_u64() > Some(0), "{status}");
    assert!(
        events_while_paused > events_at_pause + 1000,
        "the recording went on while uploads waited: {events_at_pause} → {events_while_paused} events"
    );

    // A sweep deleting a waiting segment (the free-space floor wins over the queue).
    let in_flight = status["in_flight"].as_str().unwrap_or_default().to_owned();
    let swept = waiting_segments(&host)
        .into_iter()
        .rfind(|name| !in_flight.starts_with(name.as_str()))
        .expect("a waiting segment");
    std::fs::remove_file(host.recordings().join(&swept)).unwrap();

    server.resume();
    // The recording ends with its workload, or here.
    let _ = host.recorder(&["stop", &id]);
    workload.stop();
    host.wait_status(*STEP_TIMEOUT * 2, "caught up", |s| {
        s["queued"] == 0 && s["in_flight"].is_null() && s["last_error"].is_null()
    });
    host.stop();

    // Every segment is in the bucket or was dropped, and each drop is audited.
    let dropped: Vec<String> = host
        .audit_events("upload.dropped")
        .iter()
        .map(|entry| entry["segment"].as_str().unwrap().to_owned())
        .collect();
    assert!(dropped.len() >= 2, "{dropped:?}");
    assert!(dropped.iter().all(|segment| segment.ends_with(".rcd")));
    let gone = host.audit_events("upload.dropped");
    let gone = gone.iter().find(|entry| entry["segment"] == swept.as_str());
    let reason = gone.expect("the swept segment's drop is audited")["reason"].clone();
    assert_eq!(reason, "deleted locally before its upload (retention)");
    let uploaded: Vec<String> = host
        .audit_events("upload.done")
        .iter()
        .map(|entry| entry["segment"].as_str().unwrap().to_owned())
        .collect();
    for segment in segment_files(&host.recordings()) {
        let name = segment.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            uploaded.contains(&name) != dropped.contains(&name),
            "{name} is either uploaded or dropped, once"
        );
    }
    // A request that hung failed (in 20 s), once said; the first success after says so.
    assert!(!host.audit_events("upload.failed").is_empty());
    assert_eq!(host.audit_events("upload.resumed").len(), 1);
    assert!(host
        .service_lines()
        .iter()
        .any(|line| line.starts_with("recorderd: uploads resumed after")));
}

/// The segments in the upload queue, by file name, in name order.
fn waiting_segments(host: &Host) -> Vec<String> {
    let queue = host.recordings().join(".upload/queue");
    let mut names: Vec<String> = std::fs::read_dir(queue)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".json")?.to_owned())
        })
        .collect();
    names.sort();
    names
}

fn recording_events(host: &Host) -> u64 {
    let output = host.recorder(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    status["recordings"][0]["events"].as_u64().unwrap_or(0)
}

#[test]
fn wrong_credentials_are_one_line_in_the_log_and_the_audit_log_and_never_the_secret() {
    if !require_privileges() {
        return;
    }
    let server = S3Server::start(BUCKET);
    let wrong = "WrongSecretKeyNobodyMayPrint0123456789abcd";
    let mut host = Host::new(
        &server,
        &server.endpoint,
        wrong,
        "segment_duration = \"2s\"",
        "require_sealed = false",
    );
    host.start();
    host.record(1);
    let line = host
        .service()
        .wait_for_line("recorderd: upload of segment ");
    assert!(line.contains("403 Forbidden"), "{line}");
    // Retried, but said once while the failure stays the same.
    host.wait_status(*STEP_TIMEOUT, "reported the failure", |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("403 Forbidden"))
    });
    host.stop();
    let failed = host.audit_events("upload.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    // The audit log's shipping fails the same way, and is said once too.
    assert_eq!(host.audit_events("upload.audit_failed").len(), 1);
    let said = host.service_lines().join("\n");
    assert!(!said.contains(wrong) && !host.audit_log().contains(wrong));
    assert_eq!(
        said.matches("recorderd: upload of segment").count(),
        1,
        "one line: {said}"
    );
    assert!(server
        .objects("")
        .iter()
        .all(|(key, _)| !key.ends_with(".rcd")));
}

#[test]
fn an_unsealed_segment_is_refused_under_require_sealed_with_one_line() {
    if !require_privileges() {
        return;
    }
    let server = S3Server::start(BUCKET);
    // require_sealed is the default; this host does not seal.
    let mut host = Host::new(&server, &server.endpoint, &server.secret_key, "", "");
    host.start();
    host.record(1);
    let line = host
        .service()
        .wait_for_line("recorderd: not uploading segment ");
    assert!(
        line.contains("not sealed") && line.contains("require_sealed"),
        "{line}"
    );
    host.wait_status(*STEP_TIMEOUT, "counted the refusal", |s| s["refused"] == 1);
    host.stop();
    assert_eq!(host.audit_events("upload.refused").len(), 1);
    let objects = server.objects("");
    assert!(
        objects.iter().all(|(key, _)| key.ends_with(".jsonl")),
        "{objects:?}"
    );
    assert!(!objects.is_empty(), "the audit log is shipped all the same");
}

#[test]
fn delete_after_upload_removes_the_local_copy_once_the_bucket_holds_it() {
    if !require_privileges() {
        return;
    }
    let server = S3Server::start(BUCKET);
    let (mut host, _identity) = Host::sealed(&server, "delete_after_upload = true");
    host.start();
    let id = host.record(3);
    host.wait_status(*STEP_TIMEOUT, "uploaded every segment", |status| {
        status["queued"] == 0
            && status["in_flight"].is_null()
            && status["uploaded"].as_u64() > Some(0)
    });
    host.stop();
    let done = host.audit_events("upload.done");
    assert!(!done.is_empty());
    assert!(
        segment_files(&host.recordings()).is_empty(),
        "local copies remain"
    );
    // Each deleted copy's object is in the bucket with the SHA-256 the audit log names.
    let prefix = host_prefix(&server);
    let objects = server.objects(&prefix);
    for entry in &done {
        assert_eq!(entry["local_copy"], "deleted", "{entry}");
        assert_eq!(entry["recording"], id.as_str());
        let (_, bytes) = objects
            .iter()
            .find(|(key, _)| key == entry["key"].as_str().unwrap())
            .expect("the object is in the bucket");
        use sha2::Digest;
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        assert_eq!(entry["sha256"], sha256.as_str());
    }
}
