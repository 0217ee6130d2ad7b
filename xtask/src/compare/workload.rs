//! Running the workloads: `recorder-bench-load` modes gated on stdin (the recorder attaches
//! in between), and nginx on loopback under wrk.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use super::{
    tracer::{self, Captured, Scope, Tracer},
    Bins,
};

/// What a workload says it did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    pub syscalls: u64,
    pub payload_bytes: u64,
    pub elapsed_ns: u64,
}

fn parse_report(text: &str) -> Result<Report> {
    let value = |key: &str| -> Result<u64> {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("the workload did not report {key}: {text}"))?
            .trim()
            .parse()
            .with_context(|| format!("{key} is not a number"))
    };
    Ok(Report {
        syscalls: value("syscalls")?,
        payload_bytes: value("payload_bytes")?,
        elapsed_ns: value("elapsed_ns")?,
    })
}

/// Runs `recorder-bench-load ARGS` under `tracer` (attached while the workload waits).
pub fn run_gated(
    bins: &Bins,
    tracer: Tracer,
    args: &[String],
    dir: &Path,
    scope: Scope,
) -> Result<(Report, Captured)> {
    let mut child = Command::new(bins.dir.join("recorder-bench-load"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting recorder-bench-load")?;
    let result = drive(bins, tracer, &mut child, dir, scope);
    if result.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

fn drive(
    bins: &Bins,
    tracer: Tracer,
    child: &mut Child,
    dir: &Path,
    scope: Scope,
) -> Result<(Report, Captured)> {
    let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut first = String::new();
    stdout.read_line(&mut first)?;
    let pid: u32 = first
        .trim()
        .strip_prefix("ready pid=")
        .and_then(|pid| pid.parse().ok())
        .with_context(|| format!("the workload did not get ready: {first:?}"))?;
    let attached = tracer::attach(tracer, bins, pid, dir)?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(b"go\n")?;
    drop(stdin);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest)?;
    let status = child.wait()?;
    if !status.success() {
        bail!("recorder-bench-load {status}: {rest}");
    }
    let report = parse_report(&rest)?;
    let captured = attached.finish(bins, scope, false)?;
    Ok((report, captured))
}

/// Sets the CPUs every thread of `pid` may run on (`taskset -a -p -c`).
fn pin(pid: u32, cpus: &str) -> Result<()> {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset -a -p -c {cpus} {pid}: {status}");
    }
    Ok(())
}

/// A single-process nginx on a loopback port, answering POST /orders with JSON, over plain
/// HTTP or over TLS with a self-signed certificate.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub tls: bool,
    dir: PathBuf,
}

impl Nginx {
    pub fn start(dir: &Path, tls: bool) -> Result<Nginx> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        // A port the kernel just handed out and we let go of: free unless raced.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let d = dir.display();
        let listen = if tls {
            let made = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=localhost", "-keyout"])
                .arg(dir.join("key.pem"))
                .arg("-out")
                .arg(dir.join("cert.pem"))
                .stderr(Stdio::null())
                .status()
                .context("running openssl for nginx's certificate")?;
            if !made.success() {
                bail!("openssl could not make a certificate for nginx");
            }
            format!(
                "listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;"
            )
        } else {
            format!("listen 127.0.0.1:{port};")
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
events {{ worker_connections 1024; }}\n\
http {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n\
  server {{\n    {listen}\n    keepalive_requests 1000000;\n    location /orders {{\n      default_type application/json;\n      return 201 '{RESPONSE}';\n    }}\n  }}\n}}\n"
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(nginx_binary())
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("nginx.stderr"))?)
            .spawn()
            .context("starting nginx")?;
        let mut nginx = Nginx {
            child,
            port,
            tls,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = nginx.child.try_wait()? {
                bail!(
                    "nginx exited ({status}): {}",
                    std::fs::read_to_string(dir.join("nginx.stderr")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; SIGQUIT is nginx's graceful stop.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        // Killed after 5 s if it has not stopped by then.
        let _ = tracer::wait_rusage(&mut self.child, Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(self.dir.join("tmp"));
    }
}

pub fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").is_file() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

const RESPONSE: &str = r#"{"id":"ord_7f3a91c2","status":"created","items":[{"sku":"A-1177","qty":3,"price":"19.90"},{"sku":"B-2044","qty":1,"price":"4.50"}],"total":"64.20","currency":"EUR"}"#;

/// wrk's script: POSTs a JSON order; `done` prints exact counts for the harness.
const WRK_SCRIPT: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl"
wrk.body = '{"customer":{"id":"cus_4411","email":"ada@example.com"},"items":[{"sku":"A-1177","qty":3,"price":"19.90"},{"sku":"B-2044","qty":1,"price":"4.50"}],"shipping":{"street":"1 Loop Road","city":"Localhost","zip":"12700"},"note":"leave at the door"}'
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests=%d\nbytes_read=%d\nduration_us=%d\nerrors=%d\nrequest_bytes=%d\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, #wrk.format()))
end
"#;

/// What wrk reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Http {
    pub requests: u64,
    pub bytes_read: u64,
    pub duration_us: u64,
    pub errors: u64,
    pub request_bytes: u64,
}

impl Http {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / (self.duration_us.max(1) as f64 / 1e6)
    }

    /// Request and response bytes moved.
    pub fn payload_bytes(&self) -> u64 {
        self.requests * self.request_bytes + self.bytes_read
    }
}

/// The wrk command line, for the doc.
pub fn wrk_command(secs: u64) -> String {
    format!("wrk -t1 -c16 -d{secs}s -s post.lua http://127.0.0.1:PORT/orders")
}

/// Runs wrk for `secs` against nginx with `tracer` attached to nginx.
pub fn run_http(
    bins: &Bins,
    tracer: Tracer,
    nginx: &Nginx,
    secs: u64,
    pinned: bool,
    dir: &Path,
) -> Result<(Http, Captured)> {
    let attached = tracer::attach(tracer, bins, nginx.pid(), dir)?;
    // Pinned: wrk alone on CPU 0; nginx and the recorder (all its threads) share CPU 1.
    let server_cpus = if pinned { "1" } else { "0-1" };
    pin(nginx.pid(), server_cpus)?;
    if let Some(pid) = attached.pid() {
        pin(pid, server_cpus)?;
    }
    let script = dir.join("post.lua");
    std::fs::write(&script, WRK_SCRIPT)?;
    let mut wrk = Command::new("taskset");
    wrk.args(["-c", if pinned { "0" } else { "0-1" }, "wrk"]);
    let output = wrk
        .args(["-t1", "-c16", &format!("-d{secs}s"), "-s"])
        .arg(&script)
        .arg(format!(
            "{}://127.0.0.1:{}/orders",
            if nginx.tls { "https" } else { "http" },
            nginx.port
        ))
        .output()
        .context("running wrk")?;
    let captured = attached.finish(bins, Scope::All, true)?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed ({}): {text}", output.status);
    }
    let value = |key: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let http = Http {
        requests: value("requests"),
        bytes_read: value("bytes_read"),
        duration_us: value("duration_us"),
        errors: value("errors"),
        request_bytes: value("request_bytes"),
    };
    if http.requests == 0 || http.errors > 0 {
        bail!("wrk: {text}");
    }
    Ok((http, captured))
}
