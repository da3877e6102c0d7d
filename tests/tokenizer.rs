//! Token ids equal llama.cpp's: committed ids (tests/data/smollm2_tokens.json,
//! made by tests/tools/llama_tokenize.py) and, when the venv is present, ids
//! computed by llama-cpp-python at test time for the same texts plus the
//! evaluation text.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use quantmix::gguf::GgufFile;
use quantmix::model::Tokenizer;
use serde_json::Value;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn tokenizer(model: &Path) -> Tokenizer {
    let f = GgufFile::open(model).expect("open model");
    Tokenizer::from_metadata(f.metadata(), model).expect("tokenizer")
}

/// Compare our ids with `expected` (the tool's output format) for every text.
fn compare(tok: &Tokenizer, texts: &Value, expected: &Value) -> usize {
    let mut checked = 0;
    for (name, text) in texts.as_object().expect("texts object") {
        let text = text.as_str().expect("text");
        for add_special in [false, true] {
            for parse_special in [false, true] {
                let want: Vec<u32> =
                    serde_json::from_value(expected[name][add_special.to_string()][parse_special.to_string()].clone())
                        .unwrap_or_else(|e| panic!("expected ids for {name}: {e}"));
                let got = tok.encode(text, add_special, parse_special).expect("encode");
                if got != want {
                    let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
                    panic!(
                        "{name} (add_special={add_special}, parse_special={parse_special}): ids differ from llama.cpp \
                         at index {at}: ours {:?} vs llama.cpp {:?}",
                        &got[at.saturating_sub(2)..(at + 4).min(got.len())],
                        &want[at.saturating_sub(2)..(at + 4).min(want.len())]
                    );
                }
                checked += 1;
            }
        }
    }
    checked
}

fn load_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("read json")).expect("parse json")
}

#[test]
fn smollm2_matches_committed_llama_cpp_ids() {
    let Some(model) = common::smollm2() else { return };
    let tok = tokenizer(&model);
    assert!(!tok.add_bos(), "SmolLM2's GGUF sets add_bos_token = false");
    let n = compare(&tok, &load_json(&data("tokenizer_texts.json")), &load_json(&data("smollm2_tokens.json")));
    assert_eq!(n, 40);
}

#[test]
fn smollm2_matches_llama_cpp_at_test_time() {
    let Some(model) = common::smollm2() else { return };
    let Some(py) = common::python() else { return };
    let tok = tokenizer(&model);
    // The fixed texts plus the evaluation text, tokenized by llama.cpp now.
    let dir = common::tempdir();
    let mut texts = load_json(&data("tokenizer_texts.json"));
    let eval = std::fs::read_to_string(data("eval.txt")).expect("tests/data/eval.txt");
    texts["eval_txt"] = Value::String(eval.clone());
    let texts_path = dir.path().join("texts.json");
    std::fs::write(&texts_path, serde_json::to_string(&texts).unwrap()).unwrap();
    let out_path = dir.path().join("ids.json");
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools/llama_tokenize.py");
    let st = Command::new(py).arg(tool).arg(&model).arg(&texts_path).arg(&out_path).status().expect("run python");
    assert!(st.success(), "llama_tokenize.py failed");
    let n = compare(&tok, &texts, &load_json(&out_path));
    assert_eq!(n, 44);
    // The evaluation text is long enough for ≥ 10 chunks of 512 tokens.
    assert!(tok.encode(&eval, true, false).unwrap().len() >= 10 * 512);
}

#[test]
fn unsupported_tokenizer_is_a_clear_error() {
    let Some(model) = common::smollm2() else { return };
    let f = GgufFile::open(&model).unwrap();
    let mut meta = f.metadata().clone();
    meta.set("tokenizer.ggml.pre", quantmix::gguf::MetaValue::String("no-such-pre".into()));
    let e = Tokenizer::from_metadata(&meta, &model).unwrap_err().to_string();
    assert!(e.contains("no-such-pre") && e.contains("SmolLM2"), "{e}");
    meta.set("tokenizer.ggml.model", quantmix::gguf::MetaValue::String("bert".into()));
    let e = Tokenizer::from_metadata(&meta, &model).unwrap_err().to_string();
    assert!(e.contains("`bert`"), "{e}");
}
