//! Coverage-guided fuzzing of `quantmix::fuzz::sensitivity_json` (see src/fuzz.rs):
//! `cargo +nightly fuzz run sensitivity_json`. Any input must give a value or an error,
//! never a panic; what is accepted must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = quantmix::fuzz::sensitivity_json(data);
});
