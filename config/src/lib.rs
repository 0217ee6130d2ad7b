//! recorderd's configuration: the file (TOML, `--config FILE`) with the redaction policy
//! (`[redaction]`, docs/REDACTION.md), storage and retention and, for the service
//! (docs/OPERATIONS.md), its limits, control socket and the targets it may record; and the
//! defaults and units that flags and file share. Every key is checked: an unknown one is an
//! error naming it, never silently ignored. Nothing here touches the probes.

/// Sizes and durations as people write them.
pub mod units;
/// The defaults flags, file and service share.
pub mod defaults;
/// `[storage]`: where recordings go and who may read them.
pub mod storage;
/// `[retention]`: when sweeps delete recordings.
pub mod retention;
/// `[limits]`, `[control]`, `[[targets]]`: the service's tables.
pub mod service;
/// The binaries' logging (`RUST_LOG`).
pub mod telemetry;
/// `[capture]`: TLS plaintext, stacks, the pipeline's priority.
pub mod capture;
/// `[upload]`: segments and the audit log to object storage.
pub mod upload;

pub use capture::{CaptureConfig, Priority, TlsSetting};
pub use retention::{RetentionConfig, RetentionError};
pub use service::{check_comm, CommError, ControlConfig, LimitsConfig, TargetConfig};
pub use storage::StorageConfig;
pub use upload::UploadConfig;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use recorder_redact::Policy;
use serde::Deserialize;
use thiserror::Error;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub redaction: recorder_redact::Config,
    /// `[capture]`: TLS plaintext (docs/CAPTURE.md, "TLS").
    pub capture: CaptureConfig,
    /// `[storage]`: where recordings go and who may read them.
    pub storage: StorageConfig,
    /// `[retention]`: when recordings are swept (docs/OPERATIONS.md, "Retention").
    pub retention: RetentionConfig,
    pub limits: LimitsConfig,
    pub control: ControlConfig,
    /// What the service may record on request; nothing else.
    pub targets: Vec<TargetConfig>,
    /// `[upload]`: finished segments and the audit log to a bucket (docs/OPERATIONS.md, "Fleet").
    pub upload: UploadConfig,
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
        capture::check_stack_depth(self.capture.stack_depth)
            .map_err(|error| format!("[capture] stack_depth: {error}"))?;
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
                check_comm(comm).map_err(|error| error.to_string())?;
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
        self.storage
            .seal()
            .map_err(|error| format!("[storage] seal_to: {error}"))?;
        if self.storage.segment_duration.is_zero() {
            return Err("storage.segment_duration must be longer than zero".to_owned());
        }
        self.upload.check()?;
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
    use std::time::Duration;

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
    fn segments_rotate_at_the_configured_age() {
        assert_eq!(
            Config::default().storage.segment_duration,
            defaults::SEGMENT_DURATION
        );
        let file = write("[storage]\nsegment_duration = \"1m\"\n");
        let storage = load(Some(file.path())).unwrap().storage;
        assert_eq!(storage.segment_duration, Duration::from_secs(60));
        let zero = write("[storage]\nsegment_duration = \"0s\"\n");
        let error = load(Some(zero.path())).unwrap_err().to_string();
        assert!(error.contains("segment_duration"), "{error}");
    }

    #[test]
    fn capture_table_and_its_one_key() {
        assert_eq!(Config::default().capture.tls, TlsSetting::Plaintext);
        let file = write("[capture]\ntls = \"off\"\n");
        assert_eq!(
            load(Some(file.path())).unwrap().capture.tls,
            TlsSetting::Off
        );
        let bad = write("[capture]\ntls = \"sometimes\"\n");
        let error = load(Some(bad.path())).unwrap_err().to_string();
        assert!(
            error.contains("line 2") && error.contains("sometimes"),
            "{error}"
        );
        let unknown = write("[capture]\nstack = true\n");
        assert!(load(Some(unknown.path())).is_err());
        let stacks = write("[capture]\nstacks = true\nstack_depth = 8\n");
        let capture = load(Some(stacks.path())).unwrap().capture;
        assert_eq!((capture.stacks, capture.stack_depth), (true, 8));
        let deep = write("[capture]\nstacks = true\nstack_depth = 65\n");
        let error = load(Some(deep.path())).unwrap_err().to_string();
        assert!(
            error.contains("stack_depth") && error.contains("65"),
            "{error}"
        );
        assert_eq!("both".parse(), Ok(TlsSetting::Both));
        assert!("Both".parse::<TlsSetting>().is_err());
    }

    #[test]
    fn the_pipelines_priority() {
        assert_eq!(Config::default().capture.priority, Priority::Normal);
        let file = write("[capture]\npriority = \"background\"\n");
        let capture = load(Some(file.path())).unwrap().capture;
        assert_eq!(capture.priority, Priority::Background);
        let bad = write("[capture]\npriority = \"idle\"\n");
        let error = load(Some(bad.path())).unwrap_err().to_string();
        assert!(
            error.contains("line 2") && error.contains("idle"),
            "{error}"
        );
        assert_eq!("normal".parse(), Ok(Priority::Normal));
        let error = "low".parse::<Priority>().unwrap_err();
        assert_eq!(error, "`low` is not one of normal, background");
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
            PathBuf::from(defaults::CONTROL_SOCKET)
        );
    }

    #[test]
    fn upload_and_seal_tables() {
        let file = write("[storage]\nseal_to = [\"age1nope\"]\n");
        let error = load(Some(file.path())).unwrap_err().to_string();
        assert!(error.contains("[storage] seal_to"), "{error}");
        let file = write(
            "[upload]\nbucket = \"fleet\"\nqueue_limit = \"1GiB\"\npart_size = \"8MiB\"\naudit_interval = \"30s\"\n",
        );
        let upload = load(Some(file.path())).unwrap().upload;
        assert_eq!(upload.bucket.as_deref(), Some("fleet"));
        assert_eq!((upload.queue_limit, upload.part_size), (1 << 30, 8 << 20));
        assert_eq!(upload.audit_interval, Duration::from_secs(30));
        let file = write("[upload]\nbucket = \"fleet\"\npart_size = \"1MiB\"\n");
        let error = load(Some(file.path())).unwrap_err().to_string();
        assert!(error.contains("part_size"), "{error}");
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
