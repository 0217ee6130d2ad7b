//! The soak's mixed load: HTTP over loopback, file churn, forks and PostgreSQL queries, at
//! a steady pace, each carrying the secret where a redactor must find it.

use std::{
    ffi::CString,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

/// One tick of the schedule: an HTTP request every tick, the rest every so many.
const TICK: Duration = Duration::from_millis(10);
const FILE_EVERY: u64 = 5;
const FORK_EVERY: u64 = 100;
const QUERY_EVERY: u64 = 500;
/// Lines (one write each) of each churned file.
const FILE_LINES: u64 = 10;

#[derive(Default)]
struct Counts {
    requests: u64,
    file_writes: u64,
    forks: u64,
    queries: u64,
}

pub fn run(seconds: u64, dir: &Path) -> std::io::Result<()> {
    let secret = std::env::var("SOAK_SECRET")
        .map_err(|_| std::io::Error::other("SOAK_SECRET is not set"))?;
    let postgres = std::env::var("SOAK_PG").ok();
    // The harness says when: once its recordings are attached.
    std::io::stdin().read_line(&mut String::new())?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    std::thread::spawn(move || serve(listener));
    let mut counts = Counts::default();
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tick = 0u64;
    while Instant::now() < end {
        request(address, &secret)?;
        counts.requests += 1;
        if tick.is_multiple_of(FILE_EVERY) {
            churn_file(dir, tick, &secret)?;
            counts.file_writes += FILE_LINES;
        }
        if tick.is_multiple_of(FORK_EVERY) {
            fork_writer(dir, tick)?;
            counts.forks += 1;
        }
        if let Some(conninfo) = postgres
            .as_deref()
            .filter(|_| tick.is_multiple_of(QUERY_EVERY))
        {
            query(conninfo)?;
            counts.queries += 1;
        }
        tick += 1;
        // Paced to the schedule, not to the work: a slow tick is not made up for twice.
        let next = start + TICK * tick as u32;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    println!(
        "requests={} file_writes={} forks={} queries={}",
        counts.requests, counts.file_writes, counts.forks, counts.queries
    );
    Ok(())
}

/// Answers every request with a short body, one connection at a time.
fn serve(listener: TcpListener) {
    for stream in listener.incoming().map_while(Result::ok) {
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            line.clear();
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_ok() {
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"ok\":true}\n");
        }
    }
}

fn request(address: std::net::SocketAddr, secret: &str) -> std::io::Result<()> {
    let body = format!("{{\"user\":\"soak\",\"password\":\"{secret}\"}}");
    let mut stream = TcpStream::connect(address)?;
    write!(
        stream,
        "POST /login HTTP/1.1\r\nHost: soak\r\nAuthorization: Bearer {secret}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(())
}

fn churn_file(dir: &Path, tick: u64, secret: &str) -> std::io::Result<()> {
    let path = dir.join(format!("soak-{tick}.txt"));
    let mut file = std::fs::File::create(&path)?;
    for line in 0..FILE_LINES {
        file.write_all(format!("line {line} user=soak password={secret}\n").as_bytes())?;
    }
    drop(file);
    std::fs::read(&path)?;
    std::fs::remove_file(&path)
}

/// A child that writes one file and exits: only libc calls between fork and exit, on
/// memory prepared before the fork (this process has threads).
fn fork_writer(dir: &Path, tick: u64) -> std::io::Result<()> {
    let path = CString::new(format!("{}/fork-{tick}.txt", dir.display()))
        .map_err(std::io::Error::other)?;
    let text = b"written by a forked child\n";
    // SAFETY: the child calls only async-signal-safe functions and then _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o600,
            );
            if fd >= 0 {
                libc::write(fd, text.as_ptr().cast(), text.len());
                libc::close(fd);
            }
            libc::unlink(path.as_ptr());
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok(())
}

fn query(conninfo: &str) -> std::io::Result<()> {
    let status = std::process::Command::new("psql")
        .args([conninfo, "-tAc", "select count(*) from pg_stat_activity"])
        .stdout(std::process::Stdio::null())
        .status()?;
    match status.success() {
        true => Ok(()),
        false => Err(std::io::Error::other(format!("psql failed: {status}"))),
    }
}
