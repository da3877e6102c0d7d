//! `quantmix quantize MODEL --budget B -o OUT`: imatrix, sensitivity, plan
//! and quantization in one command, the measurement cached under
//! `$QUANTMIX_CACHE` keyed by the model's bytes and the settings — a
//! changed model or setting is never served a stale measurement.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use quantmix::gguf::GgufFile;

/// Small measuring settings (2 sequences of 32 tokens, 3 types, imatrix on 2 chunks).
const FAST: &[&str] = &["--measure-ctx", "32", "--measure-types", "Q2_K,Q4_K,Q8_0", "--imatrix-chunks", "2"];

fn quantize(cache: &Path, model: &Path, out: &Path, extra: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_quantmix"))
        .env("QUANTMIX_CACHE", cache)
        .args(["quantize", model.to_str().unwrap(), "--budget", "4.5bpw", "-o", out.to_str().unwrap()])
        .args(FAST)
        .args(extra)
        .output()
        .expect("run quantmix");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn entries(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("sensitivity")).map(|d| d.count()).unwrap_or(0)
}

fn bpw(file: &Path) -> f64 {
    let g = GgufFile::open(file).unwrap();
    let (bits, n) = g.tensors().iter().fold((0u64, 0u64), |(b, n), t| (b + t.n_bytes() * 8, n + t.n_elements()));
    bits as f64 / n as f64
}

#[test]
fn measures_once_then_reuses_and_never_serves_a_stale_measurement() {
    let dir = common::tempdir();
    let cache = dir.path().join("cache");
    let model = common::fixture("presets/synth12-llama-f16.gguf");

    // First run: measures, fills one cache entry, fits the budget.
    let a = dir.path().join("a.gguf");
    let err = String::from_utf8_lossy(&quantize(&cache, &model, &a, &[]).stderr).into_owned();
    assert!(err.contains("sensitivity: measuring"), "{err}");
    assert!(err.contains("predicted damage"), "{err}");
    assert_eq!(entries(&cache), 1);
    assert!(bpw(&a) <= 4.5, "{}", bpw(&a));

    // Same model, same settings: served from the cache, same file.
    let b = dir.path().join("b.gguf");
    let err = String::from_utf8_lossy(&quantize(&cache, &model, &b, &[]).stderr).into_owned();
    assert!(err.contains("measured before"), "{err}");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(entries(&cache), 1);

    // Another setting: measured again.
    let err = String::from_utf8_lossy(&quantize(&cache, &model, &b, &["--measure-chunks", "1"]).stderr).into_owned();
    assert!(err.contains("sensitivity: measuring"), "{err}");
    assert_eq!(entries(&cache), 2);

    // Another model (one weight's lowest mantissa bit changed): measured again.
    let changed = dir.path().join("changed.gguf");
    let mut bytes = std::fs::read(&model).unwrap();
    let g = GgufFile::open(&model).unwrap();
    let t = g.tensors().iter().find(|t| t.name == "blk.0.ffn_down.weight").unwrap();
    let at = g.tensor_data(t).as_ptr() as usize - g.bytes().as_ptr() as usize + 2 * 1000;
    bytes[at] ^= 1;
    std::fs::write(&changed, &bytes).unwrap();
    let err = String::from_utf8_lossy(&quantize(&cache, &changed, &b, &[]).stderr).into_owned();
    assert!(err.contains("sensitivity: measuring"), "{err}");
    assert_eq!(entries(&cache), 3);

    // A given sensitivity file: nothing measured.
    let sens = std::fs::read_dir(cache.join("sensitivity")).unwrap().next().unwrap().unwrap().path();
    let sens = sens.join("sensitivity.json");
    let err = String::from_utf8_lossy(&quantize(&cache, &model, &b, &["--sensitivity", sens.to_str().unwrap()]).stderr)
        .into_owned();
    assert!(!err.contains("sensitivity: measuring") && !err.contains("measured before"), "{err}");
    assert_eq!(entries(&cache), 3);
}
