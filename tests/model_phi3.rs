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
//! The forward pass (`eval`, `imatrix`, `sensitivity`) does not implement
//! phi3 yet (issue #12).

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::path::{Path, PathBuf};
use std::process::Command;

use quantmix::gguf::GgufFile;
use quantmix::model::Tokenizer;

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
