//! `[capture]`: what a recording captures besides the syscalls.

use serde::Deserialize;

/// TLS through OpenSSL and GnuTLS (docs/CAPTURE.md, "TLS"): the same words as `--tls`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsSetting {
    /// The plaintext, and the ciphertext's lengths only.
    #[default]
    Plaintext,
    /// The plaintext and the ciphertext's bytes.
    Both,
    /// No uprobes: the wire alone.
    Off,
}

impl std::str::FromStr for TlsSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "plaintext" => Ok(TlsSetting::Plaintext),
            "both" => Ok(TlsSetting::Both),
            "off" => Ok(TlsSetting::Off),
            _ => Err(format!("`{text}` is not one of plaintext, both, off")),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub tls: TlsSetting,
    /// The user stack of every recorded syscall (docs/CAPTURE.md, "Stacks").
    pub stacks: bool,
    /// Frames per stack, 1 to 64.
    pub stack_depth: u32,
    /// Where separate debug files are looked for (by build id and debug link), before
    /// /usr/lib/debug.
    pub debug_dirs: Vec<std::path::PathBuf>,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            tls: TlsSetting::default(),
            stacks: false,
            stack_depth: crate::defaults::STACK_DEPTH,
            debug_dirs: Vec::new(),
        }
    }
}

/// `--stack-depth` and `[capture] stack_depth`: 1 to 64 frames.
pub fn check_stack_depth(depth: u32) -> Result<u32, String> {
    if (1..=64).contains(&depth) {
        Ok(depth)
    } else {
        Err(format!(
            "a stack depth of {depth} frames is not between 1 and 64"
        ))
    }
}
