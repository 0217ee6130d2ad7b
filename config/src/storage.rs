//! `[storage]`: where recordings go and who may read them.

use std::{path::PathBuf, time::Duration};

use recorder_store::{
    dir::group_id,
    seal::{self, KeyError},
    Access, DirError, Seal,
};
use serde::Deserialize;

/// The `[storage]` table of the configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for recordings (default [`crate::defaults::OUTPUT_DIR`]).
    pub dir: Option<PathBuf>,
    /// Group whose members may read recordings.
    pub reader_group: Option<String>,
    /// A recording starts a new segment when the current one is this old (as
    /// `--segment-duration`).
    #[serde(deserialize_with = "crate::units::deserialize_duration")]
    pub segment_duration: Duration,
    /// Seal every segment the service writes to these age recipients (as `--seal-to`).
    pub seal_to: Vec<String>,
    /// ...and to the recipients in these files (as `--seal-to-file`).
    pub seal_to_file: Vec<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: None,
            reader_group: None,
            segment_duration: crate::defaults::SEGMENT_DURATION,
            seal_to: Vec::new(),
            seal_to_file: Vec::new(),
        }
    }
}

impl StorageConfig {
    /// The access this table asks for, with the reader group resolved to its gid.
    pub fn access(&self) -> Result<Access, DirError> {
        let group = self.reader_group.as_deref().map(group_id).transpose()?;
        Ok(Access { group })
    }

    /// The seal this table asks for; `None` without recipients.
    pub fn seal(&self) -> Result<Option<Seal>, KeyError> {
        seal::from_args(&self.seal_to, &self.seal_to_file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_group_resolves_to_its_gid_and_none_means_owner_only() {
        let config = StorageConfig {
            dir: None,
            reader_group: Some("root".to_owned()),
            ..StorageConfig::default()
        };
        assert_eq!(config.access().unwrap(), Access { group: Some(0) });
        let config = StorageConfig {
            dir: None,
            reader_group: Some("no-such-group-here".to_owned()),
            ..StorageConfig::default()
        };
        assert!(config.access().is_err());
        assert_eq!(
            StorageConfig::default().access().unwrap(),
            Access::default()
        );
    }
}
