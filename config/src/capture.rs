//! `[capture]`: what a recording captures besides the syscalls, and how its pipeline
//! shares the CPU with what it records.

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

/// How a recording's pipeline (decode, redaction, writing) is scheduled: the same words as
/// `--priority` (docs/OPERATIONS.md, "Sharing the CPU").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Beside the traced program: on a busy host both slow down, and payloads are kept.
    #[default]
    Normal,
    /// Only on CPU time nothing else wants (SCHED_IDLE): on a busy host the traced program
    /// keeps its speed, and payloads past the drain's backlog budget are shed and counted.
    Background,
}

impl Priority {
    /// Its word, as `--priority`, the file and a recording's Header write it.
    pub fn word(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Background => "background",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [Priority::Normal, Priority::Background]
            .into_iter()
            .find(|priority| priority.word() == text)
            .ok_or_else(|| format!("`{text}` is not one of normal, background"))
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
    /// How the pipeline is scheduled.
    pub priority: Priority,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            tls: TlsSetting::default(),
            stacks: false,
            stack_depth: crate::defaults::STACK_DEPTH,
            debug_dirs: Vec::new(),
            priority: Priority::default(),
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
