//! phi3 files (llama.cpp's LLM_ARCH_PHI3 layout: a fused `attn_qkv`, a fused
//! `ffn_up` of 2·n_ff rows and no `ffn_gate`, optional LongRoPE factor
//! tensors `rope_factors_long`/`rope_factors_short` and a partial rotary
//! dimension) written by `tests/tools/make_synth_model.py phi3`, against
//! llama.cpp (llama-cpp-python, the build `.ci/setup` installs).
//!
//! - llama.cpp's Q4_K_M and Q2_K presets byte for byte: `quantize` handles
//!   the fused tensors by name as `llama_model_quantize` does (its
//!   `attn_qkv` rules, the fused `ffn_up` counted as an `ffn_up`, the F32
//!   rope factors left as they are).
//! - Token ids equal to llama.cpp's for every `add_special`/`parse_special`
//!   combination, with the whitespace-swallowing (RSTRIP) special tokens
//!   llama.cpp's vocabulary loader makes for a model named Phi-3.
//!
//! - The forward pass against llama.cpp's perplexity: F16 within 0.5% and
//!   the same top token on ≥ 99% of positions (llama.cpp's F16 GEMM keeps
//!   f32 activations), Q8_0 requants to rounding; the LongRoPE file at a
//!   context of 128 (llama.cpp pads it to 256, not beyond the original 256:
//!   the short factors) and of 512 (the long factors), the attention factor
//!   scaling RoPE's cos and sin.

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::path::{Path, PathBuf};
use std::process::Command;

use quantmix::gguf::GgufFile;
use quantmix::model::{LlamaModel, Tokenizer};

/// The plain phi3 model, and one with LongRoPE factors, a partial rotary
/// dimension (48 of 64), an original context of 256 and an attention factor.
fn models(py: &Path, dir: &Path) -> [PathBuf; 2] {
    [
        forward::make_synth(py, "phi3", &dir.join("phi3.gguf"), &["--seed", "41", "--n-layer", "3"]),
        forward::make_synth(
            py,
            "phi3",
            &dir.join("phi3-longrope.gguf"),
            &[
                "--seed",
                "42",
                "--n-layer",
                "3",
                "--rope-dim",
                "48",
                "--rope-factors",
                "--rope-orig-ctx",
                "256",
                "--rope-attn-factor",
                "1.19",
            ],
        ),
    ]
}

/// Every tensor of `ours` equal in type and bytes to the same tensor of
/// `theirs`.
fn assert_same_tensors(ours: &Path, theirs: &Path, what: &str) {
    let (a, b) = (GgufFile::open(ours).unwrap(), GgufFile::open(theirs).unwrap());
    assert_eq!(a.tensors().len(), b.tensors().len(), "{what}");
    for t in a.tensors() {
        let u = b.tensor(&t.name).unwrap_or_else(|| panic!("{what}: llama.cpp has no {}", t.name));
        assert_eq!(t.ty, u.ty, "{what}: {}", t.name);
        assert!(a.tensor_data(t) == b.tensor_data(u), "{what}: {}: bytes differ", t.name);
    }
}

fn quantize_both(py: &Path, model: &Path, preset: &str, dir: &Path) {
    let ours = dir.join(format!("ours-{preset}.gguf"));
    let theirs = dir.join(format!("llama-{preset}.gguf"));
    let o = Command::new(env!("CARGO_BIN_EXE_quantmix"))
        .args(["quantize", "-q", "--preset", preset])
        .arg(model)
        .arg("-o")
        .arg(&ours)
        .output()
        .unwrap();
    assert!(o.status.success(), "quantmix quantize: {}", String::from_utf8_lossy(&o.stderr));
    let o =
        Command::new(py).arg(forward::tool("llama_quantize.py")).arg(model).arg(&theirs).arg(preset).output().unwrap();
    assert!(o.status.success(), "llama_model_quantize: {}", String::from_utf8_lossy(&o.stderr));
    assert_same_tensors(&ours, &theirs, &format!("{} {preset}", model.display()));
}

#[test]
fn phi3_presets_quantize_like_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    for model in models(&py, dir.path()) {
        let g = GgufFile::open(&model).unwrap();
        assert!(g.tensor("blk.0.attn_qkv.weight").is_some() && g.tensor("blk.0.ffn_gate.weight").is_none());
        for preset in ["Q4_K_M", "Q2_K"] {
            quantize_both(&py, &model, preset, dir.path());
        }
    }
}

/// Our token ids equal llama.cpp's on a phi3 file for every combination of
/// `add_special` and `parse_special`: its vocabulary loader makes special
/// tokens other than `<unk>`, `<s>` and `<|endoftext|>` (and `</s>`) swallow
/// the whitespace after them when the model is named Phi-3.
#[test]
fn phi3_tokenizer_ids_equal_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let [model, _] = models(&py, dir.path());
    let texts = serde_json::json!({
        "rstrip": "hello <|im_start|>  the quick\n<|im_end|>\n\tfox </s>  x",
        "kept": "<|endoftext|>  the <s> quick <unk>  fox",
        "end": "the fox<|im_end|>   ",
        "plain": "The quick brown fox jumps over the lazy dog.\n\n  1234",
    });
    let texts_path = dir.path().join("texts.json");
    std::fs::write(&texts_path, texts.to_string()).unwrap();
    let out = dir.path().join("ids.json");
    let o = Command::new(&py)
        .arg(forward::tool("llama_tokenize.py"))
        .arg(&model)
        .arg(&texts_path)
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "llama_tokenize.py: {}", String::from_utf8_lossy(&o.stderr));
    let theirs: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let f = GgufFile::open(&model).unwrap();
    let tok = Tokenizer::from_metadata(f.metadata(), &model).expect("tokenizer");
    for (name, text) in texts.as_object().unwrap() {
        for add in [false, true] {
            for parse in [false, true] {
                let want: Vec<u32> =
                    serde_json::from_value(theirs[name][add.to_string()][parse.to_string()].clone()).unwrap();
                let got = tok.encode(text.as_str().unwrap(), add, parse).unwrap();
                assert_eq!(got, want, "{name}: add_special {add}, parse_special {parse}");
            }
        }
    }
}

/// A Q8_0 requant of `model` made by llama.cpp.
fn q8_0(py: &Path, model: &Path, out: &Path) -> PathBuf {
    let o = Command::new(py)
        .arg(forward::tool("llama_perplexity.py"))
        .arg("quantize")
        .arg(model)
        .arg(out)
        .arg("q8_0")
        .output()
        .expect("run llama_perplexity.py quantize");
    assert!(o.status.success(), "quantize: {}", String::from_utf8_lossy(&o.stderr));
    out.to_path_buf()
}

#[test]
fn phi3_forward_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let [plain, long] = models(&py, dir.path());
    let m = LlamaModel::open(&plain).unwrap();
    assert_eq!((m.hp.n_rot, m.hp.head_dim, m.hp.rope_attn_factor), (m.hp.head_dim, 64, 1.0));
    let names: Vec<&str> = m.matrices().iter().map(|(n, _)| *n).collect();
    assert!(names.contains(&"blk.0.attn_qkv.weight") && names.contains(&"blk.0.ffn_up.weight"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("attn_q.") || n.contains("ffn_gate")), "{names:?}");
    let m = LlamaModel::open(&long).unwrap();
    assert_eq!((m.hp.n_rot, m.hp.n_ctx_orig, m.hp.rope_attn_factor), (48, 256, 1.19));
    let text = forward::data("eval.txt");
    forward::compare(&py, &plain, &text, 512, 2, dir.path());
    forward::compare(&py, &long, &text, 512, 2, dir.path());
    forward::compare(&py, &long, &text, 128, 4, dir.path());
}

/// Q8_0 weights: the products are llama.cpp's to the last bit, so the
/// perplexity agrees to rounding — with the long factors (context 512) and
/// the short ones (context 128), neither of which may stand in for the other.
#[test]
fn phi3_q8_0_requant_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let [plain, long] = models(&py, dir.path());
    let text = forward::data("eval.txt");
    for (model, ctx, chunks) in [(&plain, 512, 2), (&long, 512, 2), (&long, 128, 4)] {
        let name = model.file_stem().unwrap().to_string_lossy().into_owned();
        let q8 = q8_0(&py, model, &dir.path().join(format!("{name}-q8_0.gguf")));
        let (ours, theirs, same) = forward::compare(&py, &q8, &text, ctx, chunks, dir.path());
        assert!(
            (ours / theirs - 1.0).abs() < 1e-6 && same == 1.0,
            "{name} ctx {ctx}: Q8_0 should agree to rounding: {ours} vs {theirs} (same top {same})"
        );
    }
}
