//! One recording's settings. Both ways to start a recording build them the same way: from
//! the configuration file (or its defaults) with [`Options::from_config`], then with what
//! this recording adds: flags in the foreground ([`Options::foreground`]), or a control
//! request in the service (`service::requests`).

use std::{path::PathBuf, sync::Arc, time::Duration};

use recorder_capture::{Limits, TlsCapture};
use recorder_config::{check_comm, defaults, CommError, Config, ConfigError, Priority, TlsSetting};
use recorder_redact::Policy;
use recorder_store::{
    audit,
    dir::Access,
    seal::{self, KeyError},
    DirError, Seal, SegmentPolicy,
};
use thiserror::Error;

use crate::{flags::RecorderdArgs, session::header};

#[derive(Clone, Debug)]
pub struct Options {
    /// The new recording's id.
    pub recording_id: String,
    /// Who asked for the recording, for the audit log.
    pub requested_by: serde_json::Value,
    pub pids: Vec<u32>,
    /// `recorderd -- CMD ARGS`: spawn and record this command.
    pub command: Vec<String>,
    /// `--cgroup`: record every process in this cgroup v2.
    pub cgroup: Option<String>,
    /// `--comm`: record processes running a program of this name.
    pub comm: Option<String>,
    /// Record the children targeted processes start (`--no-follow` turns it off).
    pub follow: bool,
    /// What is redacted before anything is written.
    pub redaction: Arc<Policy>,
    /// Redaction worker threads (`--threads`; 0: on the pipeline's thread).
    pub threads: usize,
    /// How the pipeline shares the CPU (`--priority`, `[capture] priority`).
    pub priority: Priority,
    pub output: PathBuf,
    /// Who besides the owner may read the recordings (`[storage] reader_group`).
    pub access: Access,
    pub duration: Option<Duration>,
    pub limits: Limits,
    pub segments: SegmentPolicy,
    /// Seal every segment to these recipients (`--seal-to`).
    pub seal: Option<Seal>,
    /// Where separate debug files are looked for when stacks are named (`[capture]
    /// debug_dirs`).
    pub debug_dirs: Vec<PathBuf>,
}

/// What is wrong with what the user asked for, before anything is loaded.
#[derive(Debug, Error)]
pub enum OptionsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] DirError),
    #[error(transparent)]
    Seal(#[from] KeyError),
    #[error(transparent)]
    Comm(#[from] CommError),
}

impl Options {
    /// What `config` says for a recording by `requested_by`, not yet naming what to record.
    pub fn from_config(
        config: &Config,
        redaction: Arc<Policy>,
        requested_by: serde_json::Value,
    ) -> Result<Options, OptionsError> {
        Ok(Options {
            recording_id: header::new_recording_id(),
            requested_by,
            pids: Vec::new(),
            command: Vec::new(),
            cgroup: None,
            comm: None,
            follow: true,
            redaction,
            threads: defaults::redaction_threads(usable_cpus()),
            priority: config.capture.priority,
            output: config
                .storage
                .dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(defaults::OUTPUT_DIR)),
            access: config.storage.access()?,
            duration: None,
            limits: Limits {
                max_payload_bytes: defaults::MAX_PAYLOAD_BYTES,
                ring_bytes: defaults::RING_BYTES,
                tls: tls_capture(config.capture.tls),
                stack_depth: if config.capture.stacks {
                    config.capture.stack_depth
                } else {
                    0
                },
            },
            segments: SegmentPolicy {
                max_bytes: defaults::SEGMENT_BYTES,
                max_age: config.storage.segment_duration,
                fsync_interval: Some(defaults::FSYNC_INTERVAL),
                compression_level: defaults::COMPRESSION_LEVEL,
            },
            seal: config.storage.seal()?,
            debug_dirs: config.capture.debug_dirs.clone(),
        })
    }

    /// `sudo recorderd [FLAGS] --pid N | -- CMD`: the `--config` file (or the defaults),
    /// then the flags, which win.
    pub fn foreground(args: RecorderdArgs) -> Result<Options, OptionsError> {
        let config = recorder_config::load(args.config.as_deref())?;
        let redaction = recorder_config::compile_redaction(&config, args.config.as_deref())?;
        let mut options = Options::from_config(&config, redaction, audit::invoker())?;
        if let Some(comm) = &args.comm {
            check_comm(comm)?;
        }
        // Checked before anything is loaded: a bad key is the user's to fix, on one line.
        // The flags' recipients replace the file's; without flags the file's hold.
        if let Some(seal) = seal::from_args(&args.seal_to, &args.seal_to_file)? {
            options.seal = Some(seal);
        }
        options.pids = args.pids;
        options.command = args.command;
        options.cgroup = args.cgroup;
        options.comm = args.comm;
        options.follow = !args.no_follow;
        options.duration = args.duration;
        options.threads = args.threads.unwrap_or(options.threads);
        options.priority = args.priority.unwrap_or(options.priority);
        if let Some(output) = args.output {
            options.output = output;
        }
        let limits = &mut options.limits;
        limits.max_payload_bytes = args.max_payload.unwrap_or(limits.max_payload_bytes);
        limits.ring_bytes = args.ring_bytes.unwrap_or(limits.ring_bytes);
        limits.tls = args.tls.map_or(limits.tls, tls_capture);
        if args.stacks || args.stack_depth.is_some() {
            limits.stack_depth = args.stack_depth.unwrap_or(config.capture.stack_depth);
        }
        let segments = &mut options.segments;
        segments.max_bytes = args.segment_bytes.unwrap_or(segments.max_bytes);
        segments.max_age = args.segment_duration.unwrap_or(segments.max_age);
        segments.compression_level = args.compression_level.unwrap_or(segments.compression_level);
        if let Some(every) = args.fsync_interval {
            segments.fsync_interval = Some(every).filter(|every| !every.is_zero());
        }
        Ok(options)
    }
}

/// The CPUs this process may run on (its affinity and cgroup quota, as std reads them).
fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--tls` or `[capture] tls`, as the probes take it.
fn tls_capture(setting: TlsSetting) -> TlsCapture {
    match setting {
        TlsSetting::Plaintext => TlsCapture::Plaintext,
        TlsSetting::Both => TlsCapture::PlaintextAndCiphertext,
        TlsSetting::Off => TlsCapture::Off,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn foreground(args: &[&str]) -> Result<Options, OptionsError> {
        Options::foreground(RecorderdArgs::try_parse_from(args).unwrap())
    }

    #[test]
    fn flags_win_over_the_config_and_the_defaults_fill_in() {
        let options = foreground(&["recorderd", "--pid", "1"]).unwrap();
        assert_eq!(options.output, PathBuf::from(defaults::OUTPUT_DIR));
        assert_eq!(
            options.limits.max_payload_bytes,
            defaults::MAX_PAYLOAD_BYTES
        );
        assert_eq!(
            options.segments.fsync_interval,
            Some(defaults::FSYNC_INTERVAL)
        );
        assert!(options.follow && options.seal.is_none());
        assert_eq!(options.threads, defaults::redaction_threads(usable_cpus()));

        let mut config = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut config, b"[storage]\ndir = \"/from/config\"\n").unwrap();
        let path = config.path().to_str().unwrap();
        let options = foreground(&["recorderd", "--config", path, "--pid", "1"]).unwrap();
        assert_eq!(options.output, PathBuf::from("/from/config"));
        let options = foreground(&[
            "recorderd",
            "--config",
            path,
            "--output",
            "/from/flag",
            "--max-payload",
            "1KiB",
            "--fsync-interval",
            "0s",
            "--no-follow",
            "--threads",
            "0",
            "--pid",
            "1",
        ])
        .unwrap();
        assert_eq!(options.output, PathBuf::from("/from/flag"));
        assert_eq!(options.limits.max_payload_bytes, 1024);
        assert_eq!(options.segments.fsync_interval, None);
        assert!(!options.follow);
        assert_eq!(options.threads, 0);
    }

    #[test]
    fn tls_from_the_config_and_the_flag_over_it() {
        let default = foreground(&["recorderd", "--pid", "1"]).unwrap();
        assert_eq!(default.limits.tls, TlsCapture::Plaintext);
        let mut config = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut config, b"[capture]\ntls = \"off\"\n").unwrap();
        let path = config.path().to_str().unwrap();
        let off = foreground(&["recorderd", "--config", path, "--pid", "1"]).unwrap();
        assert_eq!(off.limits.tls, TlsCapture::Off);
        let both = ["recorderd", "--config", path, "--tls", "both", "--pid", "1"];
        assert_eq!(
            foreground(&both).unwrap().limits.tls,
            TlsCapture::PlaintextAndCiphertext
        );
        let error = RecorderdArgs::try_parse_from(["recorderd", "--tls", "maybe", "--pid", "1"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("plaintext, both, off"), "{error}");
    }

    #[test]
    fn priority_from_the_config_and_the_flag_over_it() {
        let default = foreground(&["recorderd", "--pid", "1"]).unwrap();
        assert_eq!(default.priority, Priority::Normal);
        let mut config = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut config, b"[capture]\npriority = \"background\"\n").unwrap();
        let path = config.path().to_str().unwrap();
        let background = foreground(&["recorderd", "--config", path, "--pid", "1"]).unwrap();
        assert_eq!(background.priority, Priority::Background);
        let normal = [
            "recorderd",
            "--config",
            path,
            "--priority",
            "normal",
            "--pid",
            "1",
        ];
        assert_eq!(foreground(&normal).unwrap().priority, Priority::Normal);
        let error =
            RecorderdArgs::try_parse_from(["recorderd", "--priority", "idle", "--pid", "1"])
                .unwrap_err()
                .to_string();
        assert!(error.contains("normal, background"), "{error}");
    }

    #[test]
    fn a_bad_program_name_or_recipient_is_refused_before_anything_loads() {
        let error = foreground(&["recorderd", "--comm", "a-name-longer-than-15"]).unwrap_err();
        assert!(matches!(error, OptionsError::Comm(_)), "{error}");
        let error = foreground(&["recorderd", "--seal-to", "age1nope", "--pid", "1"]).unwrap_err();
        assert!(matches!(error, OptionsError::Seal(_)), "{error}");
    }
}
