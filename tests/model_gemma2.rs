//! The gemma2 forward pass (gemma3's layout without Q/K norms: every other
//! layer sliding-window with the global RoPE base, attention scores and
//! logits soft-capped, the output always the token embeddings) against
//! llama.cpp on synthetic models from `tests/tools/make_synth_model.py`:
//! requantized to Q8_0 the perplexity equals llama.cpp's to rounding and
//! the top token agrees everywhere; F16 within 0.5% and ≥ 99%.

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::path::{Path, PathBuf};
use std::process::Command;

use quantmix::model::LlamaModel;

fn make(py: &Path, out: &Path, args: &[&str]) -> PathBuf {
    forward::make_synth(py, "gemma2", out, args)
}

#[test]
fn gemma2_synthetic_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    // A tight attention cap (2) so that it matters, a 40-token window.
    let f16 = make(
        &py,
        &dir.path().join("gemma2.gguf"),
        &[
            "--seed",
            "4",
            "--n-layer",
            "4",
            "--sliding-window",
            "40",
            "--attn-softcap",
            "2",
            "--final-softcap",
            "6",
            "--tied",
            "--bos",
            "--rope-base",
            "10000",
        ],
    );
    let m = LlamaModel::open(&f16).unwrap();
    let hp = &m.hp;
    assert_eq!((hp.n_swa, hp.attn_softcap, hp.final_softcap), (40, Some(2.0), Some(6.0)));
    assert_eq!((hp.freq_base_swa, hp.freq_scale_swa), (hp.freq_base, hp.freq_scale));
    forward::compare(&py, &f16, &forward::data("eval.txt"), 512, 2, dir.path());
    let q8 = dir.path().join("gemma2-q8_0.gguf");
    let o = Command::new(&py)
        .arg(forward::tool("llama_perplexity.py"))
        .args(["quantize".as_ref(), f16.as_os_str(), q8.as_os_str(), "q8_0".as_ref()])
        .output()
        .expect("run llama_perplexity.py quantize");
    assert!(o.status.success(), "quantize: {}", String::from_utf8_lossy(&o.stderr));
    let (ours, theirs, same) = forward::compare(&py, &q8, &forward::data("eval.txt"), 512, 2, dir.path());
    assert!((ours / theirs - 1.0).abs() < 1e-6 && same == 1.0, "Q8_0 should agree to rounding: {ours} vs {theirs}");
}

/// Without the keys, llama.cpp's gemma2 defaults: a 4096-token window, the
/// attention capped at 50 and the logits at 30.
#[test]
fn gemma2_defaults() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let f = make(&py, &dir.path().join("gemma2.gguf"), &["--n-layer", "2"]);
    let m = LlamaModel::open(&f).unwrap();
    assert_eq!((m.hp.n_swa, m.hp.attn_softcap, m.hp.final_softcap), (4096, Some(50.0), Some(30.0)));
    // The file has output.weight, but gemma2's output is the embeddings.
    assert!(m.file().tensor("output.weight").is_some());
    assert!(m.matrices().iter().all(|(n, _)| *n != "output.weight"));
}
