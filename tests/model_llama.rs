//! The forward pass against llama.cpp (llama-cpp-python 0.3.36, installed by
//! `.ci/setup`): perplexity on `tests/data/eval.txt` the way llama-perplexity
//! computes it (`-c 512`, second half of each chunk scored, BOS first), and
//! the most likely next token at every scored position.
//!
//! llama.cpp's figures are computed in the same run by
//! `tests/tools/llama_perplexity.py` (llama-cpp-python's `Llama.eval` with
//! all logits), so the comparison is with the llama.cpp build CI installs.
//! Acceptance (issue #5): PPL within 0.5%, top-token agreement above 99%.

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::path::Path;
use std::process::Command;

const N_CTX: usize = 512;
const N_CHUNKS: usize = 2;

fn llama_cpp(py: &Path, model: &Path, out: &Path) -> serde_json::Value {
    let st = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/llama_perplexity.py"))
        .args(["ppl"])
        .arg(model)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval.txt"))
        .args([N_CTX.to_string(), N_CHUNKS.to_string()])
        .arg(out)
        .status()
        .expect("run llama_perplexity.py");
    assert!(st.success(), "llama_perplexity.py failed");
    serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap()
}

fn compare(py: &Path, model: &Path, dir: &Path) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval.txt")).unwrap();
    let theirs = llama_cpp(py, model, &dir.join("llama.json"));
    let o = forward::ours(model, &text, N_CTX, N_CHUNKS);
    let their_ppl = theirs["ppl"].as_f64().unwrap();
    let their_argmax: Vec<u32> =
        theirs["argmax"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    assert_eq!(their_argmax.len(), o.argmax.len(), "scored positions");
    let same = o.argmax.iter().zip(&their_argmax).filter(|(a, b)| a == b).count();
    let rel = (o.ppl / their_ppl - 1.0).abs();
    eprintln!(
        "{}: PPL quantmix {:.6} llama.cpp {:.6} (rel {:.2e}); same top token {same}/{}",
        model.display(),
        o.ppl,
        their_ppl,
        rel,
        o.argmax.len()
    );
    assert!(rel < 0.005, "PPL differs by {:.3}%", rel * 100.0);
    assert!(same * 100 > 99 * o.argmax.len(), "top token agrees on {same}/{}", o.argmax.len());
}

#[test]
fn smollm2_q4_1_matches_llama_cpp() {
    let (Some(model), Some(py)) = (common::smollm2(), common::python()) else { return };
    let dir = common::tempdir();
    compare(&py, &model, dir.path());
}

#[test]
fn smollm2_q8_0_requant_matches_llama_cpp() {
    let (Some(model), Some(py)) = (common::smollm2(), common::python()) else { return };
    let dir = common::tempdir();
    let q8 = dir.path().join("q8_0.gguf");
    let st = Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/llama_perplexity.py"))
        .arg("quantize")
        .arg(&model)
        .arg(&q8)
        .arg("q8_0")
        .status()
        .expect("run llama_perplexity.py quantize");
    assert!(st.success());
    compare(&py, &q8, dir.path());
}
