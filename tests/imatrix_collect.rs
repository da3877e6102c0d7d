//! Importance-matrix collection (`quantmix imatrix`), checked by hand on a
//! small generated llama (the 12-layer F16 fixture) and end to end: the file
//! we write reads back, and llama.cpp's `llama_model_quantize` with it gives
//! the same bytes as `quantmix quantize --imatrix` with it.
//!
//! Against llama.cpp's own `llama-imatrix` (a dev check, not a test: CI does
//! not build the binary): on SmolLM2-135M Q4_1, 4 chunks × 512 tokens of the
//! calibration text, `llama-imatrix -c 512 -b 512 -fa off` writes exactly our
//! values (all 210 matrices, every `in_sum2` and `counts` value bit-identical).
//! With its defaults (flash attention on, 4 sequences per 2048-token batch)
//! its attention output differs in the last bits, so the sums differ by a
//! median 0.1–0.5% relative (max 12% on near-zero columns) from layer 1 on;
//! layer 0's Q/K/V inputs are identical either way. On Gemma 3 270M Q4_K_M
//! (k-quant products of 512 tokens, which ggml computes with its tiled GEMM
//! and quantmix in the same arithmetic), llama-imatrix built for AVX2 with
//! `-nr -c 512 -b 512 -fa off` writes all 252 entries bit-identical.

mod common;

use std::process::Command;

use quantmix::gguf::{GgufFile, TensorInfo};
use quantmix::job::{Cancel, Ctx};
use quantmix::model::{Hooks, Input, LlamaModel, Outputs};
use quantmix::sensitivity::collect::{collect, CollectOptions, Collector};
use quantmix::sensitivity::imatrix::Imatrix;

fn model() -> LlamaModel {
    LlamaModel::open(common::fixture("presets/synth12-llama-f16.gguf")).expect("open fixture")
}

fn tokens(n: usize, n_vocab: usize) -> Vec<u32> {
    common::uniform01(7, n).map(|u| ((u * n_vocab as f32) as u32).min(n_vocab as u32 - 1)).collect()
}

fn f32s(g: &GgufFile, t: &TensorInfo) -> Vec<f32> {
    let mut v = vec![0f32; t.n_elements() as usize];
    quantmix::quant::dequantize_rows(t.ty, g.tensor_data(t), t.row_len() as usize, &mut v).unwrap();
    v
}

#[test]
fn hand_check_on_generated_llama() {
    let m = model();
    let (d, n_vocab) = (m.hp.n_embd, m.hp.n_vocab);
    let n_ctx = 32;
    let toks = tokens(3 * n_ctx, n_vocab);
    let opts = CollectOptions { n_ctx, max_chunks: Some(2), process_output: false };
    let im = collect(&m, &toks, None, &opts, vec!["gen".into()], Ctx::quiet(&Cancel::new())).unwrap();
    assert_eq!((im.chunk_count, im.chunk_size), (2, n_ctx as u32));
    assert_eq!(im.datasets, vec!["gen".to_string()]);
    // 7 matrices per layer, no token_embd (a lookup) and no output.weight.
    assert_eq!(im.entries.len(), 7 * m.hp.n_layer);
    assert!(!im.entries.contains_key("output.weight") && !im.entries.contains_key("token_embd.weight"));
    for (name, e) in &im.entries {
        assert_eq!(e.counts, vec![(2 * n_ctx) as f32], "{name}");
        assert!(e.sums.iter().all(|v| v.is_finite() && *v >= 0.0), "{name}");
    }
    // Q, K and V read the same input, as do gate and up.
    let e = |n: &str| &im.entries[n];
    assert_eq!(e("blk.3.attn_q.weight"), e("blk.3.attn_k.weight"));
    assert_eq!(e("blk.3.attn_q.weight"), e("blk.3.attn_v.weight"));
    assert_eq!(e("blk.5.ffn_gate.weight"), e("blk.5.ffn_up.weight"));
    assert_eq!(e("blk.5.ffn_down.weight").sums.len(), m.hp.n_ff);

    // By hand: layer 0's Q input is RMSNorm(embedding row) × attn_norm.
    let g = m.file();
    let emb = f32s(g, g.tensor("token_embd.weight").unwrap());
    let norm = f32s(g, g.tensor("blk.0.attn_norm.weight").unwrap());
    let eps = m.hp.eps as f64;
    let mut want = vec![0f64; d];
    for &t in &toks[..2 * n_ctx] {
        let row = &emb[t as usize * d..(t as usize + 1) * d];
        let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
        let s = 1.0 / (ms + eps).sqrt();
        for j in 0..d {
            want[j] += (row[j] as f64 * s * norm[j] as f64).powi(2);
        }
    }
    let got = &e("blk.0.attn_q.weight").sums;
    for j in 0..d {
        assert!(
            (got[j] as f64 - want[j]).abs() <= 1e-4 * want[j].abs() + 1e-6,
            "column {j}: {} vs {}",
            got[j],
            want[j]
        );
    }

    // --process-output adds output.weight (its input: the final normed state).
    let opts = CollectOptions { process_output: true, ..opts };
    let im2 = collect(&m, &toks, None, &opts, vec![], Ctx::quiet(&Cancel::new())).unwrap();
    assert_eq!(im2.entries.len(), 7 * m.hp.n_layer + 1);
    assert_eq!(im2.entries["output.weight"].sums.len(), d);
    assert_eq!(im2.entries["blk.0.attn_q.weight"], im.entries["blk.0.attn_q.weight"]);
}

#[test]
fn small_batches_and_other_names_are_skipped() {
    let mut c = Collector::new(false);
    c.observe("blk.0.attn_q.weight", &[1.0; 15 * 4], 15); // < 16 rows: llama-imatrix ignores it
    c.observe("output.weight", &[1.0; 16 * 4], 16);
    c.observe("token_embd.weight", &[1.0; 16 * 4], 16);
    let x: Vec<f32> = (0..16 * 4).map(|i| (i % 4) as f32).collect();
    c.observe("blk.0.attn_k.weight", &x, 16);
    c.observe("blk.0.attn_k.weight", &x, 16);
    let m = c.finish(vec![], 1, 32).unwrap();
    assert_eq!(m.entries.len(), 1);
    let e = &m.entries["blk.0.attn_k.weight"];
    assert_eq!(e.sums, vec![0.0, 32.0, 128.0, 288.0]);
    assert_eq!(e.counts, vec![32.0]);
    // Non-finite activations are an error, as in llama-imatrix.
    let mut c = Collector::new(false);
    c.observe("blk.1.ffn_up.weight", &[f32::INFINITY; 16], 16);
    assert!(c.finish(vec![], 1, 32).is_err());
}

/// The observer sees exactly what the plain forward pass computes: hooks
/// leave the logits bit-identical, and the batched multi-sequence pass
/// started from a cached residual stream equals the plain one.
#[test]
fn hooks_do_not_change_results() {
    let m = model();
    let n = 24;
    let toks = tokens(2 * n, m.hp.n_vocab);
    let plain: Vec<Vec<f32>> = toks
        .chunks(n)
        .map(|c| {
            let mut cache = m.new_cache(n);
            m.forward(c, &mut cache, n / 2).unwrap()
        })
        .collect();
    let mut caches = vec![m.new_cache(n), m.new_cache(n)];
    let mut states: Vec<Vec<f32>> = Vec::new();
    let mut seen = 0usize;
    let mut obs = |_: &str, _: &[f32], _: usize| seen += 1;
    let mut res = |il: usize, x: &[f32]| {
        assert_eq!(il, states.len());
        states.push(x.to_vec())
    };
    let mut hooks = Hooks { observer: Some(&mut obs), residual: Some(&mut res), ..Default::default() };
    let both =
        m.forward_with(Input::Tokens(&toks), &mut caches, Outputs { from: n / 2, logits: true }, &mut hooks).unwrap();
    assert_eq!(seen, 7 * m.hp.n_layer + 1);
    assert_eq!(states.len(), m.hp.n_layer + 1);
    assert_eq!(both, plain.concat());
    for layer in [0, 5, m.hp.n_layer - 1, m.hp.n_layer] {
        let mut caches = vec![m.new_cache(n), m.new_cache(n)];
        let from = m
            .forward_with(
                Input::Hidden { layer, x: &states[layer] },
                &mut caches,
                Outputs { from: n / 2, logits: true },
                &mut Hooks::default(),
            )
            .unwrap();
        assert_eq!(from, both, "restart at layer {layer}");
    }
}

#[test]
fn written_imatrix_reads_back_and_quantizes_like_llama_quantize() {
    let m = model();
    let toks = tokens(4 * 64, m.hp.n_vocab);
    let opts = CollectOptions { n_ctx: 64, max_chunks: None, process_output: false };
    let im = collect(&m, &toks, None, &opts, vec!["generated".into()], Ctx::quiet(&Cancel::new())).unwrap();
    let dir = common::tempdir();
    let path = dir.path().join("synth12.imatrix.gguf");
    im.save_gguf(&path).unwrap();
    assert_eq!(Imatrix::load(&path).unwrap(), im);
    let Some(py) = common::python() else { return };
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    for preset in ["Q4_K_M", "Q2_K"] {
        let ours = dir.path().join(format!("ours-{preset}.gguf"));
        let theirs = dir.path().join(format!("llama-{preset}.gguf"));
        let o = Command::new(env!("CARGO_BIN_EXE_quantmix"))
            .args(["quantize", "-q", "--preset", preset, "--imatrix"])
            .arg(&path)
            .arg(&model)
            .arg("-o")
            .arg(&ours)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = Command::new(&py)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/llama_quantize.py"))
            .arg(&model)
            .arg(&theirs)
            .arg(preset)
            .arg("--imatrix")
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "llama_model_quantize: {}", String::from_utf8_lossy(&o.stderr));
        let (a, b) = (GgufFile::open(&ours).unwrap(), GgufFile::open(&theirs).unwrap());
        for t in a.tensors() {
            let u = b.tensor(&t.name).unwrap();
            assert_eq!(t.ty, u.ty, "{preset} {}", t.name);
            assert!(a.tensor_data(t) == b.tensor_data(u), "{preset} {}: bytes differ", t.name);
        }
    }
}
