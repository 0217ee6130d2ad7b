//! Feeds arbitrary bytes to `SegmentReader` as if they were a segment file on disk, and reads
//! every frame until a clean end or an error. Any panic, abort, OOM or hang is a finding: the
//! reader must turn every damaged file into a `ReadError`.
#![no_main]

use std::{path::PathBuf, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use recorder_store::SegmentReader;

/// One file per fuzzing process (libFuzzer's -jobs/-workers run several), rewritten for every
/// input: cheaper than a fresh temporary file each time.
fn input_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("recorder-fuzz-{}.rcd", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = input_path();
    std::fs::write(path, data).expect("writing the fuzz input to a temporary file");
    let Ok(mut reader) = SegmentReader::open(path) else {
        return;
    };
    // Every successful call consumes input, so this ends; a hang here is a finding.
    while let Ok(Some(body)) = reader.next_body() {
        std::hint::black_box(body);
    }
});
