//! Real servers the tests record against: a free loopback port, a server started and waited
//! for by the line that says it is ready, and a PostgreSQL cluster of its own.

use std::{
    io::{BufRead, BufReader},
    net::{TcpListener, TcpStream},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a server and waits for the line (on stdout or stderr) saying it is ready.
pub fn start_server(command: &mut Command, ready: &str) -> Child {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e} (cargo xtask setup installs it)"));
    let (tx, rx) = std::sync::mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(*crate::STEP_TIMEOUT) {
            Ok(line) if line.contains(ready) => return child,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command:?} never said `{ready}`: {seen:#?}");
            }
        }
    }
}

/// The PostgreSQL server binaries (Debian keeps them out of PATH).
pub fn postgres_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL (cargo xtask setup installs it)")
        .flatten()
        .map(|entry| entry.path().join("bin").join(name))
        .filter(|path| path.is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .unwrap_or_else(|| panic!("no {name} under /usr/lib/postgresql"))
}

/// A PostgreSQL cluster in a directory of the test's, on a loopback port, with user
/// `tester` whose password is checked in cleartext over TCP (so the secret really crosses
/// the socket). Stopped when dropped.
pub struct Postgres {
    server: Child,
    pub port: u16,
}

impl Postgres {
    /// `work` must be a fresh directory; `settings` are extra `-c name=value` settings,
    /// and `files` (name, contents) are written into `work/pg` first, owned by the
    /// postgres user and 0600 (a TLS key, say), for settings to name by absolute path.
    pub fn start(work: &Path, password: &str, settings: &[&str], files: &[(&str, &[u8])]) -> Self {
        // PostgreSQL refuses to run as root: its files belong to the postgres user.
        let data = work.join("pg");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (uid, gid) = postgres_user();
        let own = |path: &Path| std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        own(&data);
        let pwfile = data.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        own(&pwfile);
        for (name, contents) in files {
            let path = data.join(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            own(&path);
        }
        let cluster = data.join("cluster");
        let initdb = Command::new(postgres_bin("initdb"))
            .uid(uid)
            .gid(gid)
            .args(["-D", cluster.to_str().unwrap(), "-U", "tester", "--pwfile"])
            .arg(&pwfile)
            .args(["--auth-local=trust", "--auth-host=password"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(initdb.success());
        let port = free_port();
        let mut command = Command::new(postgres_bin("postgres"));
        command
            .uid(uid)
            .gid(gid)
            .args([
                "-D",
                cluster.to_str().unwrap(),
                "-p",
                &port.to_string(),
                "-k",
            ])
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for setting in settings {
            command.args(["-c", setting]);
        }
        let server = start_server(&mut command, "ready to accept connections");
        Postgres { server, port }
    }

    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=tester dbname=postgres",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SAFETY: signalling the server we started; SIGINT is its fast shutdown.
        unsafe { libc::kill(self.server.id() as i32, libc::SIGINT) };
        let _ = self.server.wait();
    }
}

fn postgres_user() -> (u32, u32) {
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    unsafe {
        let entry = libc::getpwnam(c"postgres".as_ptr());
        assert!(
            !entry.is_null(),
            "the postgres user exists (Debian's postgresql package)"
        );
        ((*entry).pw_uid, (*entry).pw_gid)
    }
}

/// nginx serving HTTPS on a loopback port, one process (`master_process off`), with a
/// self-signed certificate for localhost.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub cert: PathBuf,
}

/// A self-signed certificate for localhost and its key, made with openssl in `dir`.
pub fn make_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian's openssl package)");
    assert!(made.success(), "openssl could not make a certificate");
    (cert, key)
}

impl Nginx {
    /// Answers every request with `body` (text/plain).
    pub fn start_https(dir: &Path, body: &str) -> Nginx {
        let (cert, key) = make_certificate(dir);
        let port = free_port();
        let d = dir.display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {}; ssl_certificate_key {};
    location / {{ default_type text/plain; return 200 '{body}'; }}
  }}
}}
",
            cert.display(),
            key.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-p")
            .arg(dir)
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (cargo xtask setup installs it)");
        let nginx = Nginx { child, port, cert };
        // Ready once it accepts a connection.
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < *crate::STEP_TIMEOUT,
                "nginx never listened on {port}; see {d}/error.log"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
