//! The forward pass on IQ4_NL / IQ4_XS / IQ3_S / IQ3_XXS weights against
//! llama.cpp (llama-cpp-python 0.3.36): SmolLM2-135M quantized by `quantmix
//! quantize --type IQ4_XS` (IQ4_XS where rows divide by 256, llama.cpp's
//! IQ4_NL fallback on the 576-wide rows), `--type IQ4_NL`, `--type IQ3_S`,
//! `--type IQ3_XXS` and `--type IQ2_S` (the last two with a synthetic
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

use std::path::{Path, PathBuf};
use std::process::Command;

const N_CTX: usize = 512;
const N_CHUNKS: usize = 2;

fn quantize(model: &Path, ty: &str, dir: &Path, imatrix: Option<&Path>) -> PathBuf {
    let out = dir.join(format!("{ty}.gguf"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quantmix"));
    cmd.arg("quantize").arg(model).arg("-o").arg(&out).args(["--type", ty, "-q"]);
    if let Some(m) = imatrix {
        cmd.arg("--imatrix").arg(m);
    }
    let o = cmd.output().expect("run quantmix quantize");
    assert!(o.status.success(), "quantmix quantize --type {ty}: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// llama.cpp's figures without weight repacking.
fn llama_cpp_norepack(py: &Path, model: &Path, out: &Path) -> forward::Scored {
    let st = Command::new(py)
        .arg(forward::tool("llama_perplexity_norepack.py"))
        .arg("ppl")
        .arg(model)
        .arg(forward::data("eval.txt"))
        .args([N_CTX.to_string(), N_CHUNKS.to_string()])
        .arg(out)
        .status()
        .expect("run llama_perplexity_norepack.py");
    assert!(st.success(), "llama_perplexity_norepack.py failed on {}", model.display());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    forward::Scored {
        ppl: v["ppl"].as_f64().unwrap(),
        argmax: v["argmax"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect(),
    }
}

/// `(relative PPL difference, fraction of positions with the same top token)`.
fn agreement(ours: &forward::Scored, theirs: &forward::Scored) -> (f64, f64) {
    assert_eq!(ours.argmax.len(), theirs.argmax.len(), "scored positions");
    let same = ours.argmax.iter().zip(&theirs.argmax).filter(|(a, b)| a == b).count();
    ((ours.ppl / theirs.ppl - 1.0).abs(), same as f64 / ours.argmax.len() as f64)
}

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
    let q = quantize(&model, ty, dir.path(), imatrix.as_deref());
    let g = quantmix::gguf::GgufFile::open(&q).unwrap();
    for name in expect {
        assert!(g.tensors().iter().any(|t| t.ty.name() == *name), "{ty} file has no {name} tensor");
    }
    let text = forward::data("eval.txt");
    let body = std::fs::read_to_string(&text).unwrap();
    let ours = forward::ours(&q, &body, N_CTX, N_CHUNKS);
    let cli = forward::cli_ppl(&q, &text, N_CTX, N_CHUNKS);
    let repack = forward::llama_cpp(&py, &q, &text, N_CTX, N_CHUNKS, &dir.path().join("llama.json"));
    let plain = llama_cpp_norepack(&py, &q, &dir.path().join("norepack.json"));
    let (rel_r, same_r) = agreement(&ours, &repack);
    let (rel_p, same_p) = agreement(&ours, &plain);
    let (rel_rp, same_rp) = agreement(&plain, &repack);
    eprintln!(
        "{ty}: PPL quantmix {:.6} (eval CLI {cli:.6}); llama.cpp {:.6} (rel {rel_r:.2e}, same top {:.2}%); \
         without repacking {:.6} (rel {rel_p:.2e}, same top {:.2}%); llama.cpp with vs without repacking: rel {rel_rp:.2e}, same top {:.2}%",
        ours.ppl,
        repack.ppl,
        100.0 * same_r,
        plain.ppl,
        100.0 * same_p,
        100.0 * same_rp
    );
    assert!((cli / ours.ppl - 1.0).abs() < 1e-9, "quantmix eval PPL {cli} differs from the library's {}", ours.ppl);
    // Against llama.cpp's default (IQ4_NL fallbacks repacked to iq4_nl_8x8)
    // the bar is 0.5%, or llama.cpp's own distance between its repacked and
    // unrepacked runs where that is larger (the IQ3_S file: 0.52%).
    assert!(
        rel_r < 0.005 || (rel_r - rel_rp).abs() < 1e-6,
        "PPL differs from llama.cpp's by {:.3}% (llama.cpp with vs without repacking: {:.3}%)",
        rel_r * 100.0,
        rel_rp * 100.0
    );
    assert!(
        rel_p < 1e-6 && same_p == 1.0,
        "without repacking llama.cpp should agree to rounding: rel {rel_p:.2e}, same top {:.2}%",
        100.0 * same_p
    );
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
