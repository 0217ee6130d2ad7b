//! Build recipes shared by `cargo xtask` and `capture/build.rs`.
//!
//! There is one way to build the eBPF object ([`ebpf::build`]) and one way to find the
//! toolchain it needs ([`toolchain`]); both callers go through here.

/// Finding the nightly toolchain and bpf-linker.
pub mod toolchain;
/// The one recipe that builds the eBPF objects.
pub mod ebpf;
