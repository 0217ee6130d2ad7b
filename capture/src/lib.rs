//! Loads the probes into the kernel, points them at targets, and hands out the ring buffer
//! and the kernel's loss counters.
//!
//! Owns the `aya::Ebpf` instance and its maps; knows nothing about what records mean (that
//! is recorder-daemon's `pipeline`) or where they go (recorder-store).

/// What the host must provide before probes load: privileges, tracefs, locked memory.
pub mod preflight;
/// The eBPF object, embedded once.
pub mod object;
/// The processes to record: pids checked, cgroups resolved, commands spawned, exits watched.
pub mod target;
/// The TLS plaintext probes: which library files, and attaching to them.
pub mod tls;
/// Struct member offsets from the kernel's BTF.
mod kernel_btf;
/// The syscall and process tracepoint programs, attached.
mod tracepoints;

use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::ProgramError,
    Ebpf, EbpfError, EbpfLoader,
};
use recorder_common::{loss, CLASSES_MAP, COMM_BYTES, EVENTS_MAP, LOSSES_MAP, TARGETS_MAP};
use recorder_proto::v1::Loss;
use thiserror::Error;

pub use preflight::HostError;

use tracepoints::{attach_process, attach_syscalls, load_kernel_btf, Link, FIELD_OFFSETS};

/// Which processes the probes record besides those added with `Capture::add_target`.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Children of targeted processes become targets before their first instruction.
    pub follow: bool,
    /// Every process in this cgroup v2 (at any depth).
    pub cgroup: Option<CgroupScope>,
    /// Processes that exec a program with this command name (at most 15 bytes).
    pub comm: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CgroupScope {
    /// The cgroup directory's inode number, which is the kernel's cgroup id.
    pub id: u64,
    /// Depth below the cgroup2 root (the root is level 0).
    pub level: u32,
}

/// What the probes capture and how much room they have.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_payload_bytes: u32,
    /// Ring buffer size in bytes: a power of two, at least one page.
    pub ring_bytes: u32,
    pub tls: TlsCapture,
    /// Frames of user stack taken at each recorded syscall (`--stacks`); 0: none.
    pub stack_depth: u32,
}

/// Whether TLS library calls are recorded as plaintext, and what becomes of the ciphertext
/// the syscalls inside them move.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsCapture {
    /// No TLS probes: connections are recorded as the syscalls see them (ciphertext).
    Off,
    /// Plaintext recorded; the ciphertext's lengths only (the default).
    #[default]
    Plaintext,
    /// Plaintext recorded, and the ciphertext's bytes kept too.
    PlaintextAndCiphertext,
}

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(
        "this recorderd was built without its eBPF probes: run `cargo xtask setup`, then rebuild"
    )]
    NoProbes,
    #[error("loading the eBPF probes failed")]
    Load(#[source] EbpfError),
    #[error("the eBPF object has no `{name}`")]
    Missing { name: &'static str },
    #[error("the kernel rejected program `{program}`")]
    Program {
        program: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching `{program}` to {hook} failed")]
    Attach {
        program: &'static str,
        hook: String,
        #[source]
        source: ProgramError,
    },
    #[error("updating map `{map}` failed")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("BTF tracepoints not used: {reason}")]
    NoBtfHook { reason: &'static str },
}

/// How the syscall programs are attached (`Capture::syscall_hook`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallHook {
    /// BTF tracepoints (`tp_btf/sys_enter`, `tp_btf/sys_exit`): the default.
    Btf,
    /// Classic `raw_syscalls` tracepoints: the fallback, several times dearer for every
    /// process on the host.
    Classic,
}

/// Loaded and attached probes. Dropping it detaches them.
pub struct Capture {
    // Keeps the programs alive (and the uprobes they hold).
    ebpf: Ebpf,
    /// The attachments; dropping them detaches the probes.
    _links: Vec<Link>,
    /// Until the session's drain takes it.
    ring: Option<RingBuf<MapData>>,
    targets: HashMap<MapData, u32, u8>,
    losses: PerCpuArray<MapData, u64>,
    attached: Vec<&'static str>,
    syscall_hook: SyscallHook,
    /// `None` when TLS capture is off, or its probes failed (`tls_unavailable` says why).
    tls: Option<tls::TlsProbes>,
    tls_unavailable: Option<String>,
    /// What recordings lack on this kernel, one line a feature.
    unavailable: Vec<String>,
}

impl Capture {
    /// Checks the host, loads the probes and attaches them to every boundary syscall the
    /// kernel has.
    pub fn load(limits: Limits, scope: &Scope) -> Result<Self, CaptureError> {
        preflight::check_privileges()?;
        preflight::check_kernel()?;
        if object::EBPF_OBJECT.is_empty() {
            return Err(CaptureError::NoProbes);
        }
        preflight::ensure_tracefs()?;
        preflight::raise_memlock();

        let self_tgid = std::process::id();
        let follow = u32::from(scope.follow);
        let wakeup_bytes = limits.ring_bytes / 4;
        // Half the ring stays for syscall and process records when payloads crowd it.
        let payload_stop_bytes = limits.ring_bytes / 2;
        let cgroup = scope.cgroup.map_or((0, 0), |c| (c.id, c.level));
        let mut comm = [0u8; COMM_BYTES];
        if let Some(name) = &scope.comm {
            let len = name.len().min(COMM_BYTES - 1);
            comm[..len].copy_from_slice(&name.as_bytes()[..len]);
        }
        let tls_on = u32::from(limits.tls != TlsCapture::Off);
        let stack_depth = limits.stack_depth.min(recorder_common::MAX_STACK_DEPTH);
        let keep_ciphertext = u32::from(limits.tls == TlsCapture::PlaintextAndCiphertext);
        let offsets: Vec<(&str, Option<u32>)> = FIELD_OFFSETS
            .iter()
            .map(|&(global, category, event, field)| {
                (global, preflight::field_offset(category, event, field))
            })
            .collect();
        let kernel = load_kernel_btf();
        let task_pid_offset = kernel
            .as_ref()
            .ok()
            .and_then(|k| k.task_pid_offset)
            .unwrap_or(0);
        let task_status_offset = kernel
            .as_ref()
            .ok()
            .and_then(|k| k.task_status_offset)
            .unwrap_or(0);
        let mut loader = EbpfLoader::new();
        loader
            .override_global(recorder_common::SELF_TGID_GLOBAL, &self_tgid, true)
            .override_global(
                recorder_common::TASK_PID_OFFSET_GLOBAL,
                &task_pid_offset,
                true,
            )
            .override_global(
                recorder_common::TASK_STATUS_OFFSET_GLOBAL,
                &task_status_offset,
                true,
            )
            .override_global(
                recorder_common::MAX_PAYLOAD_GLOBAL,
                &limits.max_payload_bytes,
                true,
            )
            .override_global(recorder_common::WAKEUP_BYTES_GLOBAL, &wakeup_bytes, true)
            .override_global(
                recorder_common::PAYLOAD_STOP_BYTES_GLOBAL,
                &payload_stop_bytes,
                true,
            )
            .override_global(recorder_common::FOLLOW_GLOBAL, &follow, true)
            .override_global(recorder_common::CGROUP_ID_GLOBAL, &cgroup.0, true)
            .override_global(recorder_common::CGROUP_LEVEL_GLOBAL, &cgroup.1, true)
            .override_global(recorder_common::COMM_GLOBAL, &comm, true)
            .override_global(recorder_common::TLS_GLOBAL, &tls_on, true)
            .override_global(
                recorder_common::TLS_KEEP_CIPHERTEXT_GLOBAL,
                &keep_ciphertext,
                true,
            )
            .override_global(recorder_common::STACK_DEPTH_GLOBAL, &stack_depth, true)
            .map_max_entries(EVENTS_MAP, limits.ring_bytes);
        // A missing field leaves 0; its program is then not attached (below).
        let values: Vec<u32> = offsets.iter().map(|(_, o)| o.unwrap_or(0)).collect();
        for ((global, _), value) in offsets.iter().zip(&values) {
            loader.override_global(global, value, true);
        }
        let mut ebpf = loader
            .load(object::EBPF_OBJECT)
            .map_err(CaptureError::Load)?;

        fill_classes(&mut ebpf)?;
        let mut links = Vec::new();
        let syscall_hook = attach_syscalls(&mut ebpf, kernel.as_ref(), &mut links)?;
        let mut attached: Vec<&'static str> = recorder_syscalls::table::SYSCALLS
            .iter()
            .map(|s| s.name)
            .collect();
        // The process programs follow the syscall programs' flavour.
        let process_btf = kernel
            .as_ref()
            .ok()
            .filter(|_| syscall_hook == SyscallHook::Btf);
        let process = attach_process(&mut ebpf, process_btf, &offsets, &mut links)?;
        attached.extend(process.attached);
        for lacking in &process.unavailable {
            tracing::warn!(%lacking, "This kernel cannot give every recording feature.");
        }
        // Without the TLS probes the syscalls are still recorded: a kernel without uprobes
        // costs the plaintext, not the recording.
        let (tls, tls_unavailable) = match limits.tls {
            TlsCapture::Off => (None, None),
            _ => match tls::TlsProbes::load(&mut ebpf) {
                Ok(probes) => (Some(probes), None),
                Err(error) => {
                    let mut reason = error_chain(&error);
                    if let Some(hint) = preflight::perf_event_hint(&error) {
                        reason.push_str(&format!(" ({hint})"));
                    }
                    tracing::warn!(%reason, "TLS plaintext is not recorded: the uprobes failed.");
                    (None, Some(reason))
                }
            },
        };

        let targets = HashMap::try_from(take_map(&mut ebpf, TARGETS_MAP)?).map_err(|source| {
            CaptureError::Map {
                map: TARGETS_MAP,
                source,
            }
        })?;
        let losses = PerCpuArray::try_from(take_map(&mut ebpf, LOSSES_MAP)?).map_err(|source| {
            CaptureError::Map {
                map: LOSSES_MAP,
                source,
            }
        })?;
        let ring = RingBuf::try_from(take_map(&mut ebpf, EVENTS_MAP)?).map_err(|source| {
            CaptureError::Map {
                map: EVENTS_MAP,
                source,
            }
        })?;
        Ok(Capture {
            ebpf,
            _links: links,
            ring: Some(ring),
            targets,
            losses,
            attached,
            syscall_hook,
            tls,
            tls_unavailable,
            unavailable: process.unavailable,
        })
    }

    /// Starts recording process `tgid` (all its threads).
    pub fn add_target(&mut self, tgid: u32) -> Result<(), CaptureError> {
        self.targets
            .insert(tgid, 1, 0)
            .map_err(|source| CaptureError::Map {
                map: TARGETS_MAP,
                source,
            })
    }

    /// Probes the TLS libraries process `tgid` maps that are not probed yet (its own copy of
    /// OpenSSL or GnuTLS); nothing when TLS capture is off.
    pub fn probe_tls_of(&mut self, tgid: u32) -> Result<(), CaptureError> {
        match &mut self.tls {
            Some(tls) => tls.probe_process(&mut self.ebpf, tgid),
            None => Ok(()),
        }
    }

    /// The TLS libraries probed ("openssl /usr/lib/x86_64-linux-gnu/libssl.so.3", ...).
    pub fn tls_libraries(&self) -> &[String] {
        self.tls.as_ref().map_or(&[], |tls| tls.libraries())
    }

    /// Why TLS plaintext is not recorded although it was asked for (the uprobes failed).
    pub fn tls_unavailable(&self) -> Option<&str> {
        self.tls_unavailable.as_deref()
    }

    /// What recordings lack on this kernel (a tracepoint it does not have), one line a
    /// feature; empty on a kernel with everything.
    pub fn unavailable(&self) -> &[String] {
        &self.unavailable
    }

    /// The syscalls whose tracepoints are attached.
    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    /// How the syscall programs are attached on this host.
    pub fn syscall_hook(&self) -> SyscallHook {
        self.syscall_hook
    }

    /// Hands the ring buffer to its one consumer; `None` once taken.
    pub fn take_ring(&mut self) -> Option<RingBuf<MapData>> {
        self.ring.take()
    }

    /// Records the kernel could not deliver since the probes loaded, summed over CPUs, by
    /// kind (the time range is the caller's to fill in).
    pub fn losses(&self) -> Result<Loss, CaptureError> {
        let sum = |index: u32| -> Result<u64, CaptureError> {
            let values = self
                .losses
                .get(&index, 0)
                .map_err(|source| CaptureError::Map {
                    map: LOSSES_MAP,
                    source,
                })?;
            Ok(values.iter().sum())
        };
        Ok(Loss {
            syscalls: sum(loss::SYSCALL)?,
            payload_chunks: sum(loss::DATA)?,
            stash_failures: sum(loss::STASH)?,
            process_events: sum(loss::PROCESS)?,
            payloads_shed: sum(loss::SHED)?,
            lost_syscall_payload_bytes: sum(loss::LOST_SYSCALL_BYTES)?,
            stacks_lost: sum(loss::STACK)?,
            compat_syscalls: sum(loss::COMPAT)?,
            ..Loss::default()
        })
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, CaptureError> {
    ebpf.take_map(name).ok_or(CaptureError::Missing { name })
}

fn fill_classes(ebpf: &mut Ebpf) -> Result<(), CaptureError> {
    let map = ebpf
        .map_mut(CLASSES_MAP)
        .ok_or(CaptureError::Missing { name: CLASSES_MAP })?;
    let mut classes: Array<_, u8> = Array::try_from(map).map_err(|source| CaptureError::Map {
        map: CLASSES_MAP,
        source,
    })?;
    for syscall in recorder_syscalls::table::SYSCALLS {
        classes
            .set(syscall.nr as u32, syscall.class, 0)
            .map_err(|source| CaptureError::Map {
                map: CLASSES_MAP,
                source,
            })?;
    }
    Ok(())
}

/// An error and its sources on one line, for the logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
