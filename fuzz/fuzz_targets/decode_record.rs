//! Feeds arbitrary bytes to `event::decode`, the parser of kernel ring-buffer records. It must
//! never panic or read past the slice, whatever lengths the record claims.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = std::hint::black_box(recorder_daemon::pipeline::decode::decode(data));
});
