//! A real S3-compatible server for the upload tests (moto in server mode, SigV4 checked:
//! `fixtures/s3_server.py`), and a gate between it and recorderd that can hold a request
//! mid-upload.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
};

use crate::STEP_TIMEOUT;

/// `python3 fixtures/s3_server.py` with moto on its path (`cargo xtask setup` puts it in
/// target/python).
fn fixture() -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let packages = root.join("../target/python");
    assert!(
        packages.join("moto").is_dir(),
        "moto is not in {}: run `cargo xtask setup`",
        packages.display()
    );
    let mut command = Command::new("python3");
    command
        .arg(root.join("fixtures/s3_server.py"))
        .env("PYTHONPATH", packages);
    command
}

/// moto serving one bucket on loopback; killed on drop.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
}

impl S3Server {
    /// Starts the server with `bucket`, a user and its key; fails the test with the
    /// server's own words if it cannot (moto missing: `cargo xtask setup` installs it).
    pub fn start(bucket: &str) -> S3Server {
        let mut child = fixture()
            .args(["serve", bucket])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3 fixtures/s3_server.py");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(*STEP_TIMEOUT).unwrap_or_default();
        let started: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the S3 server did not start (is moto installed? `cargo xtask setup`): {line:?}")
        });
        let field = |name: &str| started[name].as_str().expect(name).to_owned();
        S3Server {
            endpoint: field("endpoint"),
            access_key: field("access_key"),
            secret_key: field("secret_key"),
            bucket: bucket.to_owned(),
            child,
        }
    }

    /// What a client needs in its environment, as the AWS CLI reads it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }

    /// `[default]` credentials in the AWS shared format, with `secret` as the secret key.
    pub fn credentials_file(&self, path: &Path, secret: &str) {
        use std::os::unix::fs::PermissionsExt;
        let text = format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
            self.access_key
        );
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Stops the server's process (SIGSTOP): requests hang as on a server that froze.
    pub fn pause(&self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGSTOP) };
    }

    pub fn resume(&self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
    }

    /// Every object under `prefix`, as (key, bytes), in key order.
    pub fn objects(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        let folder = tempfile::tempdir().unwrap();
        let out = self.client(&["fetch", prefix, folder.path().to_str().unwrap()]);
        let keys: Vec<String> = serde_json::from_str(&out).expect("fetch prints keys");
        let mut objects: Vec<(String, Vec<u8>)> = keys
            .into_iter()
            .map(|key| {
                let bytes = std::fs::read(folder.path().join(key.replace('/', "__"))).unwrap();
                (key, bytes)
            })
            .collect();
        objects.sort();
        objects
    }

    /// An object's tags, as `key=value` pairs.
    pub fn tags(&self, key: &str) -> serde_json::Value {
        serde_json::from_str(&self.client(&["tags", key])).expect("tags print JSON")
    }

    pub fn delete(&self, key: &str) {
        self.client(&["delete", key]);
    }

    /// Multipart uploads begun and neither completed nor aborted.
    pub fn open_multipart_uploads(&self) -> usize {
        self.client(&["multipart"]).trim().parse().expect("a count")
    }

    fn client(&self, args: &[&str]) -> String {
        let output = fixture()
            .arg(args[0])
            .arg(&self.bucket)
            .args(&args[1..])
            .envs(self.env())
            .output()
            .expect("run the S3 client");
        assert!(
            output.status.success(),
            "s3_server.py {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay on loopback in front of the server. Once a request whose bytes contain
/// `hold_at` passes through, that connection is held (nothing more is forwarded) and the
/// gate says so; `open` lets every later connection through untouched.
pub struct Gate {
    pub endpoint: String,
    held: mpsc::Receiver<()>,
    open: Arc<AtomicBool>,
}

impl Gate {
    pub fn new(upstream: &str, hold_at: &'static [u8]) -> Gate {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (held_tx, held) = mpsc::channel();
        let open = Arc::new(AtomicBool::new(false));
        let gate_open = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (held_tx, open) = (held_tx.clone(), gate_open.clone());
                relay(client, server, hold_at, held_tx, open);
            }
        });
        Gate {
            endpoint,
            held,
            open,
        }
    }

    /// Waits until a request was held.
    pub fn wait_held(&self) {
        self.held
            .recv_timeout(*STEP_TIMEOUT)
            .expect("no request reached the gate's hold point");
    }

    /// From now on nothing is held.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Copies both ways between `client` and `server`, holding client bytes at `hold_at`.
fn relay(
    client: TcpStream,
    server: TcpStream,
    hold_at: &'static [u8],
    held: mpsc::Sender<()>,
    open: Arc<AtomicBool>,
) {
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut server_in, mut client_out) = (server, client);
    std::thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match client_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !open.load(Ordering::SeqCst) && buf[..n].windows(hold_at.len()).any(|w| w == hold_at)
            {
                let _ = held.send(());
                // Held: the request never reaches the server; the connection stays open
                // until the client goes away.
                while client_in.read(&mut buf).is_ok_and(|n| n > 0) {}
                break;
            }
            if server_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server_out.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut server_in, &mut client_out);
        let _ = client_out.shutdown(Shutdown::Write);
    });
}
