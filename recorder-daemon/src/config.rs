//! recorderd's configuration file (TOML, `--config FILE`): the redaction policy
//! (`[redaction]`, docs/REDACTION.md) and, for the service (docs/OPERATIONS.md), its limits,
//! control socket and the targets it may record. Every key is checked: an unknown one is an
//! error naming it, never silently ignored.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use recorder_redact::Policy;
use serde::{Deserialize, Deserializer};
use thiserror::Error;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub redaction: recorder_redact::Config,
    /// `[storage]`: where recordings go and who may read them.
    pub storage: StorageConfig,
    /// `[retention]`: when recordings are swept (docs/OPERATIONS.md, "Retention").
    pub retention: crate::retention::RetentionConfig,
    pub limits: LimitsConfig,
    pub control: ControlConfig,
    /// What the service may record on request; nothing else.
    pub targets: Vec<TargetConfig>,
}

/// `[storage]`: where recordings go and who may read them (defined beside `OutputDir`).
pub use crate::record::StorageConfig;

/// `[limits]`: how long and how many recordings the service runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The longest `recorder start --for` accepted.
    #[serde(deserialize_with = "duration")]
    pub max_duration: Duration,
    /// `recorder start` without `--for` records this long.
    #[serde(deserialize_with = "duration")]
    pub default_duration: Duration,
    /// Recordings running at once; more are refused.
    pub max_concurrent: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_duration: Duration::from_secs(3600),
            default_duration: Duration::from_secs(600),
            max_concurrent: 4,
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
            socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
            group: None,
        }
    }
}

pub const DEFAULT_CONTROL_SOCKET: &str = "/run/recorderd/control.sock";

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

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|error| {
        serde::de::Error::custom(format!("`{text}` is not a duration like 10m ({error})"))
    })
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}, line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("config {path}: {source}")]
    Redaction {
        path: PathBuf,
        source: recorder_redact::ConfigError,
    },
}

/// The configuration in `path`, or the defaults without one.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config: Config = toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_owned(),
        line: error
            .span()
            .map_or(1, |span| 1 + text[..span.start].matches('\n').count()),
        // The message alone: toml's full rendering quotes the offending line, which could
        // hold a value someone meant to keep out of logs.
        message: error.message().trim().to_owned(),
    })?;
    config.check().map_err(|message| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    })?;
    Ok(config)
}

impl Config {
    /// What the types alone cannot say: each target names one kind of process, once.
    fn check(&self) -> Result<(), String> {
        for (i, target) in self.targets.iter().enumerate() {
            let kinds = [
                target.comm.is_some(),
                target.exe.is_some(),
                target.cgroup.is_some(),
            ];
            if kinds.iter().filter(|&&set| set).count() != 1 {
                return Err(format!(
                    "target `{}` needs exactly one of comm, exe or cgroup",
                    target.name
                ));
            }
            if self.targets[..i].iter().any(|t| t.name == target.name) {
                return Err(format!("two targets are named `{}`", target.name));
            }
            if let Some(comm) = &target.comm {
                crate::target::check_comm(comm).map_err(|error| error.to_string())?;
            }
            if target.exe.as_ref().is_some_and(|exe| !exe.is_absolute()) {
                return Err(format!(
                    "target `{}`: exe must be an absolute path",
                    target.name
                ));
            }
        }
        self.retention.policy().map_err(|error| error.to_string())?;
        self.storage.access().map_err(|error| error.to_string())?;
        if self.limits.max_concurrent == 0 {
            return Err("limits.max_concurrent must be at least 1".to_owned());
        }
        if self.limits.default_duration > self.limits.max_duration {
            return Err("limits.default_duration is longer than limits.max_duration".to_owned());
        }
        Ok(())
    }
}

/// The compiled redaction policy of the configuration in `path` (defaults without one).
pub fn redaction_policy(path: Option<&Path>) -> Result<Arc<Policy>, ConfigError> {
    compile_redaction(&load(path)?, path)
}

/// Compiles `config`'s `[redaction]` table; `path` names the file in errors.
pub fn compile_redaction(config: &Config, path: Option<&Path>) -> Result<Arc<Policy>, ConfigError> {
    let policy = Policy::new(&config.redaction).map_err(|source| ConfigError::Redaction {
        path: path.unwrap_or(Path::new("(defaults)")).to_owned(),
        source,
    })?;
    Ok(Arc::new(policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    #[test]
    fn defaults_without_a_file_and_a_redaction_table_with_one() {
        assert!(redaction_policy(None).unwrap().enabled());
        let file = write("[redaction]\nenabled = false\n");
        assert!(!redaction_policy(Some(file.path())).unwrap().enabled());
    }

    #[test]
    fn the_shipped_example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/recorderd.toml");
        let config = load(Some(&path)).unwrap();
        assert_eq!(config.targets.len(), 2);
        assert_eq!(config.control.group.as_deref(), Some("recorder"));
        redaction_policy(Some(&path)).unwrap();
    }

    #[test]
    fn service_tables() {
        let file = write(
            "[limits]\nmax_duration = \"2h\"\nmax_concurrent = 2\n\
             [control]\nsocket = \"/tmp/c.sock\"\ngroup = \"rec\"\n\
             [[targets]]\nname = \"api\"\ncgroup = \"/system.slice/api.service\"\n\
             [[targets]]\nname = \"db\"\ncomm = \"postgres\"\n",
        );
        let config = load(Some(file.path())).unwrap();
        assert_eq!(config.limits.max_duration, Duration::from_secs(7200));
        assert_eq!(config.limits.default_duration, Duration::from_secs(600));
        assert_eq!(config.limits.max_concurrent, 2);
        assert_eq!(config.control.group.as_deref(), Some("rec"));
        assert_eq!(config.targets.len(), 2);
        assert_eq!(config.targets[1].comm.as_deref(), Some("postgres"));
        assert_eq!(
            load(None).unwrap().control.socket,
            PathBuf::from(DEFAULT_CONTROL_SOCKET)
        );
    }

    #[test]
    fn unknown_keys_and_bad_rules_are_one_line_errors() {
        let file = write("[redaction]\npii = true\nsurprise = 1\n");
        let error = load(Some(file.path())).unwrap_err().to_string();
        assert!(
            error.contains("line 3") && error.contains("surprise"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");

        let file = write("[[redaction.rules]]\nname = \"broken\"\npattern = \"(\"\n");
        let error = redaction_policy(Some(file.path())).unwrap_err().to_string();
        assert!(error.contains("broken"), "{error}");

        let file = write("[[targets]]\nname = \"api\"\ncomm = \"api\"\nexe = \"/bin/api\"\n");
        let error = load(Some(file.path())).unwrap_err().to_string();
        assert!(
            error.contains("exactly one of comm, exe or cgroup"),
            "{error}"
        );

        let file = write("[limits]\nmax_duration = \"forever\"\n");
        let error = load(Some(file.path())).unwrap_err().to_string();
        assert!(
            error.contains("line 2") && error.contains("forever"),
            "{error}"
        );

        let error = load(Some(Path::new("/no/such/file.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read config /no/such/file.toml"),
            "{error}"
        );
    }
}
