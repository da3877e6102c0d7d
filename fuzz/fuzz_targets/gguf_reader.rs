//! Coverage-guided fuzzing of the GGUF header parser
//! (`quantmix::fuzz::gguf_header`, see src/fuzz.rs):
//! `cargo +nightly fuzz run gguf_reader fuzz/corpus/gguf_reader`.
//! Any input must give Ok or a GgufError; what is accepted must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = quantmix::fuzz::gguf_header(data);
});
