//! `recorder-bench-load`: the workloads of `cargo xtask bench`'s tracer comparison, each
//! knowing exactly how many traced syscalls it makes.
//!
//! Every mode first sets up its descriptors, moves the ones it measures to fds 100 and up
//! (so a tracer's output can be filtered by fd, away from the loader's and the report's
//! syscalls), prints `ready pid=N` and waits for a line on stdin — the harness attaches the
//! tracer in between. Then it runs, and reports `key=value` lines on stdout: `syscalls` (on
//! fds 100+), `payload_bytes` (moved by them) and `elapsed_ns` (of the measured loop only).
//!
//! - `syscalls DIR SIZE ITERS`: ITERS times, a SIZE-byte write and read over a pipe, a unix
//!   socketpair, and a file (pwrite64/pread64 at offset 0): 6 syscalls per iteration.
//! - `copy SRC DST BUF`: copies SRC to DST with read/write of BUF bytes.
//! - `paced SIZE RATE MILLIS`: SIZE-byte writes to /dev/null at RATE a second for MILLIS ms.
//! - `calls CALL ITERS`: ITERS times one call, `write` (64 bytes to /dev/null), `getppid`
//!   (not a boundary syscall) or `stat` (of `/`); also reports `cpu_ns`, the loop's own CPU
//!   time (user and system, so time spent waiting for a core is left out). What a process
//!   pays per syscall for a tracer's attachments, recorded or not (xtask/attach-cost.sh).

use std::{
    ffi::CString,
    io::{BufRead, Write},
    os::unix::ffi::OsStrExt,
    path::Path,
    time::{Duration, Instant},
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> &str { args.get(i).map_or("", String::as_str) };
    let number = |i: usize| -> u64 {
        arg(i)
            .parse()
            .unwrap_or_else(|_| usage(&format!("argument {i} must be a number")))
    };
    let result = match arg(1) {
        "syscalls" if args.len() == 5 => syscalls(Path::new(arg(2)), number(3), number(4)),
        "copy" if args.len() == 5 => copy(Path::new(arg(2)), Path::new(arg(3)), number(4)),
        "paced" if args.len() == 5 => paced(number(2), number(3), number(4)),
        "calls" if args.len() == 4 => calls(arg(2), number(3)),
        _ => usage("unknown mode"),
    };
    if let Err(error) = result {
        eprintln!("recorder-bench-load: {error}");
        std::process::exit(1);
    }
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "recorder-bench-load: {problem}\nusage: recorder-bench-load syscalls DIR SIZE ITERS | copy SRC DST BUF | paced SIZE RATE MILLIS | calls write|getppid|stat ITERS"
    );
    std::process::exit(2);
}

/// Runs a libc call that returns -1 on error.
fn check(ret: isize) -> std::io::Result<usize> {
    if ret < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

fn open(path: &Path, flags: i32) -> std::io::Result<i32> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: a NUL-terminated path; the mode is used only with O_CREAT.
    check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o600) } as isize)
        .map(|fd| fd as i32)
}

/// Moves `fd` to `to` and closes the original.
fn move_fd(fd: i32, to: i32) -> std::io::Result<i32> {
    // SAFETY: plain descriptor calls on descriptors this process owns.
    unsafe {
        check(libc::dup2(fd, to) as isize)?;
        check(libc::close(fd) as isize)?;
    }
    Ok(to)
}

/// Says the descriptors are set up and waits for the harness's go-ahead.
fn ready() -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready pid={}", std::process::id())?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

fn report(syscalls: u64, payload_bytes: u64, elapsed: Duration) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "syscalls={syscalls}")?;
    writeln!(out, "payload_bytes={payload_bytes}")?;
    writeln!(out, "elapsed_ns={}", elapsed.as_nanos())?;
    out.flush()
}

/// Printable, varied bytes: what a service writes looks more like this than like zeros.
fn payload(size: usize) -> Vec<u8> {
    const TEXT: &[u8] = b"{\"order\":8841,\"sku\":\"A-1177\",\"qty\":3,\"price\":\"19.90\",\"note\":\"leave at door\"}\n";
    TEXT.iter().copied().cycle().take(size).collect()
}

fn syscalls(dir: &Path, size: u64, iters: u64) -> std::io::Result<()> {
    let size = size as usize;
    let out = payload(size);
    let mut back = vec![0u8; size];
    let (mut pipe, mut pair) = ([0; 2], [0; 2]);
    // SAFETY: each call fills the two-element array it is given.
    unsafe {
        check(libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) as isize)?;
        check(libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) as isize)?;
    }
    let path = dir.join(format!("bench-load-{}.bin", std::process::id()));
    let file = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC)?;
    let (pipe_r, pipe_w) = (move_fd(pipe[0], 100)?, move_fd(pipe[1], 101)?);
    let (sock_a, sock_b) = (move_fd(pair[0], 102)?, move_fd(pair[1], 103)?);
    let file = move_fd(file, 104)?;
    ready()?;
    let started = Instant::now();
    let (wp, rp) = (out.as_ptr().cast(), back.as_mut_ptr().cast());
    for _ in 0..iters {
        // SAFETY: both buffers hold `size` bytes for the duration of each call. Every pair
        // moves `size` bytes, which fit in the pipe's and the socket's buffers.
        unsafe {
            check(libc::write(pipe_w, wp, size))?;
            check(libc::read(pipe_r, rp, size))?;
            check(libc::write(sock_a, wp, size))?;
            check(libc::read(sock_b, rp, size))?;
            check(libc::pwrite(file, wp, size, 0))?;
            check(libc::pread(file, rp, size, 0))?;
        }
    }
    let elapsed = started.elapsed();
    std::fs::remove_file(&path)?;
    report(6 * iters, 6 * iters * size as u64, elapsed)
}

fn copy(src: &Path, dst: &Path, buf: u64) -> std::io::Result<()> {
    let input = move_fd(open(src, libc::O_RDONLY)?, 100)?;
    let output = move_fd(
        open(dst, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?,
        101,
    )?;
    let mut buffer = vec![0u8; buf as usize];
    ready()?;
    let started = Instant::now();
    let (mut syscalls, mut bytes) = (0u64, 0u64);
    loop {
        // SAFETY: the buffer holds `buf` bytes.
        let n = check(unsafe { libc::read(input, buffer.as_mut_ptr().cast(), buffer.len()) })?;
        syscalls += 1;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        let mut done = 0;
        while done < n {
            // SAFETY: writes from the filled part of the buffer.
            done +=
                check(unsafe { libc::write(output, buffer[done..].as_ptr().cast(), n - done) })?;
            syscalls += 1;
        }
    }
    let elapsed = started.elapsed();
    report(syscalls, 2 * bytes, elapsed)
}

/// Writes at a steady RATE: each turn catches up with where the clock says it should be,
/// then sleeps briefly when ahead.
fn paced(size: u64, rate: u64, millis: u64) -> std::io::Result<()> {
    let out = payload(size as usize);
    let null = move_fd(open(Path::new("/dev/null"), libc::O_WRONLY)?, 100)?;
    ready()?;
    let duration = Duration::from_millis(millis);
    let started = Instant::now();
    let mut done = 0u64;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= duration {
            break;
        }
        let due = (elapsed.as_nanos() as u64).saturating_mul(rate) / 1_000_000_000;
        if done >= due {
            std::thread::sleep(Duration::from_micros(50));
            continue;
        }
        let batch = (due - done).min(1000);
        for _ in 0..batch {
            // SAFETY: writes from a live buffer.
            check(unsafe { libc::write(null, out.as_ptr().cast(), out.len()) })?;
        }
        done += batch;
    }
    let elapsed = started.elapsed();
    report(done, done * size, elapsed)
}

/// The calling thread's CPU time so far.
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: fills the timespec it is given; this clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn calls(call: &str, iters: u64) -> std::io::Result<()> {
    let out = payload(64);
    let null = move_fd(open(Path::new("/dev/null"), libc::O_WRONLY)?, 100)?;
    let root = CString::new("/")?;
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut status: libc::stat = unsafe { std::mem::zeroed() };
    // Chosen once, so the loop times the call and not the choice.
    // SAFETY (each): a live 64-byte buffer, a NUL-terminated path and a stat to fill.
    let mut one: Box<dyn FnMut() -> isize + '_> = match call {
        "write" => Box::new(|| unsafe { libc::write(null, out.as_ptr().cast(), out.len()) }),
        "getppid" => Box::new(|| unsafe { libc::getppid() } as isize),
        "stat" => Box::new(|| unsafe { libc::stat(root.as_ptr(), &mut status) } as isize),
        _ => usage("calls: CALL is write, getppid or stat"),
    };
    ready()?;
    let (started, cpu) = (Instant::now(), thread_cpu());
    for _ in 0..iters {
        check(one())?;
    }
    let (elapsed, cpu) = (started.elapsed(), thread_cpu() - cpu);
    let payload_bytes = if call == "write" { iters * 64 } else { 0 };
    report(iters, payload_bytes, elapsed)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "cpu_ns={}", cpu.as_nanos())?;
    out.flush()
}
