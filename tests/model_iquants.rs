//! The forward pass on IQ4_NL / IQ4_XS / IQ3 / IQ2 / IQ1 weights against
//! llama.cpp (llama-cpp-python 0.3.36): SmolLM2-135M quantized by `quantmix
//! quantize --type IQ4_XS` (IQ4_XS where rows divide by 256, llama.cpp's
//! IQ4_NL fallback on the 576-wide rows), `--type IQ4_NL`, `--type IQ3_S`,
//! `--type IQ3_XXS`, `--type IQ2_S`, `--type IQ2_XS`, `--type IQ2_XXS`, `--type IQ1_M` and
//! `--type IQ1_S` (the last six with a synthetic
//! importance matrix: llama-quantize and quantmix refuse them without one),
//! all with IQ4_NL on the 576-wide rows; perplexity on `tests/data/eval.txt`
//! (`-c 512`, 2 chunks).
//!
//! Against llama.cpp with the weights as the file stores them
//! (`tests/tools/llama_perplexity_norepack.py`) the perplexity agrees to
//! rounding and every top token is the same: quantmix multiplies as that
//! build does — `vec_dot` for one token, and for prompts IQ4_XS in ggml's
//! tiled-GEMM arithmetic (from 8 tokens) and IQ4_NL in llamafile's tinyBLAS
//! arithmetic (from 2 tokens), see `GgmlBlock::BATCH_DOT`. llama.cpp's
//! default repacks IQ4_NL matrices whose row count divides by 8 into its
//! interleaved `iq4_nl_8x8` GEMM (its own activation quantization and
//! summation order); these 4-bit files of a Q4_1 source are unusually
//! sensitive to that (llama.cpp with and without repacking: 0.2–0.3% in PPL,
//! the same top token on 94.5–96.7% of the positions), so against the
//! default the bar is the 0.5% PPL one — or, for the IQ3_S file, llama.cpp's
//! own repacked/unrepacked distance (0.52%, 93.5% same top token), since
//! quantmix equals the unrepacked run (IQ3_S 2.2e-9, IQ3_XXS 3.3e-9, every
//! top token the same).

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::path::Path;

const N_CTX: usize = 512;
const N_CHUNKS: usize = 2;

/// A synthetic importance matrix for every matrix of the model's layers
/// (positive, heavy-tailed, like activation statistics), saved in
/// llama.cpp's GGUF imatrix format.
fn synthetic_imatrix(model: &Path, out: &Path) {
    use quantmix::sensitivity::imatrix::{Entry, Imatrix};
    let g = quantmix::gguf::GgufFile::open(model).unwrap();
    let mut m = Imatrix { datasets: vec!["synthetic".into()], chunk_count: 4, chunk_size: 512, ..Default::default() };
    for (i, t) in g.tensors().iter().enumerate() {
        if t.shape.len() == 2 && t.name.starts_with("blk.") && !t.name.contains("norm") {
            let n = t.shape[0] as usize;
            let sums = common::uniform01(i as u64 + 1, n).map(|u| 0.01 + u * u * u * 50.0).collect();
            m.entries.insert(t.name.clone(), Entry { sums, counts: vec![512.0 * 4.0] });
        }
    }
    m.save_gguf(out).unwrap();
}

fn check(ty: &str, expect: &[&str]) {
    check_with(ty, expect, false)
}

fn check_with(ty: &str, expect: &[&str], with_imatrix: bool) {
    let (Some(model), Some(py)) = (common::smollm2(), common::python()) else { return };
    let dir = common::tempdir();
    let imatrix = with_imatrix.then(|| {
        let p = dir.path().join("imatrix.gguf");
        synthetic_imatrix(&model, &p);
        p
    });
    forward::check_quantized(&py, &model, ty, expect, imatrix.as_deref(), N_CTX, N_CHUNKS);
}

#[test]
fn smollm2_iq4_xs_matches_llama_cpp() {
    check("IQ4_XS", &["IQ4_XS", "IQ4_NL"]);
}

#[test]
fn smollm2_iq4_nl_matches_llama_cpp() {
    check("IQ4_NL", &["IQ4_NL"]);
}

#[test]
fn smollm2_iq3_s_matches_llama_cpp() {
    check("IQ3_S", &["IQ3_S", "IQ4_NL"]);
}

#[test]
fn smollm2_iq3_xxs_matches_llama_cpp() {
    check_with("IQ3_XXS", &["IQ3_XXS", "IQ4_NL"], true);
}

#[test]
fn smollm2_iq2_s_matches_llama_cpp() {
    check_with("IQ2_S", &["IQ2_S", "IQ4_NL"], true);
}

#[test]
fn smollm2_iq2_xs_matches_llama_cpp() {
    check_with("IQ2_XS", &["IQ2_XS", "IQ4_NL"], true);
}

#[test]
fn smollm2_iq2_xxs_matches_llama_cpp() {
    check_with("IQ2_XXS", &["IQ2_XXS", "IQ4_NL"], true);
}

#[test]
fn smollm2_iq1_s_matches_llama_cpp() {
    check_with("IQ1_S", &["IQ1_S", "IQ4_NL"], true);
}

#[test]
fn smollm2_iq1_m_matches_llama_cpp() {
    check_with("IQ1_M", &["IQ1_M", "IQ4_NL"], true);
}
