//! A config file as recorderd loads it: TOML, the checks the types cannot make, then the
//! redaction policy compiled from it (user rules are regular expressions). Bad input must be
//! a `ConfigError`, never a panic, and compiling must stay within its size limits.
#![no_main]

use std::{path::PathBuf, sync::OnceLock};

use libfuzzer_sys::fuzz_target;

fn input_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("recorder-fuzz-config-{}.toml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = input_path();
    std::fs::write(path, data).expect("writing the fuzz input to a temporary file");
    if let Ok(config) = recorder_config::load(Some(path)) {
        let _ = std::hint::black_box(recorder_config::compile_redaction(&config, Some(path)));
    }
});
