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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    pub tls: TlsSetting,
}
