//! `[upload]`: shipping finished segments and the audit log to S3-compatible object storage
//! (docs/OPERATIONS.md, "Fleet"). Without a `bucket` nothing is uploaded.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Deserializer};

use crate::units;

/// The smallest part S3 accepts in a multipart upload (all but the last).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// The `[upload]` table of the configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// The bucket; without it nothing is uploaded.
    pub bucket: Option<String>,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); AWS's own without it.
    pub endpoint: Option<String>,
    /// The bucket's region; without it AWS_REGION, else us-east-1.
    pub region: Option<String>,
    /// Where a recording's segments go: `{host}`, `{date}` (the recording's start, UTC,
    /// YYYY-MM-DD) and `{recording_id}` are filled in; the segment's file name follows.
    pub prefix: String,
    /// Where the audit log's pieces go (`{host}` filled in).
    pub audit_prefix: String,
    /// Credentials in the AWS shared-credentials format (0600, the service's own); without it
    /// the standard AWS chain: environment, profile, container or instance role.
    pub credentials_file: Option<PathBuf>,
    /// The profile to take from `credentials_file` (or the shared files of the AWS chain).
    pub profile: Option<String>,
    /// Upload only sealed segments: an unsealed one is refused, said once and audited.
    pub require_sealed: bool,
    /// Delete the local copy once the object's checksum is confirmed.
    pub delete_after_upload: bool,
    /// Segment bytes waiting to be uploaded at most; past it the oldest waiting segment is
    /// dropped from the queue (not deleted), audited and shown by `recorder status`.
    #[serde(deserialize_with = "deserialize_size")]
    pub queue_limit: u64,
    /// Segments larger than this go up in parts of this size (at least 5 MiB, S3's floor).
    #[serde(deserialize_with = "deserialize_size")]
    pub part_size: u64,
    /// How often the audit log's new lines are shipped (and at stop).
    #[serde(deserialize_with = "units::deserialize_duration")]
    pub audit_interval: Duration,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            bucket: None,
            endpoint: None,
            region: None,
            prefix: "{host}/{date}/{recording_id}/".to_owned(),
            audit_prefix: "{host}/audit/".to_owned(),
            credentials_file: None,
            profile: None,
            require_sealed: true,
            delete_after_upload: false,
            queue_limit: 10 * 1024 * 1024 * 1024,
            part_size: 16 * 1024 * 1024,
            audit_interval: Duration::from_secs(60),
        }
    }
}

fn deserialize_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = String::deserialize(deserializer)?;
    units::parse_size(&text).map_err(serde::de::Error::custom)
}

impl UploadConfig {
    /// Whether the service uploads at all.
    pub fn enabled(&self) -> bool {
        self.bucket.is_some()
    }

    /// What the types alone cannot say.
    pub(crate) fn check(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        if self.bucket.as_deref().is_some_and(str::is_empty) {
            return Err("upload.bucket is empty".to_owned());
        }
        if self.part_size < MIN_PART_BYTES {
            return Err("upload.part_size is below 5MiB, the smallest part S3 accepts".to_owned());
        }
        if self.audit_interval.is_zero() {
            return Err("upload.audit_interval must be longer than zero".to_owned());
        }
        if !self.prefix.contains("{recording_id}") {
            return Err(
                "upload.prefix must contain {recording_id}, so each recording has keys of its own"
                    .to_owned(),
            );
        }
        for (key, template, allowed) in [
            (
                "prefix",
                &self.prefix,
                &["host", "date", "recording_id"][..],
            ),
            ("audit_prefix", &self.audit_prefix, &["host"][..]),
        ] {
            check_template(template, allowed).map_err(|error| format!("upload.{key}: {error}"))?;
        }
        if let Some(file) = &self.credentials_file {
            check_credentials_file(file)?;
        }
        Ok(())
    }
}

/// A template's `{name}`s are among `allowed`.
fn check_template(template: &str, allowed: &[&str]) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("`{template}` has a `{{` without its `}}`"));
        };
        let name = &rest[open + 1..open + close];
        if !allowed.contains(&name) {
            return Err(format!(
                "`{{{name}}}` is not one of {}",
                allowed
                    .iter()
                    .map(|a| format!("{{{a}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// A credentials file holds a secret: only its owner may read it, and the owner is us.
pub fn check_credentials_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|error| {
        format!(
            "upload.credentials_file {}: {error}",
            path.to_string_lossy()
        )
    })?;
    if !meta.is_file() {
        return Err(format!(
            "upload.credentials_file {} is not a file",
            path.display()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "upload.credentials_file {} is mode {mode:04o}, readable by others: `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(format!(
            "upload.credentials_file {} belongs to uid {}, not to recorderd's uid {uid}: `chown {uid} {}`",
            path.display(),
            meta.uid(),
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn enabled() -> UploadConfig {
        UploadConfig {
            bucket: Some("fleet".to_owned()),
            ..UploadConfig::default()
        }
    }

    #[test]
    fn off_without_a_bucket_and_the_defaults_check() {
        assert!(!UploadConfig::default().enabled());
        assert_eq!(UploadConfig::default().check(), Ok(()));
        assert_eq!(enabled().check(), Ok(()));
        assert!(enabled().require_sealed);
    }

    #[test]
    fn templates_name_only_what_is_filled_in() {
        let bad = UploadConfig {
            prefix: "{host}/{user}/{recording_id}/".to_owned(),
            ..enabled()
        };
        let error = bad.check().unwrap_err();
        assert!(error.contains("`{user}` is not one of"), "{error}");
        let shared = UploadConfig {
            prefix: "{host}/".to_owned(),
            ..enabled()
        };
        assert!(shared.check().unwrap_err().contains("{recording_id}"));
        let torn = UploadConfig {
            audit_prefix: "{host/audit".to_owned(),
            ..enabled()
        };
        assert!(torn.check().unwrap_err().contains("without its"));
    }

    #[test]
    fn parts_below_what_s3_accepts_are_refused() {
        let small = UploadConfig {
            part_size: 1024 * 1024,
            ..enabled()
        };
        assert!(small.check().unwrap_err().contains("5MiB"));
    }

    #[test]
    fn a_credentials_file_others_can_read_is_refused() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let config = UploadConfig {
            credentials_file: Some(file.path().to_owned()),
            ..enabled()
        };
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = config.check().unwrap_err();
        assert!(
            error.contains("mode 0644") && error.contains("chmod 600"),
            "{error}"
        );
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(config.check(), Ok(()));
        let missing = UploadConfig {
            credentials_file: Some(PathBuf::from("/nonexistent/credentials")),
            ..enabled()
        };
        assert!(missing
            .check()
            .unwrap_err()
            .contains("/nonexistent/credentials"));
    }
}
