//! The tracepoint programs: the syscall pair and the process lifecycle programs (BTF
//! tracepoints, classic ones as the fallback), loaded and attached, their links held.

use aya::{
    programs::{
        tp_btf::BtfTracePointLink, trace_point::TracePointLink, BtfTracePoint, ProgramError,
        TracePoint,
    },
    Btf, Ebpf,
};

use crate::{error_chain, kernel_btf, preflight, CaptureError, SyscallHook};

/// The syscall programs as BTF tracepoints (what `attach_syscalls` tries first) and as
/// classic tracepoints (the fallback); see recorder-ebpf's `syscall` module.
const BTF_PROGRAMS: [(&str, &str); 2] = [
    ("syscall_enter_btf", "sys_enter"),
    ("syscall_exit_btf", "sys_exit"),
];
const CLASSIC_PROGRAMS: [(&str, &str); 2] =
    [("syscall_enter", "sys_enter"), ("syscall_exit", "sys_exit")];
/// Set to 1, the syscall programs attach as classic tracepoints even where BTF ones work.
const CLASSIC_ENV: &str = "RECORDER_CLASSIC_TRACEPOINTS";

/// A process lifecycle program: its classic and BTF flavours, the tracepoint both attach
/// to, and what a recording lacks on a kernel without that tracepoint (or its fields).
struct ProcessProgram {
    classic: &'static str,
    btf: &'static str,
    category: &'static str,
    event: &'static str,
    lacking: &'static str,
}

const PROCESS_PROGRAMS: [ProcessProgram; 5] = [
    ProcessProgram {
        classic: "process_fork",
        btf: "process_fork_btf",
        category: "sched",
        event: "sched_process_fork",
        lacking: "process tree: children of recorded processes are neither seen nor followed",
    },
    ProcessProgram {
        classic: "process_prepare_exec",
        btf: "process_prepare_exec_btf",
        category: "sched",
        event: "sched_prepare_exec",
        lacking: "argv re-read at exec (Linux 6.10+): an argv that could not be read when \
                  execve entered stays unread",
    },
    ProcessProgram {
        classic: "process_exec",
        btf: "process_exec_btf",
        category: "sched",
        event: "sched_process_exec",
        lacking: "exec events: a process's new program is known only from its execve",
    },
    ProcessProgram {
        classic: "process_exit",
        btf: "process_exit_btf",
        category: "sched",
        event: "sched_process_exit",
        lacking: "process exits: exit statuses are not recorded",
    },
    ProcessProgram {
        classic: "process_signal",
        btf: "process_signal_btf",
        category: "signal",
        event: "signal_deliver",
        lacking: "fatal signals: the signal that ended a process is not recorded",
    },
];

/// Load-time globals holding tracepoint field offsets: (global, tracepoint, field). Without
/// the field, the program reading it is not attached; `group_dead` alone may be absent
/// (older kernels), and then the leader's exit stands for the process's.
pub(crate) const FIELD_OFFSETS: [(&str, &str, &str, &str); 5] = [
    (
        recorder_common::FORK_CHILD_OFFSET_GLOBAL,
        "sched",
        "sched_process_fork",
        "child_pid",
    ),
    (
        recorder_common::EXIT_GROUP_DEAD_OFFSET_GLOBAL,
        "sched",
        "sched_process_exit",
        "group_dead",
    ),
    (
        recorder_common::EXEC_OLD_PID_OFFSET_GLOBAL,
        "sched",
        "sched_process_exec",
        "old_pid",
    ),
    (
        recorder_common::SIGNAL_SIG_OFFSET_GLOBAL,
        "signal",
        "signal_deliver",
        "sig",
    ),
    (
        recorder_common::SIGNAL_HANDLER_OFFSET_GLOBAL,
        "signal",
        "signal_deliver",
        "sa_handler",
    ),
];

/// One attachment; dropping it detaches the program.
pub(crate) enum Link {
    #[expect(dead_code, reason = "held only so that dropping it detaches")]
    TracePoint(TracePointLink),
    #[expect(dead_code, reason = "held only so that dropping it detaches")]
    Btf(BtfTracePointLink),
}

/// The kernel's BTF, for the BTF programs, and what the fork program reads through it.
pub(crate) struct KernelBtf {
    btf: Btf,
    /// `task_struct::pid`'s byte offset; without it the classic fork program is attached.
    pub task_pid_offset: Option<u32>,
    /// `thread_info.status`'s byte offset in `task_struct`; without it the probes cannot
    /// tell a 32-bit syscall from a 64-bit one.
    pub task_status_offset: Option<u32>,
}

/// The kernel's BTF where the BTF programs can be used: x86_64 (their register offsets),
/// not `RECORDER_CLASSIC_TRACEPOINTS=1`, and a kernel with BTF.
pub(crate) fn load_kernel_btf() -> Result<KernelBtf, CaptureError> {
    if std::env::var_os(CLASSIC_ENV).is_some_and(|v| v == "1") {
        return Err(CaptureError::NoBtfHook {
            reason: "RECORDER_CLASSIC_TRACEPOINTS=1",
        });
    }
    if !cfg!(target_arch = "x86_64") {
        return Err(CaptureError::NoBtfHook {
            reason: "the BTF programs read x86_64 registers only",
        });
    }
    let btf = Btf::from_sys_fs().map_err(|source| CaptureError::Program {
        program: BTF_PROGRAMS[0].0,
        source: ProgramError::Btf(source),
    })?;
    let offsets = kernel_btf::vmlinux_member_offsets([
        ("task_struct", "pid"),
        ("task_struct", "thread_info"),
        ("thread_info", "status"),
    ]);
    let [pid, thread_info, status] = match offsets {
        Ok(found) => found,
        Err(error) => {
            tracing::info!(
                error = %error_chain(&error),
                "The fork tracepoint is attached as a classic one, and 32-bit (compat) syscalls cannot be told apart."
            );
            return Ok(KernelBtf {
                btf,
                task_pid_offset: None,
                task_status_offset: None,
            });
        }
    };
    let task_status_offset = match (thread_info, status) {
        (Ok(thread_info), Ok(status)) => Some(thread_info + status),
        (Err(error), _) | (_, Err(error)) => {
            tracing::info!(
                error = %error_chain(&error),
                "32-bit (compat) syscalls cannot be told apart on this kernel."
            );
            None
        }
    };
    let task_pid_offset = match pid {
        Ok(offset) => Some(offset),
        Err(error) => {
            tracing::info!(
                error = %error_chain(&error),
                "The fork tracepoint is attached as a classic one."
            );
            None
        }
    };
    Ok(KernelBtf {
        btf,
        task_pid_offset,
        task_status_offset,
    })
}

/// What `attach_process` attached, and what this kernel's recordings lack for the rest.
pub(crate) struct ProcessPrograms {
    pub attached: Vec<&'static str>,
    pub unavailable: Vec<String>,
}

/// Attaches the process lifecycle programs whose tracepoints and fields this kernel has: as
/// BTF tracepoints where `kernel` is given (attached with `bpf()` alone, where a classic
/// tracepoint needs `perf_event_open`, which `kernel.perf_event_paranoid = 3` refuses
/// without CAP_SYS_ADMIN), else as classic ones.
pub(crate) fn attach_process(
    ebpf: &mut Ebpf,
    kernel: Option<&KernelBtf>,
    offsets: &[(&str, Option<u32>)],
    links: &mut Vec<Link>,
) -> Result<ProcessPrograms, CaptureError> {
    let has_fields = |event: &str| {
        FIELD_OFFSETS
            .iter()
            .zip(offsets)
            .filter(|((global, _, tracepoint, _), _)| {
                *tracepoint == event && *global != recorder_common::EXIT_GROUP_DEAD_OFFSET_GLOBAL
            })
            .all(|(_, (_, offset))| offset.is_some())
    };
    let mut programs = ProcessPrograms {
        attached: Vec::new(),
        unavailable: Vec::new(),
    };
    for program in &PROCESS_PROGRAMS {
        let ProcessProgram {
            category, event, ..
        } = *program;
        if !preflight::tracepoint_exists(category, event) || !has_fields(event) {
            programs.unavailable.push(format!(
                "{} (no {category}:{event} tracepoint)",
                program.lacking
            ));
            continue;
        }
        let btf = kernel.filter(|k| event != "sched_process_fork" || k.task_pid_offset.is_some());
        match btf {
            Some(kernel) => links.push(Link::Btf(attach_one_btf(
                ebpf,
                &kernel.btf,
                program.btf,
                event,
            )?)),
            None => {
                let tracepoint = load_tracepoint(ebpf, program.classic)?;
                links.push(Link::TracePoint(attach(
                    tracepoint,
                    program.classic,
                    category,
                    event,
                )?));
            }
        }
        programs.attached.push(event);
    }
    Ok(programs)
}

/// Attaches the syscall programs to the `sys_enter` / `sys_exit` tracepoints, which fire for
/// every syscall; the programs drop non-boundary syscalls with one array lookup (`CLASSES`).
/// Two attachments rather than one per syscall: detaching each takes the kernel an RCU grace
/// period, and a hundred per-syscall tracepoints made every stop take seconds.
///
/// BTF tracepoints first (where `kernel` is `Ok`): the kernel calls them with the
/// tracepoint's own arguments, where a classic tracepoint first fills a perf trace record for
/// every syscall of every process on the host, before the program's filter can drop it
/// (about 100 ns a syscall for processes nobody records, docs/BENCHMARKS.md). The classic
/// ones stay as the fallback for kernels without BTF (or BTF tracepoints, before 5.5) and for
/// other architectures than x86_64, whose `pt_regs` layout the BTF programs do not know.
///
/// `RECORDER_CLASSIC_TRACEPOINTS=1` forces the fallback, so that tests and benchmarks can
/// exercise and measure it on a kernel that has BTF.
pub(crate) fn attach_syscalls(
    ebpf: &mut Ebpf,
    kernel: Result<&KernelBtf, &CaptureError>,
    links: &mut Vec<Link>,
) -> Result<SyscallHook, CaptureError> {
    let error = match kernel.map(|kernel| attach_btf(ebpf, &kernel.btf)) {
        Ok(Ok(btf_links)) => {
            links.extend(btf_links.into_iter().map(Link::Btf));
            return Ok(SyscallHook::Btf);
        }
        Ok(Err(error)) => error_chain(&error),
        Err(error) => error_chain(error),
    };
    tracing::info!(
        %error,
        "BTF tracepoints unavailable; attaching the syscall probes as classic tracepoints, \
         which cost every process on the host more."
    );
    for (program, event) in CLASSIC_PROGRAMS {
        let tracepoint = load_tracepoint(ebpf, program)?;
        links.push(Link::TracePoint(attach(
            tracepoint,
            program,
            "raw_syscalls",
            event,
        )?));
    }
    Ok(SyscallHook::Classic)
}

/// Loads and attaches both BTF syscall programs, or neither (a failure drops what was
/// attached, so the fallback does not record a syscall twice).
fn attach_btf(ebpf: &mut Ebpf, btf: &Btf) -> Result<Vec<BtfTracePointLink>, CaptureError> {
    BTF_PROGRAMS
        .iter()
        .map(|&(program, event)| attach_one_btf(ebpf, btf, program, event))
        .collect()
}

fn attach_one_btf(
    ebpf: &mut Ebpf,
    btf: &Btf,
    program: &'static str,
    event: &str,
) -> Result<BtfTracePointLink, CaptureError> {
    let error = |source| CaptureError::Attach {
        program,
        hook: format!("tp_btf/{event}"),
        source,
    };
    let tracepoint: &mut BtfTracePoint = ebpf
        .program_mut(program)
        .ok_or(CaptureError::Missing { name: program })?
        .try_into()
        .map_err(|source| CaptureError::Program { program, source })?;
    tracepoint
        .load(event, btf)
        .map_err(|source| CaptureError::Program { program, source })?;
    let id = tracepoint.attach().map_err(error)?;
    tracepoint.take_link(id).map_err(error)
}

fn load_tracepoint<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut TracePoint, CaptureError> {
    let tracepoint: &mut TracePoint = ebpf
        .program_mut(program)
        .ok_or(CaptureError::Missing { name: program })?
        .try_into()
        .map_err(|source| CaptureError::Program { program, source })?;
    tracepoint
        .load()
        .map_err(|source| CaptureError::Program { program, source })?;
    Ok(tracepoint)
}

/// Attaches and hands back the link, so `Capture` decides when (and how fast) it detaches.
fn attach(
    tracepoint: &mut TracePoint,
    program: &'static str,
    category: &str,
    event: &str,
) -> Result<TracePointLink, CaptureError> {
    let error = |source| CaptureError::Attach {
        program,
        hook: format!("{category}:{event}"),
        source,
    };
    let id = tracepoint.attach(category, event).map_err(error)?;
    tracepoint.take_link(id).map_err(error)
}
