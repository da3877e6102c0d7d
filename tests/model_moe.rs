//! The mixture-of-experts forward pass against llama.cpp (llama-cpp-python,
//! the build `.ci/setup` installs) on synthetic 8-expert models written by
//! `tests/tools/make_synth_model.py`: a qwen3moe (Q/K norms, NeoX RoPE,
//! `expert_feed_forward_length`) and a Mixtral-style llama (`llama.expert_count`),
//! each with an F32 router and F16 experts, 2 experts per token.
//!
//! - F16: perplexity within 0.5% of llama.cpp's, the top token on ≥ 99% of
//!   positions (the attention projections' F16 GEMM differs by ~1e-3, see
//!   tests/model_qwen3.rs, which can move a near tie of the router);
//! - Q8_0 requantized by llama.cpp: equal to rounding, every top token
//!   (the router's logits in tinyBLAS order, the same experts everywhere);
//! - llama.cpp's Q4_K_M and Q2_K presets (its expert-count rules) byte for
//!   byte, plain and with an importance matrix collected by quantmix on the
//!   MoE model (per-expert sums and counts), which llama_model_quantize
//!   accepts and uses as `quantmix quantize --imatrix` does.
//!
//! Against `llama-imatrix` itself (a dev check, not a test: CI does not
//! build the binary): built for AVX2 (`-DGGML_NATIVE=OFF -DGGML_AVX2=ON`),
//! on these models' Q8_0 requants (seeds 21 and 22), 4 chunks of the eval
//! text with `-c 128 -b 128` / `-c 512 -b 512 -fa off`, it writes exactly
//! our values: all 24 entries, every per-expert sum and count.

mod common;
#[path = "common/forward.rs"]
mod forward;

use std::path::{Path, PathBuf};
use std::process::Command;

use quantmix::gguf::GgufFile;
use quantmix::job::{Cancel, Ctx};
use quantmix::model::{LlamaModel, Tokenizer};
use quantmix::sensitivity::collect::{collect, CollectOptions};

const ROUTER_SCALE: &str = "6";

fn qwen3moe(py: &Path, dir: &Path, seed: &str) -> PathBuf {
    forward::make_synth(
        py,
        "qwen3moe",
        &dir.join("qwen3moe.gguf"),
        &["--seed", seed, "--n-layer", "3", "--n-ff-exp", "256", "--router-scale", ROUTER_SCALE],
    )
}

fn mixtral(py: &Path, dir: &Path, seed: &str) -> PathBuf {
    forward::make_synth(
        py,
        "llama",
        &dir.join("mixtral.gguf"),
        &[
            "--seed",
            seed,
            "--n-layer",
            "3",
            "--n-expert",
            "8",
            "--n-expert-used",
            "2",
            "--head-dim",
            "64",
            "--n-ff",
            "256",
            "--bos",
            "--router-scale",
            ROUTER_SCALE,
        ],
    )
}

fn requant(py: &Path, src: &Path, dst: &Path, ty: &str) {
    let o = Command::new(py)
        .arg(forward::tool("llama_perplexity.py"))
        .args(["quantize".as_ref(), src.as_os_str(), dst.as_os_str(), ty.as_ref()])
        .output()
        .expect("run llama_perplexity.py quantize");
    assert!(o.status.success(), "quantize: {}", String::from_utf8_lossy(&o.stderr));
}

/// F16 within 0.5% / 99%, its Q8_0 requant equal to rounding.
fn check_against_llama_cpp(py: &Path, f16: &Path, dir: &Path) {
    let text = forward::data("eval.txt");
    forward::compare(py, f16, &text, 512, 2, dir);
    let q8 = dir.join("q8_0.gguf");
    requant(py, f16, &q8, "q8_0");
    let (ours, theirs, same) = forward::compare(py, &q8, &text, 512, 2, dir);
    assert!((ours / theirs - 1.0).abs() < 1e-6 && same == 1.0, "Q8_0 should agree to rounding: {ours} vs {theirs}");
}

#[test]
fn qwen3moe_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let f16 = qwen3moe(&py, dir.path(), "21");
    let m = LlamaModel::open(&f16).unwrap();
    let hp = &m.hp;
    assert_eq!((hp.n_expert, hp.n_expert_used, hp.n_ff_exp, hp.head_dim), (8, 2, 256, 128));
    check_against_llama_cpp(&py, &f16, dir.path());
}

#[test]
fn mixtral_style_llama_matches_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let f16 = mixtral(&py, dir.path(), "22");
    let m = LlamaModel::open(&f16).unwrap();
    assert_eq!((m.hp.spec.name, m.hp.n_expert, m.hp.n_expert_used, m.hp.n_ff_exp), ("llama", 8, 2, 256));
    check_against_llama_cpp(&py, &f16, dir.path());
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

fn quantize_both(py: &Path, model: &Path, preset: &str, imatrix: Option<&Path>, dir: &Path) {
    let tag = format!("{preset}{}", if imatrix.is_some() { "-imatrix" } else { "" });
    let ours = dir.join(format!("ours-{tag}.gguf"));
    let theirs = dir.join(format!("llama-{tag}.gguf"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_quantmix"));
    c.args(["quantize", "-q", "--preset", preset]).arg(model).arg("-o").arg(&ours);
    if let Some(im) = imatrix {
        c.arg("--imatrix").arg(im);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "quantmix quantize: {}", String::from_utf8_lossy(&o.stderr));
    let mut c = Command::new(py);
    c.arg(forward::tool("llama_quantize.py")).arg(model).arg(&theirs).arg(preset);
    if let Some(im) = imatrix {
        c.arg("--imatrix").arg(im);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "llama_model_quantize: {}", String::from_utf8_lossy(&o.stderr));
    assert_same_tensors(&ours, &theirs, &format!("{} {tag}", model.display()));
}

/// Our imatrix of `model` over the eval text (4 chunks of 128 tokens),
/// checked for its per-expert structure, written to `out`.
fn moe_imatrix(model: &Path, out: &Path) {
    let m = LlamaModel::open(model).unwrap();
    let tok = Tokenizer::from_metadata(m.file().metadata(), model).unwrap();
    let text = std::fs::read_to_string(forward::data("eval.txt")).unwrap();
    let tokens = tok.encode(&text, true, false).unwrap();
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let opts = CollectOptions { n_ctx: 128, max_chunks: Some(4), process_output: false };
    let im = collect(&m, &tokens, bos, &opts, vec!["eval.txt".into()], Ctx::quiet(&Cancel::new())).unwrap();
    let (n_expert, k, d, ff) = (m.hp.n_expert, m.hp.n_expert_used, m.hp.n_embd, m.hp.n_ff_exp);
    let n_tokens = 4 * 128;
    for il in 0..m.hp.n_layer {
        let e = |s: &str| &im.entries[&format!("blk.{il}.{s}.weight")];
        // The router is an ordinary product: one count.
        assert_eq!(e("ffn_gate_inp").counts, vec![n_tokens as f32]);
        for (s, cols) in [("ffn_gate_exps", d), ("ffn_up_exps", d), ("ffn_down_exps", ff)] {
            let x = e(s);
            assert_eq!(x.counts.len(), n_expert, "{s}");
            assert_eq!(x.sums.len(), n_expert * cols, "{s}");
            assert_eq!(x.counts.iter().sum::<f32>(), (n_tokens * k) as f32, "{s}: every token counted k times");
            assert!(x.counts.iter().filter(|&&c| c > 0.0).count() >= 2, "{s}: routed to one expert only");
        }
        // Gate and up read the same rows.
        assert_eq!(e("ffn_gate_exps"), e("ffn_up_exps"));
    }
    im.save_gguf(out).unwrap();
}

#[test]
fn moe_presets_and_imatrix_quantize_like_llama_cpp() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    for model in [qwen3moe(&py, dir.path(), "31"), mixtral(&py, dir.path(), "32")] {
        let im = dir.path().join("moe.imatrix.gguf");
        moe_imatrix(&model, &im);
        for preset in ["Q4_K_M", "Q2_K"] {
            quantize_both(&py, &model, preset, None, dir.path());
            quantize_both(&py, &model, preset, Some(&im), dir.path());
        }
        // MXFP4 experts, Q8_0 everything else (ggml ignores the importance matrix for both).
        quantize_both(&py, &model, "MXFP4_MOE", None, dir.path());
    }
}

/// `sensitivity` measures an expert tensor (all experts) as one tensor,
/// its candidates quantized with the per-expert importance exactly as
/// `quantize --imatrix` quantizes it; the router is left as it is.
#[test]
fn moe_sensitivity_treats_an_expert_tensor_as_one() {
    use quantmix::gguf::GgmlType;
    use quantmix::sensitivity::imatrix::Imatrix;
    use quantmix::sensitivity::measure::{quantize_candidate, weights_f32};
    use quantmix::sensitivity::schema::SensitivityTable;
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let model = qwen3moe(&py, dir.path(), "41");
    let im = dir.path().join("moe.imatrix.gguf");
    moe_imatrix(&model, &im);
    let out = dir.path().join("sens.json");
    let o = Command::new(env!("CARGO_BIN_EXE_quantmix"))
        .arg("sensitivity")
        .arg(&model)
        .arg("-o")
        .arg(&out)
        .arg("--imatrix")
        .arg(&im)
        .args(["--ctx", "32", "--chunks", "2", "--types", "Q2_K,Q4_K", "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "sensitivity: {}", String::from_utf8_lossy(&o.stderr));
    let t = SensitivityTable::load(&out).unwrap();
    let m = LlamaModel::open(&model).unwrap();
    let imp = Imatrix::load(&im).unwrap().importance();
    let names: Vec<&str> = t.tensors.iter().map(|x| x.name.as_str()).collect();
    assert!(!names.iter().any(|n| n.contains("ffn_gate_inp")), "{names:?}");
    for s in ["ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"] {
        let name = format!("blk.1.{s}.weight");
        let x = t.tensors.iter().find(|x| x.name == name).unwrap_or_else(|| panic!("{name} not measured: {names:?}"));
        assert_eq!(x.shape.len(), 3);
        let q2 = x.candidates.iter().find(|c| c.ty == "Q2_K").unwrap();
        assert!(q2.kld > 0.0 && q2.kld.is_finite(), "{name}: {}", q2.kld);
        assert_eq!(q2.bytes, GgmlType::Q2_K.row_bytes(x.shape[0]).unwrap() * x.shape[1] * x.shape[2]);
        // Measured with the per-expert importance: the same proxy as here.
        let info = m.file().tensor(&name).unwrap().clone();
        let w = weights_f32(&m, &info).unwrap();
        let (_, proxy) = quantize_candidate(GgmlType::Q2_K, &w, x.shape[0] as usize, Some(&imp[&name])).unwrap();
        assert!((q2.proxy / proxy - 1.0).abs() < 1e-9, "{name}: proxy {} vs {proxy}", q2.proxy);
    }
    // The candidate's bytes are what `quantize --type Q4_K --imatrix` writes.
    let q4 = dir.path().join("q4k.gguf");
    let o = Command::new(env!("CARGO_BIN_EXE_quantmix"))
        .args(["quantize", "-q", "--type", "Q4_K", "--imatrix"])
        .arg(&im)
        .arg(&model)
        .arg("-o")
        .arg(&q4)
        .output()
        .unwrap();
    assert!(o.status.success(), "quantize: {}", String::from_utf8_lossy(&o.stderr));
    let g = GgufFile::open(&q4).unwrap();
    let name = "blk.2.ffn_down_exps.weight";
    let t = m.file().tensor(name).unwrap().clone();
    let w = weights_f32(&m, &t).unwrap();
    let v = &imp[name];
    assert_eq!(v.len(), t.shape[0] as usize * 8);
    let (bytes, _) = quantize_candidate(GgmlType::Q4_K, &w, t.shape[0] as usize, Some(v)).unwrap();
    assert!(
        bytes == g.tensor_data(g.tensor(name).unwrap()),
        "{name}: per-expert importance not applied as quantize does"
    );
}
