//! The recorders under comparison: what each is told to capture, how it is named in the
//! tables, and what one traced run left. Attaching and stopping them is `attach`'s; counting
//! what they kept is `count`'s.

mod attach;
mod count;

pub use attach::{attach, wait_rusage};

/// What a recorder is told to capture: recorderd's boundary syscalls, by name, for the
/// tools that take a list.
pub const SYSCALLS: &str =
    "read,write,pread64,pwrite64,readv,writev,preadv,pwritev,preadv2,pwritev2,\
open,openat,openat2,creat,close,socket,connect,bind,listen,accept,accept4,sendto,recvfrom,\
sendmsg,recvmsg,sendmmsg,recvmmsg,shutdown,dup,dup2,dup3,fcntl,rename,renameat,renameat2,\
unlink,unlinkat,truncate,ftruncate,sendfile,copy_file_range,splice,exit,exit_group";

/// strace's scope: its %file and %network classes plus recorderd's descriptor syscalls.
const STRACE_SCOPE: &str = "%file,%network,read,write,pread64,pwrite64,readv,writev,preadv,\
pwritev,preadv2,pwritev2,close,dup,dup2,dup3,fcntl,ftruncate,sendfile,copy_file_range,splice,\
exit,exit_group";

/// recorderd's `--max-payload`: at least the largest payload any workload moves in one call.
pub const MAX_PAYLOAD: &str = "1MiB";
/// bpftrace's string/buffer limit (the most its 0.17 release allows: strings live on the
/// 512-byte BPF stack).
pub const BPFTRACE_STRLEN: &str = "200";

/// The ring-buffer wake-up policy of the floor probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wakeup {
    Adaptive,
    Force,
    NonePolled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracer {
    None,
    Recorderd,
    /// recorderd with `--stacks`: the user stack of every syscall as well.
    RecorderdStacks,
    /// recorderd with `--priority background`: its pipeline on CPU time nothing else wants.
    RecorderdBackground,
    /// recorderd recording another process (a `sleep`), the workload not recorded: what a
    /// recording costs the rest of the host.
    Neighbour,
    Strace,
    Perf,
    Bpftrace,
    Floor(Wakeup),
}

impl Tracer {
    /// recorderd recording the workload, however it is run.
    pub fn records_workload(self) -> bool {
        matches!(
            self,
            Tracer::Recorderd | Tracer::RecorderdStacks | Tracer::RecorderdBackground
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Tracer::None => "untraced",
            Tracer::Recorderd => "recorderd",
            Tracer::RecorderdStacks => "recorderd --stacks",
            Tracer::RecorderdBackground => "recorderd --priority background",
            Tracer::Neighbour => "untraced, recorderd recording another process",
            Tracer::Strace => "strace",
            Tracer::Perf => "perf trace",
            Tracer::Bpftrace => "bpftrace",
            Tracer::Floor(Wakeup::Adaptive) => "floor (adaptive wake-up)",
            Tracer::Floor(Wakeup::Force) => "floor (BPF_RB_FORCE_WAKEUP)",
            Tracer::Floor(Wakeup::NonePolled) => "floor (BPF_RB_NO_WAKEUP, 1 ms poll)",
        }
    }

    /// What it captures, for the tables.
    pub fn captures(self) -> &'static str {
        match self {
            Tracer::None | Tracer::Neighbour => "—",
            Tracer::Recorderd => {
                "same data: every boundary syscall, args, fd → file/peer, payloads up to 1 MiB"
            }
            Tracer::RecorderdStacks => "more: the same, and each syscall's user stack, named",
            Tracer::RecorderdBackground => {
                "the same, but payloads are shed (counted) while its pipeline waits for a CPU"
            }
            Tracer::Strace => {
                "same data as text: every syscall in scope, payloads up to 1 MiB (escaped)"
            }
            Tracer::Perf => "less: syscalls and args, no payload bytes",
            Tracer::Bpftrace => {
                "less: syscalls, fd, first 200 B of flat-buffer payloads; none for iovecs"
            }
            Tracer::Floor(_) => "least: read/write payload bytes only, discarded",
        }
    }

    /// The command line, with PID / FILE / DIR placeholders, for the doc.
    pub fn command_line(self) -> String {
        match self {
            Tracer::None => "—".into(),
            Tracer::Recorderd => {
                format!("recorderd --pid PID --output DIR --max-payload {MAX_PAYLOAD}")
            }
            Tracer::RecorderdStacks => {
                format!("recorderd --pid PID --output DIR --max-payload {MAX_PAYLOAD} --stacks")
            }
            Tracer::RecorderdBackground => format!(
                "recorderd --pid PID --output DIR --max-payload {MAX_PAYLOAD} --priority background"
            ),
            Tracer::Neighbour => {
                format!("recorderd --output DIR --max-payload {MAX_PAYLOAD} -- sleep 3600")
            }
            Tracer::Strace => {
                format!("strace -f -p PID -s 1048576 -e trace={STRACE_SCOPE} -o FILE")
            }
            Tracer::Perf => "perf trace -p PID -o FILE -e <recorderd's syscall list>".into(),
            Tracer::Bpftrace => format!(
                "BPFTRACE_STRLEN={BPFTRACE_STRLEN} bpftrace xtask/src/compare/capture.bt PID > FILE"
            ),
            Tracer::Floor(wakeup) => format!(
                "recorder-bench-floor --object target/ebpf/bpfel-unknown-none/release/recorder-floor --pid PID --wakeup {}",
                match wakeup {
                    Wakeup::Adaptive => "adaptive",
                    Wakeup::Force => "force",
                    Wakeup::NonePolled => "none",
                }
            ),
        }
    }
}

/// Which recorded events count as the workload's.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    /// read/write/pread64/pwrite64 on fds 100 and up (the measured descriptors).
    DataFds,
    /// Every event of the target.
    All,
}

const DATA_SYSCALLS: &[&str] = &["read", "write", "pread64", "pwrite64"];

impl Scope {
    fn counts(self, syscall: &str, fd: Option<i64>) -> bool {
        match self {
            Scope::All => true,
            Scope::DataFds => DATA_SYSCALLS.contains(&syscall) && fd.is_some_and(|fd| fd >= 100),
        }
    }
}

/// What one traced run left.
#[derive(Clone, Debug, Default)]
pub struct Captured {
    /// Events in scope.
    pub events: u64,
    /// Events in scope whose payload was kept whole (recorderd only; others: None).
    pub whole_payloads: Option<u64>,
    /// What the recorder says it lost (records, events, chunks or shed payloads).
    pub lost: u64,
    /// Payload bytes the in-scope events moved, and the part of them captured (recorderd).
    pub payload_moved: u64,
    pub payload_kept: u64,
    pub disk_bytes: u64,
    /// CPU time of the recorder's own process (user + system) from its attach to its exit.
    pub cpu_ns: u64,
    /// CPU time it used before it was attached (loading, verifying, attaching probes).
    pub startup_cpu_ns: u64,
    pub max_rss_kib: u64,
    /// All events the recorder kept, for CPU per event.
    pub all_events: u64,
    /// The recorder ignored SIGINT and was killed.
    pub killed: bool,
}

/// The bpftrace capture: recorderd's data syscalls with the fd and up to BPFTRACE_STRLEN
/// payload bytes (read side at exit, from the buffer address kept at entry), the others with
/// their fd only. `$1` is the target pid.
pub const BPFTRACE_SCRIPT: &str = include_str!("../capture.bt");
