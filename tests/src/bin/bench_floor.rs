//! `recorder-bench-floor --object FILE --pid N --wakeup adaptive|force|none`: loads the floor
//! probe (`recorder-ebpf/src/floor.rs`) from FILE, its own eBPF object `recorder-floor` that
//! `cargo xtask bench` builds and passes here (recorderd's object does not contain it), for
//! process N, drains its ring buffer and discards what it reads, and stops when N exits. Prints
//! `floor: attached` on stderr once the probes are in, and `records=`, `bytes=`, `losses=`
//! on stdout at the end.
//!
//! `--wakeup` is the flags word the probe passes to the ring-buffer output: `adaptive` (0,
//! what recorderd's probes use), `force` (BPF_RB_FORCE_WAKEUP: a wake-up per record), or
//! `none` (BPF_RB_NO_WAKEUP: epoll never fires, so this consumer polls every millisecond).
//!
//! `recorder-bench-floor --object FILE --tail-call-check`: whether this kernel lets a fentry
//! program jump (`bpf_tail_call`) to one verified for another function. Loads the floor
//! object's `floor_shared` for `pwrite64` without attaching it, attaches `floor_stub` to
//! `pread64`, makes 1000 `pread64` calls and says how often the shared program ran; exits 1
//! when it did not run for each of them, or when the kernel refused a step (which it names).

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use anyhow::{bail, Context as _, Result};
use aya::{
    maps::{PerCpuArray, ProgramArray, RingBuf},
    programs::{FEntry, TracePoint},
    Btf, EbpfLoader,
};
use recorder_capture::preflight;

/// Program → the tracepoints it goes on.
const ATTACH: &[(&str, &[&str])] = &[
    ("floor_write", &["sys_enter_write", "sys_enter_pwrite64"]),
    ("floor_read_enter", &["sys_enter_read", "sys_enter_pread64"]),
    ("floor_read_exit", &["sys_exit_read", "sys_exit_pread64"]),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|arg| arg == "--tail-call-check") {
        let object = value(&args, "--object")
            .context("usage: recorder-bench-floor --object FILE --tail-call-check")?;
        return tail_call_check(Path::new(object));
    }
    let (Some(object), Some(pid), Some(wakeup)) = (
        value(&args, "--object"),
        value(&args, "--pid"),
        value(&args, "--wakeup"),
    ) else {
        bail!("usage: recorder-bench-floor --object FILE --pid N --wakeup adaptive|force|none");
    };
    let object = Path::new(object);
    let pid: u32 = pid.parse().context("--pid takes a number")?;
    let (flags, poll_ms): (u32, i32) = match wakeup {
        "adaptive" => (0, -1),
        "force" => (2, -1),
        "none" => (1, 1),
        other => bail!("unknown --wakeup {other}"),
    };
    if !object.is_file() {
        bail!(
            "no floor object at {}: `cargo xtask bench` builds it (recorder-ebpf's recorder-floor)",
            object.display()
        );
    }
    preflight::ensure_tracefs()?;
    preflight::raise_memlock();
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        bail!("process {pid}: {}", std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned to us and owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };

    let mut ebpf = EbpfLoader::new()
        .override_global("FLOOR_TGID", &pid, true)
        .override_global("FLOOR_WAKEUP", &flags, true)
        .load_file(object)
        .with_context(|| format!("loading {}", object.display()))?;
    for (name, hooks) in ATTACH {
        let program: &mut TracePoint = ebpf
            .program_mut(name)
            .with_context(|| format!("no program {name}"))?
            .try_into()?;
        program.load().with_context(|| format!("loading {name}"))?;
        for hook in *hooks {
            program
                .attach("syscalls", hook)
                .with_context(|| format!("attaching {name} to {hook}"))?;
        }
    }
    let mut ring = RingBuf::try_from(ebpf.take_map("FLOOR_EVENTS").context("no FLOOR_EVENTS")?)?;
    let losses: PerCpuArray<_, u64> =
        PerCpuArray::try_from(ebpf.take_map("FLOOR_LOSSES").context("no FLOOR_LOSSES")?)?;
    eprintln!("floor: attached to {pid} (wakeup {wakeup})");

    let (mut records, mut bytes) = (0u64, 0u64);
    let mut fds = [
        libc::pollfd {
            fd: ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfd entries.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, poll_ms) };
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            bail!("poll: {}", std::io::Error::last_os_error());
        }
        while let Some(item) = ring.next() {
            records += 1;
            bytes += item.len() as u64;
        }
        if fds[1].revents != 0 {
            break;
        }
    }
    let lost: u64 = losses.get(&0, 0)?.iter().sum();
    println!("records={records}\nbytes={bytes}\nlosses={lost}");
    Ok(())
}

const TAIL_CALL_CALLS: u64 = 1000;

fn tail_call_check(object: &Path) -> Result<()> {
    preflight::raise_memlock();
    let btf = Btf::from_sys_fs().context("reading the kernel's BTF")?;
    let mut ebpf = EbpfLoader::new()
        .load_file(object)
        .with_context(|| format!("loading {}", object.display()))?;
    let shared: &mut FEntry = ebpf
        .program_mut("floor_shared")
        .context("no program floor_shared")?
        .try_into()?;
    shared
        .load("__x64_sys_pwrite64", &btf)
        .context("loading floor_shared (fentry on pwrite64)")?;
    let shared = shared.fd()?.try_clone()?;
    let stub: &mut FEntry = ebpf
        .program_mut("floor_stub")
        .context("no program floor_stub")?
        .try_into()?;
    stub.load("__x64_sys_pread64", &btf)
        .context("loading floor_stub (fentry on pread64)")?;
    ProgramArray::try_from(ebpf.map_mut("FLOOR_SHARED").context("no FLOOR_SHARED")?)?
        .set(0, &shared, 0)
        .context("putting floor_shared in the program array")?;
    let stub: &mut FEntry = ebpf
        .program_mut("floor_stub")
        .context("no floor_stub")?
        .try_into()?;
    stub.attach().context("attaching floor_stub to pread64")?;

    let zero = std::fs::File::open("/dev/zero")?;
    let mut byte = [0u8; 1];
    for _ in 0..TAIL_CALL_CALLS {
        std::os::unix::fs::FileExt::read_at(&zero, &mut byte, 0)?;
    }
    let runs: PerCpuArray<_, u64> = PerCpuArray::try_from(
        ebpf.map("FLOOR_SHARED_RUNS")
            .context("no FLOOR_SHARED_RUNS")?,
    )?;
    let ran: u64 = runs.get(&0, 0)?.iter().sum();
    println!(
        "tail-call check: the program verified for pwrite64 ran {ran} times for {TAIL_CALL_CALLS} pread64 calls"
    );
    if ran < TAIL_CALL_CALLS {
        bail!("the stub's tail call did not reach the shared program every time");
    }
    Ok(())
}

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|arg| arg == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}
