//! The qwen3 forward pass (per-head Q/K RMS norms before NeoX RoPE, a head
//! size independent of n_embd/n_head) against llama.cpp on synthetic
//! models written by `tests/tools/make_synth_model.py` (random weights,
//! peaked logits, a byte-level BPE vocabulary): perplexity of the library
//! and of `quantmix eval` within 0.5% of llama.cpp's on the same text and
//! chunks, the same top token on ≥ 99% of the scored positions. Two shapes,
//! F16 and a Q8_0 requant made by llama.cpp.
//!
//! Q8_0 is the comparison that must agree to the last bit: for F16 weights
//! llama.cpp's prompt GEMM (llamafile's tinyBLAS) keeps the activations in
//! f32 where quantmix's matmul rounds them to F16, which moves these
//! random models' logits by ~1e-3.

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::path::{Path, PathBuf};
use std::process::Command;

use quantmix::model::LlamaModel;

fn make(py: &Path, out: &Path, args: &[&str]) -> PathBuf {
    forward::make_synth(py, "qwen3", out, args)
}

#[test]
fn qwen3_f16_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    // head size 128 with n_embd 256 and 4 heads: Q is 512 wide.
    let model = make(&py, &dir.path().join("qwen3.gguf"), &["--seed", "3"]);
    let m = LlamaModel::open(&model).unwrap();
    assert_eq!((m.hp.n_embd, m.hp.n_head, m.hp.head_dim, m.hp.n_rot), (256, 4, 128, 128));
    let names: Vec<&str> = m.matrices().iter().map(|(n, _)| *n).collect();
    assert!(names.contains(&"blk.0.attn_q.weight") && !names.iter().any(|n| n.contains("norm")), "{names:?}");
    forward::compare(&py, &model, &forward::data("eval.txt"), 512, 2, dir.path());
}

#[test]
fn qwen3_other_shape_tied_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let model = make(
        &py,
        &dir.path().join("qwen3b.gguf"),
        &[
            "--seed",
            "11",
            "--n-embd",
            "192",
            "--n-head",
            "6",
            "--n-head-kv",
            "1",
            "--head-dim",
            "48",
            "--n-ff",
            "320",
            "--n-layer",
            "3",
            "--n-vocab",
            "700",
            "--tied",
            "--bos",
            "--rope-base",
            "10000",
        ],
    );
    let m = LlamaModel::open(&model).unwrap();
    assert!(m.matrices().iter().all(|(n, _)| *n != "output.weight"), "tied output");
    forward::compare(&py, &model, &forward::data("eval.txt"), 256, 3, dir.path());
}

#[test]
fn qwen3_q8_0_requant_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let f16 = make(&py, &dir.path().join("qwen3.gguf"), &["--seed", "5"]);
    let q8 = dir.path().join("qwen3-q8_0.gguf");
    let st = Command::new(&py)
        .arg(forward::tool("llama_perplexity.py"))
        .arg("quantize")
        .arg(&f16)
        .arg(&q8)
        .arg("q8_0")
        .output()
        .expect("run llama_perplexity.py quantize");
    assert!(st.status.success(), "quantize: {}", String::from_utf8_lossy(&st.stderr));
    let (ours, theirs, same) = forward::compare(&py, &q8, &forward::data("eval.txt"), 512, 2, dir.path());
    assert!((ours / theirs - 1.0).abs() < 1e-6 && same == 1.0, "Q8_0 should agree to rounding: {ours} vs {theirs}");
}

#[test]
fn qwen3_without_q_norm_is_a_clear_error() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let model = make(&py, &dir.path().join("qwen3.gguf"), &["--n-layer", "1"]);
    // The same file without blk.0.attn_q_norm.weight.
    use quantmix::gguf::{GgufFile, GgufWriter, TensorSpec};
    let g = GgufFile::open(&model).unwrap();
    let keep: Vec<_> = g.tensors().iter().filter(|t| t.name != "blk.0.attn_q_norm.weight").collect();
    let specs: Vec<TensorSpec> =
        keep.iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect();
    let broken = dir.path().join("broken.gguf");
    let mut w = GgufWriter::create(&broken, g.metadata(), &specs, 32).unwrap();
    for t in &keep {
        w.write_tensor(g.tensor_data(t)).unwrap();
    }
    w.finish().unwrap();
    let e = LlamaModel::open(&broken).err().expect("an error").to_string();
    assert!(e.contains("blk.0.attn_q_norm.weight") && e.contains("missing"), "{e}");
}
