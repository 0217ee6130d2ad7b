//! recorderd's configuration file (TOML, `--config FILE`). Today it holds the redaction
//! policy, as a `[redaction]` table (docs/REDACTION.md). Every key is checked: an unknown
//! one is an error naming it, never silently ignored.

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
    /// `[storage]`: where recordings go and who may read them.
    pub storage: crate::record::StorageConfig,
    /// `[retention]`: when recordings are swept (docs/OPERATIONS.md, "Retention").
    pub retention: crate::retention::RetentionConfig,
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
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_owned(),
        line: error
            .span()
            .map_or(1, |span| 1 + text[..span.start].matches('\n').count()),
        // The message alone: toml's full rendering quotes the offending line, which could
        // hold a value someone meant to keep out of logs.
        message: error.message().trim().to_owned(),
    })
}

/// The compiled redaction policy of the configuration in `path` (defaults without one).
pub fn redaction_policy(path: Option<&Path>) -> Result<Arc<Policy>, ConfigError> {
    let config = load(path)?;
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

        let error = load(Some(Path::new("/no/such/file.toml")))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read config /no/such/file.toml"),
            "{error}"
        );
    }
}
