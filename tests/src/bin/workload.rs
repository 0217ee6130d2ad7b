//! `recorder-workload`: a program of ours whose boundary traffic is known exactly, for the
//! privileged tests and the demo. It reports what it did as `key=value` lines on stdout.
//!
//! - `basic DIR ADDR`: waits for a line on stdin (the test's "recorder attached" signal), then
//!   creates a unique file in DIR, writes known bytes, reads them back, connects to ADDR and
//!   sends a known message.
//! - `demo`: the same without waiting, against a loopback server it runs itself.
//! - `busy FILE`: writes numbered lines to FILE, one write each, about 10k a second for at
//!   most 30 s, saying on stderr after every 1000 (for tests that kill the recorder mid-run).

use std::{
    fs::OpenOptions,
    io::{BufRead, Read, Seek, SeekFrom, Write},
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

/// The bytes written to the file: text, and every byte value, so a payload copy that mangles
/// anything shows.
fn file_payload() -> Vec<u8> {
    let mut bytes = format!("recorderd workload {}\n", std::process::id()).into_bytes();
    bytes.extend(0..=255u8);
    bytes
}

const NET_MESSAGE: &[u8] = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("basic") if args.len() == 4 => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).expect("stdin");
            basic(Path::new(&args[2]), &args[3])
        }
        Some("demo") => demo(),
        Some("busy") if args.len() == 3 => busy(Path::new(&args[2])),
        _ => {
            eprintln!("usage: recorder-workload basic DIR HOST:PORT | demo | busy FILE");
            std::process::exit(2);
        }
    };
    if let Err(error) = result {
        eprintln!("recorder-workload: {error}");
        std::process::exit(1);
    }
}

fn basic(dir: &Path, address: &str) -> std::io::Result<()> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path: PathBuf = dir.join(format!("workload-{}-{nanos}.bin", std::process::id()));
    let payload = file_payload();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let fd = file.as_raw_fd();
    file.write_all(&payload)?;
    file.seek(SeekFrom::Start(0))?;
    let mut read_back = vec![0u8; payload.len()];
    file.read_exact(&mut read_back)?;
    drop(file);

    let mut stream = TcpStream::connect(address)?;
    stream.write_all(NET_MESSAGE)?;
    let socket_fd = stream.as_raw_fd();
    drop(stream);

    let mut out = std::io::stdout().lock();
    writeln!(out, "pid={}", std::process::id())?;
    writeln!(out, "path={}", path.display())?;
    writeln!(out, "fd={fd}")?;
    writeln!(out, "payload={}", hex(&payload))?;
    writeln!(out, "socket_fd={socket_fd}")?;
    writeln!(out, "connect={address}")?;
    writeln!(out, "net_message={}", hex(NET_MESSAGE))?;
    out.flush()
}

fn busy(path: &Path) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seq = 0u64;
    while std::time::Instant::now() < deadline {
        file.write_all(format!("seq {seq}\n").as_bytes())?;
        seq += 1;
        if seq.is_multiple_of(1000) {
            eprintln!("workload: {seq} writes");
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
    Ok(())
}

fn demo() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?.to_string();
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        let mut request = [0u8; 512];
        let n = conn.read(&mut request)?;
        let _ = n;
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n")
    });
    let dir = std::env::temp_dir();
    let path = dir.join(format!("recorder-demo-{}.txt", std::process::id()));
    std::fs::write(&path, b"a line the demo wrote\n")?;
    let back = std::fs::read(&path)?;
    std::fs::remove_file(&path)?;
    let mut stream = TcpStream::connect(&address)?;
    stream.write_all(NET_MESSAGE)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    server.join().expect("server thread")?;
    println!(
        "demo: wrote and read {} bytes, fetched {} bytes from {address}",
        back.len(),
        response.len()
    );
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
