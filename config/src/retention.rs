//! `[retention]`: when sweeps delete recordings, as written in the file, and the
//! [`Policy`] it becomes.

use std::time::Duration;

use recorder_store::retention::Policy;
use serde::Deserialize;
use thiserror::Error;

use crate::units::parse_size;

/// The `[retention]` table of the configuration file, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Delete recordings last written longer ago than this ("7d"; "off" keeps them).
    pub max_age: Option<String>,
    /// Delete the oldest recordings while all of them take more than this ("10GiB").
    pub max_total_size: Option<String>,
    /// Delete the oldest recordings while the filesystem has less free space than this.
    pub min_free: Option<String>,
    /// How often the daemon sweeps ("10m").
    pub sweep_interval: Option<String>,
}

#[derive(Debug, Error)]
pub enum RetentionError {
    #[error("[retention] {key} = \"{value}\": {reason}")]
    BadValue {
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl RetentionConfig {
    /// The policy this table describes; defaults for what it leaves out.
    pub fn policy(&self) -> Result<Policy, RetentionError> {
        let defaults = Policy::default();
        let max_age = match self.max_age.as_deref() {
            None => defaults.max_age,
            Some("off") => None,
            Some(text) => Some(duration("max_age", text)?),
        };
        let interval = match self.sweep_interval.as_deref() {
            None => defaults.interval,
            Some(text) => duration("sweep_interval", text)?,
        };
        Ok(Policy {
            max_age,
            max_total_bytes: self
                .max_total_size
                .as_deref()
                .map(|t| size("max_total_size", t))
                .transpose()?,
            min_free_bytes: self
                .min_free
                .as_deref()
                .map(|t| size("min_free", t))
                .transpose()?,
            interval,
        })
    }
}

fn duration(key: &'static str, text: &str) -> Result<Duration, RetentionError> {
    let bad = |reason: String| RetentionError::BadValue {
        key,
        value: text.to_owned(),
        reason,
    };
    let value = humantime::parse_duration(text)
        .map_err(|e| bad(format!("{e}; write a duration like \"7d\" or \"10m\"")))?;
    if value.is_zero() {
        return Err(bad("must be longer than zero".to_owned()));
    }
    Ok(value)
}

fn size(key: &'static str, text: &str) -> Result<u64, RetentionError> {
    parse_size(text).map_err(|reason| RetentionError::BadValue {
        key,
        value: text.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_become_a_policy_or_a_one_line_error() {
        assert_eq!(
            RetentionConfig::default().policy().unwrap(),
            Policy::default()
        );
        let config = RetentionConfig {
            max_age: Some("30d".into()),
            max_total_size: Some("10GiB".into()),
            min_free: Some("1GiB".into()),
            sweep_interval: Some("1m".into()),
        };
        let policy = config.policy().unwrap();
        assert_eq!(policy.max_age, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(policy.max_total_bytes, Some(10 << 30));
        assert_eq!(policy.min_free_bytes, Some(1 << 30));
        assert_eq!(policy.interval, Duration::from_secs(60));
        let off = RetentionConfig {
            max_age: Some("off".into()),
            ..RetentionConfig::default()
        };
        assert_eq!(off.policy().unwrap().max_age, None);
        let bad = RetentionConfig {
            max_total_size: Some("ten gigs".into()),
            ..RetentionConfig::default()
        };
        let error = bad.policy().unwrap_err().to_string();
        assert!(
            error.starts_with("[retention] max_total_size = \"ten gigs\": "),
            "{error}"
        );
        let bad = RetentionConfig {
            sweep_interval: Some("0s".into()),
            ..RetentionConfig::default()
        };
        assert!(bad
            .policy()
            .unwrap_err()
            .to_string()
            .contains("sweep_interval"));
    }
}
