//! Connecting to a bucket: the service from `[upload]`, `recorder` the way the AWS CLI does
//! (flags, then `AWS_*` variables, then the profile in the shared files, then the
//! container or instance role). SigV4 signing is object_store's, never ours.

use std::{path::PathBuf, sync::Arc, time::Duration};

use object_store::{
    aws::{AmazonS3, AmazonS3Builder, Checksum},
    BackoffConfig, ClientOptions, RetryConfig,
};
use recorder_config::UploadConfig;
use thiserror::Error;

use crate::profile::{self, Section};

/// The region when nothing names one (as the AWS CLI's S3 commands assume).
const DEFAULT_REGION: &str = "us-east-1";

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("credentials file {path} has no [{profile}] section with aws_access_key_id and aws_secret_access_key")]
    NoProfile { path: PathBuf, profile: String },
    #[error("cannot use bucket `{bucket}`: {reason}")]
    Bucket { bucket: String, reason: String },
}

/// Where to connect and as whom, before the bucket is named.
#[derive(Clone, Default)]
pub struct Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Key id, secret and session token; without them the AWS chain's other sources.
    pub keys: Option<(String, String, Option<String>)>,
    /// How long one request may take before it is abandoned (and retried).
    pub request_timeout: Option<Duration>,
    /// Retries of one request inside the client.
    pub retries: usize,
}

impl std::fmt::Debug for Settings {
    // The secret never reaches a log, even a debug one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("keys", &self.keys.as_ref().map(|(id, _, _)| id))
            .finish()
    }
}

impl Settings {
    /// The service's settings from `[upload]`. Keys come from `credentials_file` when it is
    /// set; otherwise from the environment's AWS chain, as for the reader.
    pub fn for_service(config: &UploadConfig) -> Result<Settings, ConnectError> {
        let mut settings = match &config.credentials_file {
            Some(path) => {
                let name = config.profile.as_deref().unwrap_or("default");
                let section = profile::read_section(path, name).unwrap_or_default();
                let keys = keys_in(&section).ok_or_else(|| ConnectError::NoProfile {
                    path: path.clone(),
                    profile: name.to_owned(),
                })?;
                Settings {
                    keys: Some(keys),
                    region: section.get("region").cloned(),
                    ..Settings::default()
                }
            }
            None => Settings::from_environment(config.profile.as_deref()),
        };
        if config.endpoint.is_some() {
            settings.endpoint = config.endpoint.clone();
        }
        if config.region.is_some() {
            settings.region = config.region.clone();
        }
        // The upload queue retries with its own backoff, and says when the bucket fails: a
        // request is not retried inside the client, and one that hangs fails in 20 s.
        settings.request_timeout = Some(Duration::from_secs(20));
        settings.retries = 0;
        Ok(settings)
    }

    /// What the AWS CLI would use: `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, `AWS_REGION`
    /// / `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
    /// `AWS_SESSION_TOKEN`, then `AWS_PROFILE`'s (or `profile`'s, or `default`'s) entries in
    /// `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` (`~/.aws/…`). Without keys, the
    /// client tries the container and instance roles itself.
    pub fn from_environment(profile: Option<&str>) -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let name = profile
            .map(str::to_owned)
            .or_else(|| var("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_owned());
        let home = var("HOME").map(PathBuf::from);
        let shared = |variable: &str, file: &str| {
            var(variable)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(file)))
                .and_then(|path| profile::read_section(&path, &name))
                .unwrap_or_default()
        };
        let credentials = shared("AWS_SHARED_CREDENTIALS_FILE", "credentials");
        let config = shared("AWS_CONFIG_FILE", "config");
        let keys = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some((id, secret, var("AWS_SESSION_TOKEN"))),
            _ => keys_in(&credentials).or_else(|| keys_in(&config)),
        };
        Settings {
            endpoint: var("AWS_ENDPOINT_URL_S3")
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .or_else(|| config.get("endpoint_url").cloned()),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .or_else(|| config.get("region").cloned()),
            keys,
            request_timeout: None,
            retries: 3,
        }
    }

    /// A client of `bucket`.
    pub fn connect(&self, bucket: &str) -> Result<Arc<AmazonS3>, ConnectError> {
        // from_env brings the container and instance-role settings (AWS_CONTAINER_…,
        // AWS_WEB_IDENTITY_…); what we resolved above overrides the rest.
        // Client options first: with_client_options replaces them whole, allow_http included.
        let mut options = ClientOptions::new().with_connect_timeout(Duration::from_secs(5));
        if let Some(timeout) = self.request_timeout {
            options = options.with_timeout(timeout);
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_client_options(options)
            .with_bucket_name(bucket)
            .with_region(self.region.as_deref().unwrap_or(DEFAULT_REGION))
            .with_checksum_algorithm(Checksum::SHA256)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: self.retries,
                retry_timeout: Duration::from_secs(60),
            });
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                // Path-style requests: S3-compatible servers on an address have no
                // per-bucket host names.
                .with_virtual_hosted_style_request(false);
        }
        if let Some((id, secret, token)) = &self.keys {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            if let Some(token) = token {
                builder = builder.with_token(token);
            }
        }
        let store = builder.build().map_err(|error| ConnectError::Bucket {
            bucket: bucket.to_owned(),
            reason: crate::describe(&error),
        })?;
        Ok(Arc::new(store))
    }
}

fn keys_in(section: &Section) -> Option<(String, String, Option<String>)> {
    Some((
        section.get("aws_access_key_id")?.clone(),
        section.get("aws_secret_access_key")?.clone(),
        section.get("aws_session_token").cloned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(credentials: &std::path::Path, profile: Option<&str>) -> UploadConfig {
        UploadConfig {
            bucket: Some("fleet".to_owned()),
            endpoint: Some("http://127.0.0.1:9".to_owned()),
            credentials_file: Some(credentials.to_owned()),
            profile: profile.map(str::to_owned),
            ..UploadConfig::default()
        }
    }

    #[test]
    fn the_service_takes_its_keys_from_the_named_profile_and_never_shows_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("credentials");
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key = hidden-one\n\
             [fleet]\naws_access_key_id = AKIFLEET\naws_secret_access_key = hidden-two\nregion = eu-west-1\n",
        )
        .unwrap();
        let settings = Settings::for_service(&config(&file, Some("fleet"))).unwrap();
        let (id, secret, token) = settings.keys.clone().unwrap();
        assert_eq!(
            (id.as_str(), secret.as_str(), token),
            ("AKIFLEET", "hidden-two", None)
        );
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        assert_eq!(settings.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("AKIFLEET") && !shown.contains("hidden"),
            "{shown}"
        );
        assert!(settings.connect("fleet").is_ok());

        let error = Settings::for_service(&config(&file, Some("other"))).unwrap_err();
        assert!(error.to_string().contains("no [other] section"), "{error}");
    }
}
