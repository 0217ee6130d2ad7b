//! The service's tables: `[limits]`, `[control]` and `[[targets]]`, and the rule for a
//! program name (`comm`) that `--comm` and `[[targets]] comm` share.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use thiserror::Error;

use crate::{defaults, units};

/// `[limits]`: how long and how many recordings the service runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The longest `recorder start --for` accepted.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub max_duration: Duration,
    /// `recorder start` without `--for` records this long.
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub default_duration: Duration,
    /// Recordings running at once; more are refused.
    pub max_concurrent: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_duration: defaults::MAX_DURATION,
            default_duration: defaults::DEFAULT_DURATION,
            max_concurrent: defaults::MAX_CONCURRENT,
        }
    }
}

/// `[control]`: the socket `recorder start/stop/status` talk to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    pub socket: PathBuf,
    /// Members of this group may use the socket; without it, only root may.
    pub group: Option<String>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from(defaults::CONTROL_SOCKET),
            group: None,
        }
    }
}

/// `[[targets]]`: one kind of process the service may record, named for `--target NAME`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: String,
    /// Processes running a program of this name (as `ps -o comm` shows it).
    pub comm: Option<String>,
    /// Processes running this executable (the path `/proc/PID/exe` points to).
    pub exe: Option<PathBuf>,
    /// Processes in this cgroup v2 or below it (e.g. /system.slice/api.service).
    pub cgroup: Option<String>,
}

#[derive(Debug, Error)]
#[error("--comm `{name}`: a command name is 1 to 15 bytes with no `/` (see `ps -o comm`)")]
pub struct CommError {
    pub name: String,
}

/// Checks a program name: what the kernel keeps of one is at most 15 bytes.
pub fn check_comm(name: &str) -> Result<(), CommError> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', '\0']) {
        return Err(CommError {
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_comm;

    #[test]
    fn comm_names_are_what_the_kernel_keeps() {
        assert!(check_comm("postgres").is_ok());
        assert!(check_comm("").is_err());
        assert!(check_comm("a-name-of-16-byt").is_err());
        assert!(check_comm("bin/sh").is_err());
    }
}
