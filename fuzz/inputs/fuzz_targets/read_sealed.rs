//! Feeds arbitrary bytes to `SegmentReader` as a sealed segment that the reader holds the
//! identity for, and reads every frame until a clean end or an error. Seeded with a real
//! sealed segment (`seeds/read_sealed`, made by `make_seed`), so the mutations reach the
//! seal header, the block lengths, age's stream decryption and the frames inside. Any panic,
//! abort, OOM or hang is a finding.
#![no_main]

use std::{path::PathBuf, str::FromStr, sync::OnceLock};

use libfuzzer_sys::fuzz_target;
use recorder_store::{Keyring, SegmentReader};

#[path = "key.rs"]
mod key;

fn input_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("recorder-fuzz-sealed-{}.rcd", std::process::id()))
    })
}

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        let mut keyring = Keyring::default();
        keyring.add(age::x25519::Identity::from_str(key::IDENTITY).expect("the fuzz identity"));
        keyring
    })
}

fuzz_target!(|data: &[u8]| {
    let path = input_path();
    std::fs::write(path, data).expect("writing the fuzz input to a temporary file");
    let Ok(mut reader) = SegmentReader::open_with(path, keyring()) else {
        return;
    };
    while let Ok(Some(body)) = reader.next_body() {
        std::hint::black_box(body);
    }
});
