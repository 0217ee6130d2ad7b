//! Loads the probes into the kernel, points them at targets, and hands out the ring buffer.
//!
//! Owns the `aya::Ebpf` instance and its maps; knows nothing about what records mean
//! (that is `event`) or where they go (`record`).

pub mod host;
pub mod object;
pub mod syscalls;

use aya::{
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf},
    programs::{ProgramError, TracePoint},
    Ebpf, EbpfError, EbpfLoader,
};
use recorder_common::{loss, CLASSES_MAP, EVENTS_MAP, LOSSES_MAP, TARGETS_MAP};
use thiserror::Error;
use tokio::io::{unix::AsyncFd, Interest};

pub use host::HostError;

const ENTER_PROGRAM: &str = "syscall_enter";
const EXIT_PROGRAM: &str = "syscall_exit";

/// What the probes capture and how much room they have.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_payload_bytes: u32,
    /// Ring buffer size in bytes: a power of two, at least one page.
    pub ring_bytes: u32,
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
    #[error("attaching `{program}` to syscalls:{hook} failed")]
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
    #[error("the ring buffer cannot be polled")]
    Poll(#[source] std::io::Error),
}

/// Records the kernel could not deliver, summed over CPUs, since the probes loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossCounts {
    pub syscalls: u64,
    pub payload_chunks: u64,
    pub stash_failures: u64,
}

impl LossCounts {
    pub fn total(&self) -> u64 {
        self.syscalls + self.payload_chunks + self.stash_failures
    }

    pub fn since(&self, earlier: &LossCounts) -> LossCounts {
        LossCounts {
            syscalls: self.syscalls - earlier.syscalls,
            payload_chunks: self.payload_chunks - earlier.payload_chunks,
            stash_failures: self.stash_failures - earlier.stash_failures,
        }
    }
}

/// Loaded and attached probes. Dropping it detaches them.
pub struct Capture {
    // Keeps the programs and their links alive.
    _ebpf: Ebpf,
    ring: AsyncFd<RingBuf<MapData>>,
    targets: HashMap<MapData, u32, u8>,
    losses: PerCpuArray<MapData, u64>,
    attached: Vec<&'static str>,
}

impl Capture {
    /// Checks the host, loads the probes and attaches them to every boundary syscall the
    /// kernel has. Must run inside a tokio runtime (the ring buffer is polled through it).
    pub fn load(limits: Limits) -> Result<Self, CaptureError> {
        host::check_privileges()?;
        if object::EBPF_OBJECT.is_empty() {
            return Err(CaptureError::NoProbes);
        }
        host::ensure_tracefs()?;
        host::raise_memlock();

        let self_tgid = std::process::id();
        let mut ebpf = EbpfLoader::new()
            .override_global(recorder_common::SELF_TGID_GLOBAL, &self_tgid, true)
            .override_global(
                recorder_common::MAX_PAYLOAD_GLOBAL,
                &limits.max_payload_bytes,
                true,
            )
            .map_max_entries(EVENTS_MAP, limits.ring_bytes)
            .load(object::EBPF_OBJECT)
            .map_err(CaptureError::Load)?;

        fill_classes(&mut ebpf)?;
        let attached = attach_all(&mut ebpf)?;

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
        // SAFETY: the AsyncFd owns the ring buffer map and nothing else closes its fd.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|error| CaptureError::Poll(error.into()))?;
        Ok(Capture {
            _ebpf: ebpf,
            ring,
            targets,
            losses,
            attached,
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

    /// The syscalls whose tracepoints are attached.
    pub fn attached(&self) -> &[&'static str] {
        &self.attached
    }

    pub fn ring(&mut self) -> &mut AsyncFd<RingBuf<MapData>> {
        &mut self.ring
    }

    pub fn losses(&self) -> Result<LossCounts, CaptureError> {
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
        Ok(LossCounts {
            syscalls: sum(loss::SYSCALL)?,
            payload_chunks: sum(loss::DATA)?,
            stash_failures: sum(loss::STASH)?,
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
    for syscall in syscalls::SYSCALLS {
        classes
            .set(syscall.nr as u32, syscall.class, 0)
            .map_err(|source| CaptureError::Map {
                map: CLASSES_MAP,
                source,
            })?;
    }
    Ok(())
}

/// Attaches both programs to each syscall's enter and exit tracepoints. A syscall whose
/// tracepoints this kernel lacks is skipped with a debug line.
fn attach_all(ebpf: &mut Ebpf) -> Result<Vec<&'static str>, CaptureError> {
    let mut attached = Vec::new();
    for (program, phase) in [(ENTER_PROGRAM, "sys_enter"), (EXIT_PROGRAM, "sys_exit")] {
        let tracepoint: &mut TracePoint = ebpf
            .program_mut(program)
            .ok_or(CaptureError::Missing { name: program })?
            .try_into()
            .map_err(|source| CaptureError::Program { program, source })?;
        tracepoint
            .load()
            .map_err(|source| CaptureError::Program { program, source })?;
        for syscall in syscalls::SYSCALLS {
            let hook = format!("{phase}_{}", syscall.name);
            if !host::tracepoint_exists("syscalls", &hook) {
                tracing::debug!(hook, "Tracepoint missing on this kernel; skipped.");
                continue;
            }
            tracepoint
                .attach("syscalls", &hook)
                .map_err(|source| CaptureError::Attach {
                    program,
                    hook,
                    source,
                })?;
            if phase == "sys_exit" {
                attached.push(syscall.name);
            }
        }
    }
    Ok(attached)
}
