//! The eBPF object, embedded once: recorderd and the privileged tests load this same bytes.

/// The probes built by `build.rs`; empty when the build machine lacked the eBPF toolchain.
pub const EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/recorder"));
