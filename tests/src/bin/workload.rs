//! `recorder-workload`: a program of ours whose boundary traffic is known exactly, for the
//! privileged tests and the demo. It reports what it did as `key=value` lines on stdout.
//!
//! - `basic DIR ADDR`: waits for a line on stdin (the test's "recorder attached" signal), then
//!   creates a unique file in DIR, writes known bytes, reads them back, connects to ADDR and
//!   sends a known message.
//! - `demo`: the same without waiting, against a loopback server it runs itself.
//! - `vectored DIR`: after a line on stdin, writev/readv on a file, dup2 and a write through
//!   the copy, rename and unlink, and sendmsg/recvmsg over a unix socketpair, each end
//!   closed after its call.
//! - `tree DIR ADDR`: opens a file in DIR, a TCP connection to ADDR and a pipe, says
//!   `ready` on stdout, and waits for a line on stdin (the recorder attaches meanwhile); then
//!   uses those fds, has a thread write to the pipe, forks a child that writes a file and
//!   exits with status 7, forks one that execs `/bin/true` with known arguments, and forks one
//!   that kills itself with SIGKILL.
//! - `burst N`: after a line on stdin, makes exactly N + 2 traced syscalls (an open of
//!   /dev/null, N 64-byte writes to it, one `done` line on stdout), then blocks on stdin.
//! - `busy FILE`: writes numbered lines to FILE, one write each, about 10k a second for at
//!   most 30 s, saying on stderr after every 1000 (for tests that kill the recorder mid-run).
//! - `holders N LEN`: opens N loopback TCP connections and writes on each an unfinished
//!   header line of LEN bytes, `Authorization: Bearer holdtok{i}…`, with no line end, keeping
//!   them all open; says `workload: holding N connections` on stderr and exits (which closes
//!   them).
//! - `tails`: twice, after a line on stdin, writes an unfinished line (`quick tail`, then
//!   `slow tail`) on a unix socket pair and says `sent`; after the next line closes both
//!   ends and says `closed`. The test decides how long each stream stays open.
//! - `soak SECONDS DIR`: after a line on stdin, for SECONDS, a mixed load (`cargo xtask soak`): an HTTP/1.1 server
//!   thread and a client that sends it a request carrying the secret (env `SOAK_SECRET`)
//!   in its Authorization header and its JSON body, a new connection each, about 100 a
//!   second; a file in DIR written line by line (the secret in a `password=` pair), read
//!   back and removed, 20 times a second; a forked child that writes a file and exits,
//!   once a second; and with `SOAK_PG` (a conninfo, the password in `PGPASSWORD`) a `psql`
//!   query every 5 s. Then `requests=N file_writes=N forks=N queries=N` on stdout.

/// `soak`: the mixed load of `cargo xtask soak`.
#[path = "workload/soak.rs"]
mod soak;

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
        Some("burst") if args.len() == 3 => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).expect("stdin");
            burst(args[2].parse().expect("a count"))
        }
        Some("tree") if args.len() == 4 => tree(Path::new(&args[2]), &args[3]),
        Some("soak") if args.len() == 4 => match args[2].parse() {
            Ok(seconds) => soak::run(seconds, Path::new(&args[3])),
            Err(_) => Err(std::io::Error::other("soak: SECONDS is a number")),
        },
        Some("holders") if args.len() == 4 => match (args[2].parse(), args[3].parse()) {
            (Ok(count), Ok(len)) => holders(count, len),
            _ => Err(std::io::Error::other("holders: N and LEN are numbers")),
        },
        Some("tails") => tails(),
        Some("vectored") if args.len() == 3 => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).expect("stdin");
            vectored(Path::new(&args[2]))
        }
        _ => {
            eprintln!("usage: recorder-workload basic DIR HOST:PORT | demo | vectored DIR | tree DIR HOST:PORT | burst N | busy FILE | holders N LEN | tails | soak SECONDS DIR");
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

/// The unfinished header line `holders` writes on connection `index`: its token starts with
/// `holdtok`, so a test can look for any trace of it.
fn held_line(index: usize, len: usize) -> Vec<u8> {
    let mut line = format!("Authorization: Bearer holdtok{index:05}").into_bytes();
    while line.len() < len {
        line.extend_from_slice(b" and more of the same");
    }
    line.truncate(len.max(29));
    line
}

fn holders(count: usize, len: usize) -> std::io::Result<()> {
    // Two descriptors per connection, past the usual soft limit of 1024.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let wanted = 2 * count as u64 + 64;
    // SAFETY: getrlimit/setrlimit read and write the struct passed.
    unsafe {
        check(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) as isize)?;
        limit.rlim_cur = wanted;
        limit.rlim_max = limit.rlim_max.max(wanted);
        // Raising the hard limit needs CAP_SYS_RESOURCE (the tests run as root); without
        // it, as far as the hard limit goes.
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            check(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) as isize)?;
            limit.rlim_cur = limit.rlim_max.min(wanted);
            check(libc::setrlimit(libc::RLIMIT_NOFILE, &limit) as isize)?;
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let mut open = Vec::with_capacity(2 * count);
    for index in 0..count {
        let mut client = TcpStream::connect(address)?;
        let (server, _) = listener.accept()?;
        client.write_all(&held_line(index, len))?;
        open.push(client);
        open.push(server);
    }
    eprintln!("workload: holding {count} connections");
    Ok(())
}

/// Runs a libc call that returns -1 on error.
fn check(ret: isize) -> std::io::Result<isize> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn iovec(bytes: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    }
}

fn vectored(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = dir.join(format!("vectored-{}.bin", std::process::id()));
    let renamed = dir.join(format!("renamed-{}.bin", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let fd = file.as_raw_fd();
    let parts: [&[u8]; 3] = [b"first part|", b"second part|", b"third part"];
    let iov: Vec<libc::iovec> = parts.iter().map(|p| iovec(p)).collect();
    // SAFETY: the iovecs point at live buffers for the duration of each call.
    unsafe {
        check(libc::writev(fd, iov.as_ptr(), 3))?;
        check(libc::lseek(fd, 0, libc::SEEK_SET) as isize)?;
        let (mut a, mut b) = ([0u8; 8], [0u8; 64]);
        let read_iov = [
            libc::iovec {
                iov_base: a.as_mut_ptr().cast(),
                iov_len: 8,
            },
            libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: 64,
            },
        ];
        check(libc::readv(fd, read_iov.as_ptr(), 2))?;
        check(libc::dup2(fd, 40) as isize)?;
        check(libc::write(40, b"|via dup2".as_ptr().cast(), 9))?;
        check(libc::close(40) as isize)?;
    }
    drop(file);
    std::fs::rename(&path, &renamed)?;
    std::fs::remove_file(&renamed)?;

    let mut pair = [0; 2];
    // SAFETY: socketpair fills the array; msghdrs point at live buffers.
    unsafe {
        check(libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) as isize)?;
        let out: [&[u8]; 2] = [b"hello ", b"over sendmsg"];
        let out_iov: Vec<libc::iovec> = out.iter().map(|p| iovec(p)).collect();
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = out_iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = 2;
        check(libc::sendmsg(pair[0], &msg, 0))?;
        // Closed at once, as the receiver after it: a stream's last bytes are decided at
        // its close, not at the hold-back time.
        check(libc::close(pair[0]) as isize)?;
        let mut buf = [0u8; 64];
        let mut in_iov = [libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: 64,
        }];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = in_iov.as_mut_ptr();
        msg.msg_iovlen = 1;
        check(libc::recvmsg(pair[1], &mut msg, 0))?;
        check(libc::close(pair[1]) as isize)?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "fd={fd}")?;
    writeln!(
        out,
        "path={}",
        String::from_utf8_lossy(path.as_os_str().as_bytes())
    )?;
    writeln!(out, "renamed={}", renamed.display())?;
    writeln!(out, "sender={}", pair[0])?;
    writeln!(out, "receiver={}", pair[1])?;
    out.flush()
}

fn tails() -> std::io::Result<()> {
    let mut stdin = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut line = String::new();
    for tail in [&b"quick tail"[..], b"slow tail"] {
        stdin.read_line(&mut line)?;
        let (mut sender, receiver) = std::os::unix::net::UnixStream::pair()?;
        sender.write_all(tail)?;
        writeln!(out, "sent")?;
        out.flush()?;
        stdin.read_line(&mut line)?;
        drop((sender, receiver));
        writeln!(out, "closed")?;
        out.flush()?;
    }
    Ok(())
}

/// Arguments `tree` passes to `/bin/true`: spaces and non-ASCII survive as they are.
const EXEC_ARGS: [&std::ffi::CStr; 3] = [c"true", c"first argument", c"zwei \xc3\xa4"];

fn tree(dir: &Path, address: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let pid = std::process::id();
    let pre_path = dir.join(format!("pre-{pid}.txt"));
    let mut pre_file = std::fs::File::create(&pre_path)?;
    let mut stream = TcpStream::connect(address)?;
    let mut pipe = [0; 2];
    // SAFETY: pipe fills the array.
    check(unsafe { libc::pipe(pipe.as_mut_ptr()) } as isize)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;

    // Descriptors opened before the recorder attached.
    pre_file.write_all(b"pre-existing file\n")?;
    stream.write_all(b"pre-existing socket")?;

    let write_end = pipe[1];
    let thread = std::thread::spawn(move || {
        // SAFETY: the write end stays open until after the join.
        let tid = unsafe { libc::gettid() };
        check(unsafe { libc::write(write_end, b"from thread".as_ptr().cast(), 11) }).map(|_| tid)
    });
    let thread_tid = thread.join().expect("thread")?;
    let mut from_thread = [0u8; 11];
    // SAFETY: reads into a live buffer of that size.
    check(unsafe { libc::read(pipe[0], from_thread.as_mut_ptr().cast(), 11) })?;

    let child_path = dir.join(format!("child-{pid}.txt"));
    let child_path_c = std::ffi::CString::new(child_path.as_os_str().as_bytes())?;
    let argv: Vec<*const libc::c_char> = EXEC_ARGS
        .iter()
        .map(|arg| arg.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    // Before the fork: a thread's closure cannot hold a raw pointer.
    let argv_address = argv.as_ptr() as usize;
    // SAFETY: between fork and _exit/exec the children only make raw syscalls on memory
    // prepared before the fork, but the last, which starts a thread: this process has one
    // thread when it forks (the other was joined), so the child's allocator is in a sane
    // state.
    let (child, exec_child, killed_child, thread_exec_child) = unsafe {
        let child = check(libc::fork() as isize)? as i32;
        if child == 0 {
            let fd = libc::open(
                child_path_c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o600,
            );
            libc::write(fd, b"from child".as_ptr().cast(), 10);
            libc::_exit(7);
        }
        let exec_child = check(libc::fork() as isize)? as i32;
        if exec_child == 0 {
            libc::execv(c"/bin/true".as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
        let killed_child = check(libc::fork() as isize)? as i32;
        if killed_child == 0 {
            libc::kill(libc::getpid(), libc::SIGKILL);
            libc::_exit(1);
        }
        // A child whose second thread execs: it takes the leader's id, which the kernel
        // gives it once the leader has been made to exit.
        let thread_exec_child = check(libc::fork() as isize)? as i32;
        if thread_exec_child == 0 {
            std::thread::spawn(move || {
                libc::execv(
                    c"/bin/true".as_ptr(),
                    argv_address as *const *const libc::c_char,
                );
                libc::_exit(127);
            });
            loop {
                libc::pause();
            }
        }
        (child, exec_child, killed_child, thread_exec_child)
    };
    for pid in [child, exec_child, killed_child, thread_exec_child] {
        let mut status = 0;
        // SAFETY: waits for our own child.
        check(unsafe { libc::waitpid(pid, &mut status, 0) } as isize)?;
    }
    writeln!(out, "pre_fd={}", pre_file.as_raw_fd())?;
    writeln!(out, "pre_path={}", pre_path.display())?;
    writeln!(out, "socket_fd={}", stream.as_raw_fd())?;
    writeln!(out, "socket_local={}", stream.local_addr()?)?;
    writeln!(out, "pipe_read={}", pipe[0])?;
    writeln!(out, "pipe_write={}", pipe[1])?;
    writeln!(out, "thread_tid={thread_tid}")?;
    writeln!(out, "child_pid={child}")?;
    writeln!(out, "child_path={}", child_path.display())?;
    writeln!(out, "exec_pid={exec_child}")?;
    writeln!(out, "killed_pid={killed_child}")?;
    writeln!(out, "thread_exec_pid={thread_exec_child}")?;
    out.flush()
}

/// Raw libc calls only, so the count of traced syscalls is exactly what the test expects.
fn burst(count: u64) -> std::io::Result<()> {
    let payload = [b'x'; 64];
    // SAFETY: NUL-terminated path literal; writes from a live buffer.
    unsafe {
        let fd =
            check(libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) as isize)?
                as i32;
        for _ in 0..count {
            check(libc::write(fd, payload.as_ptr().cast(), payload.len()))?;
        }
        check(libc::write(1, b"done\n".as_ptr().cast(), 5))?;
    }
    // Wait, in one more read, until the test has stopped the recorder.
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

fn busy(path: &Path) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // 30 s, and longer where the tests run emulated (the crash tests wait for 20,000 writes).
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_secs(30) * recorder_tests::time_scale();
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
