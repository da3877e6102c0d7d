//! The shipped calibration set: large enough (>= 30 000 SmolLM2 tokens) and
//! disjoint from the evaluation text (no shared 12-word sequence).

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use quantmix::gguf::GgufFile;
use quantmix::model::Tokenizer;
use quantmix::sensitivity::calibration::Calibration;

const WINDOW: usize = 12;

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

fn windows(text: &str) -> HashSet<Vec<String>> {
    words(text).windows(WINDOW).map(|w| w.to_vec()).collect()
}

/// The first 12-word sequence of `text` that also occurs in `other`.
fn first_shared(text: &str, other: &HashSet<Vec<String>>) -> Option<String> {
    words(text).windows(WINDOW).find(|w| other.contains(*w)).map(|w| w.join(" "))
}

fn eval_text() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval.txt");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn default_set_shares_no_12_word_sequence_with_eval_text() {
    let eval = eval_text();
    let eval_windows = windows(&eval);
    assert!(eval_windows.len() > 3000, "eval text too short to check: {} windows", eval_windows.len());
    let cal = Calibration::default_set();
    for (source, text) in cal.sources.iter().zip(&cal.texts) {
        if let Some(seq) = first_shared(text, &eval_windows) {
            panic!("{source} shares a 12-word sequence with tests/data/eval.txt: {seq:?}");
        }
    }
    // The check does find overlap: a sentence taken from the eval text, put
    // into calibration text, is caught (also across line breaks and case).
    let lines: Vec<&str> = eval.lines().filter(|l| words(l).len() >= 20).collect();
    let pasted = lines[lines.len() / 2];
    let tampered = format!("{}\n\n{}", cal.texts[0], pasted.to_uppercase().replace(' ', "\n"));
    assert!(first_shared(&tampered, &eval_windows).is_some(), "overlap check missed a pasted eval line");
}

#[test]
fn default_set_is_at_least_30000_smollm2_tokens() {
    let Some(model) = common::smollm2() else { return };
    let f = GgufFile::open(&model).expect("open model");
    let tok = Tokenizer::from_metadata(f.metadata(), &model).expect("tokenizer");
    let cal = Calibration::default_set();
    let n = tok.encode(&cal.joined(), false, false).expect("encode").len();
    eprintln!("{}: {n} tokens", cal.describe());
    assert!(n >= 30_000, "default calibration set is only {n} tokens");
    // Every file contributes a real share, not a stub.
    for (source, text) in cal.sources.iter().zip(&cal.texts) {
        let n = tok.encode(text, false, false).expect("encode").len();
        assert!(n >= 3_000, "{source} is only {n} tokens");
    }
}
