//! Coverage-guided fuzzing of the GGUF header parser:
//! `cargo +nightly fuzz run gguf_reader fuzz/corpus/gguf_reader`.
//! Any input must give Ok or a GgufError; what is accepted must be consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = quantmix::gguf::parse_header(Path::new("fuzz.gguf"), data) {
        assert_eq!(h.data_offset % h.alignment, 0);
        let mut ranges = Vec::with_capacity(h.tensors.len());
        for t in &h.tensors {
            let start = h.data_offset + t.offset;
            let end = start + t.n_bytes();
            assert!(end <= data.len() as u64, "tensor {} outside the input", t.name);
            ranges.push((start, end));
        }
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlapping tensors accepted");
        }
    }
});
