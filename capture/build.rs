//! Builds the eBPF object through xtask's recipe and leaves it in OUT_DIR for `object` to
//! embed. Without the nightly toolchain or bpf-linker (or with RECORDER_EBPF_SKIP=1) it
//! writes an empty object instead, so unit tests and `cargo check` still work; recorderd
//! then refuses to start and says why. (The `recorder` reader never depends on this crate.)

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use xtask::ebpf;

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join(ebpf::OBJECT_NAME);
    for source in ebpf::sources(&root) {
        println!("cargo:rerun-if-changed={}", source.display());
    }
    println!("cargo:rerun-if-env-changed=RECORDER_EBPF_SKIP");

    let skip = std::env::var_os("RECORDER_EBPF_SKIP").is_some_and(|v| v == "1");
    let missing = if skip {
        Some("RECORDER_EBPF_SKIP=1".to_owned())
    } else {
        ebpf::missing_tools()
    };
    if let Some(missing) = missing {
        println!(
            "cargo:warning=recorderd is built without probes ({missing}); run `cargo xtask setup`"
        );
        std::fs::write(&out, [])?;
        return Ok(());
    }
    let object = ebpf::build(&root, &ebpf::target_dir(&root))?;
    std::fs::copy(&object, &out)
        .with_context(|| format!("copying {} to {}", object.display(), out.display()))?;
    Ok(())
}
