//! Comparing the forward pass with llama.cpp (llama-cpp-python, the build
//! `.ci/setup` installs) on one model and text: perplexity the way
//! llama-perplexity computes it (second half of each chunk scored, BOS
//! first when the vocabulary adds it) and the most likely next token at
//! every scored position, from our library, from `quantmix eval` and from
//! `tests/tools/llama_perplexity.py`.
//!
//! Included with `#[path = "common/forward.rs"] mod forward;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use quantmix::eval::{for_each_chunk, perplexity::Perplexity, ChunkPlan};
use quantmix::model::{LlamaModel, Tokenizer};

pub fn tool(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools").join(name)
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A synthetic model of `arch` by `tests/tools/make_synth_model.py` (its
/// vocabulary from the eval text), written to `out`.
pub fn make_synth(py: &Path, arch: &str, out: &Path, args: &[&str]) -> PathBuf {
    let st = Command::new(py)
        .arg(tool("make_synth_model.py"))
        .arg(arch)
        .arg(out)
        .arg("--vocab-text")
        .arg(data("eval.txt"))
        .args(args)
        .status()
        .expect("run make_synth_model.py");
    assert!(st.success(), "make_synth_model.py failed");
    out.to_path_buf()
}

/// Perplexity and the argmax of every scored position.
pub struct Scored {
    pub ppl: f64,
    pub argmax: Vec<u32>,
}

/// Our library's figures.
pub fn ours(model: &Path, text: &str, n_ctx: usize, n_chunks: usize) -> Scored {
    let m = LlamaModel::open(model).expect("open model");
    let tok = Tokenizer::from_metadata(m.file().metadata(), model).expect("tokenizer");
    let tokens = tok.encode(text, true, false).expect("encode");
    let plan = ChunkPlan::new(tokens.len(), n_ctx, Some(n_chunks)).expect("plan");
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let mut cache = m.new_cache(n_ctx);
    let n_vocab = m.hp.n_vocab;
    let mut ppl = Perplexity::default();
    let mut argmax = Vec::new();
    for_each_chunk(&m, &tokens, plan, bos, &mut cache, |_, chunk, logits| {
        ppl.add_chunk(chunk, plan.first(), logits, n_vocab);
        for row in logits.chunks_exact(n_vocab).take(plan.scored_per_chunk()) {
            // The first maximum, as numpy's argmax.
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            argmax.push(best as u32);
        }
    })
    .expect("forward");
    Scored { ppl: ppl.ppl(), argmax }
}

/// llama.cpp's figures, from `llama_perplexity.py ppl` (JSON in `out`).
pub fn llama_cpp(py: &Path, model: &Path, text: &Path, n_ctx: usize, n_chunks: usize, out: &Path) -> Scored {
    let st = Command::new(py)
        .arg(tool("llama_perplexity.py"))
        .arg("ppl")
        .arg(model)
        .arg(text)
        .args([n_ctx.to_string(), n_chunks.to_string()])
        .arg(out)
        .status()
        .expect("run llama_perplexity.py");
    assert!(st.success(), "llama_perplexity.py failed on {}", model.display());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    Scored {
        ppl: v["ppl"].as_f64().unwrap(),
        argmax: v["argmax"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect(),
    }
}

/// The perplexity `quantmix eval --json` reports for `model` on `text`.
pub fn cli_ppl(model: &Path, text: &Path, n_ctx: usize, n_chunks: usize) -> f64 {
    let o = Command::new(env!("CARGO_BIN_EXE_quantmix"))
        .arg("eval")
        .arg(model)
        .arg("--text")
        .arg(text)
        .args(["--ctx", &n_ctx.to_string(), "--chunks", &n_chunks.to_string(), "--no-speed", "--json", "-q"])
        .output()
        .expect("run quantmix eval");
    assert!(o.status.success(), "quantmix eval: {}", String::from_utf8_lossy(&o.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    rows[0]["ppl"].as_f64().expect("ppl")
}

/// Ours (library and `quantmix eval`) against llama.cpp on the same text
/// and chunks: perplexity within 0.5%, the same top token on ≥ 99% of the
/// scored positions. Returns (ours, llama.cpp's, same-top fraction).
pub fn compare(py: &Path, model: &Path, text: &Path, n_ctx: usize, n_chunks: usize, dir: &Path) -> (f64, f64, f64) {
    let theirs = llama_cpp(py, model, text, n_ctx, n_chunks, &dir.join("llama.json"));
    compare_with(&theirs, model, text, n_ctx, n_chunks, 0.99)
}

/// [`compare`] against figures already computed, with the least fraction
/// of positions whose top token must agree.
pub fn compare_with(
    theirs: &Scored,
    model: &Path,
    text: &Path,
    n_ctx: usize,
    n_chunks: usize,
    min_same: f64,
) -> (f64, f64, f64) {
    let body = std::fs::read_to_string(text).expect("read text");
    let o = ours(model, &body, n_ctx, n_chunks);
    let cli = cli_ppl(model, text, n_ctx, n_chunks);
    assert_eq!(theirs.argmax.len(), o.argmax.len(), "scored positions");
    let same = o.argmax.iter().zip(&theirs.argmax).filter(|(a, b)| a == b).count();
    let rel = (o.ppl / theirs.ppl - 1.0).abs();
    let frac = same as f64 / o.argmax.len() as f64;
    eprintln!(
        "{}: PPL quantmix {:.6} (eval CLI {:.6}), llama.cpp {:.6} (rel {:.2e}); same top token {same}/{} ({:.2}%)",
        model.display(),
        o.ppl,
        cli,
        theirs.ppl,
        rel,
        o.argmax.len(),
        100.0 * frac
    );
    assert!((cli / o.ppl - 1.0).abs() < 1e-9, "quantmix eval PPL {cli} differs from the library's {}", o.ppl);
    assert!(rel < 0.005, "PPL differs from llama.cpp's by {:.3}%", rel * 100.0);
    assert!(frac >= min_same, "top token agrees on {same}/{} (want ≥ {min_same})", o.argmax.len());
    (o.ppl, theirs.ppl, frac)
}
/// `quantmix quantize MODEL --type TY [--imatrix FILE]` into `dir`.
pub fn quantize_type(model: &Path, ty: &str, dir: &Path, imatrix: Option<&Path>) -> PathBuf {
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
pub fn llama_cpp_norepack(py: &Path, model: &Path, n_ctx: usize, n_chunks: usize, out: &Path) -> Scored {
    let st = Command::new(py)
        .arg(tool("llama_perplexity_norepack.py"))
        .arg("ppl")
        .arg(model)
        .arg(data("eval.txt"))
        .args([n_ctx.to_string(), n_chunks.to_string()])
        .arg(out)
        .status()
        .expect("run llama_perplexity_norepack.py");
    assert!(st.success(), "llama_perplexity_norepack.py failed on {}", model.display());
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    Scored {
        ppl: v["ppl"].as_f64().unwrap(),
        argmax: v["argmax"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect(),
    }
}

/// `(relative PPL difference, fraction of positions with the same top token)`.
pub fn agreement(ours: &Scored, theirs: &Scored) -> (f64, f64) {
    assert_eq!(ours.argmax.len(), theirs.argmax.len(), "scored positions");
    let same = ours.argmax.iter().zip(&theirs.argmax).filter(|(a, b)| a == b).count();
    ((ours.ppl / theirs.ppl - 1.0).abs(), same as f64 / ours.argmax.len() as f64)
}

/// `model` quantized by `quantmix quantize --type TY` (with `imatrix` if
/// given; the file must hold tensors of every type in `expect`) against
/// llama.cpp: equal to rounding with every top token the same when llama.cpp
/// multiplies the weights as the file stores them, and within 0.5% in
/// perplexity of its default (weights repacked where it repacks them, which
/// sums in another order) — or exactly as far from the default as
/// llama.cpp's own unrepacked run is, where repacking alone moves llama.cpp
/// further (4-bit files of SmolLM2's Q4_1 weights: up to 0.66%).
pub fn check_quantized(
    py: &Path,
    model: &Path,
    ty: &str,
    expect: &[&str],
    imatrix: Option<&Path>,
    n_ctx: usize,
    n_chunks: usize,
) {
    let dir = super::common::tempdir();
    let q = quantize_type(model, ty, dir.path(), imatrix);
    let g = quantmix::gguf::GgufFile::open(&q).unwrap();
    for name in expect {
        assert!(g.tensors().iter().any(|t| t.ty.name() == *name), "{ty} file has no {name} tensor");
    }
    let text = data("eval.txt");
    let body = std::fs::read_to_string(&text).unwrap();
    let ours = ours(&q, &body, n_ctx, n_chunks);
    let cli = cli_ppl(&q, &text, n_ctx, n_chunks);
    let repack = llama_cpp(py, &q, &text, n_ctx, n_chunks, &dir.path().join("llama.json"));
    let plain = llama_cpp_norepack(py, &q, n_ctx, n_chunks, &dir.path().join("norepack.json"));
    let (rel_r, same_r) = agreement(&ours, &repack);
    let (rel_p, same_p) = agreement(&ours, &plain);
    let (rel_rp, same_rp) = agreement(&plain, &repack);
    eprintln!(
        "{} {ty}: PPL quantmix {:.6} (eval CLI {cli:.6}); llama.cpp {:.6} (rel {rel_r:.2e}, same top {:.2}%); \
         without repacking {:.6} (rel {rel_p:.2e}, same top {:.2}%); llama.cpp with vs without repacking: rel {rel_rp:.2e}, same top {:.2}%",
        model.display(),
        ours.ppl,
        repack.ppl,
        100.0 * same_r,
        plain.ppl,
        100.0 * same_p,
        100.0 * same_rp
    );
    assert!((cli / ours.ppl - 1.0).abs() < 1e-9, "quantmix eval PPL {cli} differs from the library's {}", ours.ppl);
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
