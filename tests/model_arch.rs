//! The architecture table and its errors, on tiny models written here (no
//! assets needed): each supported architecture opens with the tensors its
//! row asks for and computes finite logits; a missing tensor or a bad
//! setting of the new architectures is an error naming it; an unknown
//! architecture names every supported one.

mod common;

use std::path::{Path, PathBuf};

use quantmix::gguf::{GgmlType, GgufWriter, MetaType, MetaValue, Metadata, TensorSpec};
use quantmix::model::arch::ARCHITECTURES;
use quantmix::model::LlamaModel;

const E: u64 = 32;
const HD: u64 = 16;
const NH: u64 = 2;
const FF: u64 = 64;
const V: u64 = 40;
/// Experts of the MoE models: 4, 2 used, hidden size 32.
const NX: u64 = 4;
const FX: u64 = 32;

/// A tiny model of `arch` (F32 weights from a seeded generator), with the
/// tensors its architecture reads, minus `drop`, plus the metadata `extra`.
fn tiny(dir: &Path, arch: &str, layers: u64, drop: &str, extra: &[(&str, MetaValue)]) -> PathBuf {
    let mut m = Metadata::default();
    m.set("general.architecture", MetaValue::String(arch.into()));
    for (k, v) in [
        ("embedding_length", E),
        ("block_count", layers),
        ("feed_forward_length", FF),
        ("attention.head_count", NH),
        ("attention.head_count_kv", 1),
        ("attention.key_length", HD),
        ("attention.value_length", HD),
        ("context_length", 256),
    ] {
        m.set(format!("{arch}.{k}"), MetaValue::U32(v as u32));
    }
    m.set(format!("{arch}.attention.layer_norm_rms_epsilon"), MetaValue::F32(1e-6));
    for (k, v) in extra {
        m.set(k.replace("ARCH", arch), v.clone());
    }
    let gemma = arch.starts_with("gemma");
    // phi3: fused Q/K/V and gate/up projections.
    let phi3 = arch == "phi3";
    let qk_norm = arch == "qwen3" || arch == "qwen3moe" || arch == "gemma3";
    // qwen3moe always has experts; llama when `expert_count` is set.
    let experts = arch == "qwen3moe" || extra.iter().any(|(k, _)| k.ends_with(".expert_count"));
    if experts {
        for (k, v) in [("expert_count", NX), ("expert_used_count", 2), ("expert_feed_forward_length", FX)] {
            if !extra.iter().any(|(e, _)| e.ends_with(k)) {
                m.set(format!("{arch}.{k}"), MetaValue::U32(v as u32));
            }
        }
    }
    let ff = if arch == "llama" { FF } else { FX };
    let mut shapes: Vec<(String, Vec<u64>)> =
        vec![("token_embd.weight".into(), vec![E, V]), ("output_norm.weight".into(), vec![E])];
    for i in 0..layers {
        let p = |s: &str| format!("blk.{i}.{s}.weight");
        shapes.extend([(p("attn_norm"), vec![E]), (p("attn_output"), vec![NH * HD, E]), (p("ffn_norm"), vec![E])]);
        if phi3 {
            shapes.push((p("attn_qkv"), vec![E, NH * HD + 2 * HD]));
        } else {
            shapes.extend([(p("attn_q"), vec![E, NH * HD]), (p("attn_k"), vec![E, HD]), (p("attn_v"), vec![E, HD])]);
        }
        if phi3 {
            shapes.extend([(p("ffn_up"), vec![E, 2 * FF]), (p("ffn_down"), vec![FF, E])]);
        } else if experts {
            shapes.extend([
                (p("ffn_gate_inp"), vec![E, NX]),
                (p("ffn_gate_exps"), vec![E, ff, NX]),
                (p("ffn_up_exps"), vec![E, ff, NX]),
                (p("ffn_down_exps"), vec![ff, E, NX]),
            ]);
        } else {
            shapes.extend([(p("ffn_gate"), vec![E, FF]), (p("ffn_up"), vec![E, FF]), (p("ffn_down"), vec![FF, E])]);
        }
        if qk_norm {
            shapes.extend([(p("attn_q_norm"), vec![HD]), (p("attn_k_norm"), vec![HD])]);
        }
        if gemma {
            shapes.extend([(p("post_attention_norm"), vec![E]), (p("post_ffw_norm"), vec![E])]);
        }
    }
    shapes.retain(|(n, _)| n != drop);
    let specs: Vec<TensorSpec> =
        shapes.iter().map(|(n, s)| TensorSpec { name: n.clone(), shape: s.clone(), ty: GgmlType::F32 }).collect();
    let path = dir.join(format!("{arch}.gguf"));
    let mut w = GgufWriter::create(&path, &m, &specs, 32).unwrap();
    for (i, (name, s)) in shapes.iter().enumerate() {
        let n: u64 = s.iter().product();
        let norm = name.contains("norm");
        let bytes: Vec<u8> = common::uniform01(i as u64 + 1, n as usize)
            .map(|u| if norm { 0.8 + 0.4 * u } else { (u - 0.5) * 0.6 })
            .flat_map(|v| v.to_le_bytes())
            .collect();
        w.write_tensor(&bytes).unwrap();
    }
    w.finish().unwrap();
    path
}

fn open_err(p: &Path) -> String {
    match LlamaModel::open(p) {
        Ok(_) => panic!("{} opened", p.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_architecture_runs() {
    let dir = common::tempdir();
    for spec in ARCHITECTURES {
        let p = tiny(dir.path(), spec.name, 7, "", &[]);
        let m = LlamaModel::open(&p).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        assert_eq!(m.hp.spec.name, spec.name);
        let per_layer = match (m.hp.n_expert > 0, spec.fused_qkv) {
            (true, _) => 8,
            (false, true) => 4,
            (false, false) => 7,
        };
        assert_eq!(m.matrices().len(), 1 + 7 * per_layer, "{}", spec.name);
        let mut cache = m.new_cache(64);
        let tokens: Vec<u32> = (0..50).map(|i| (i * 7 % V) as u32).collect();
        let logits = m.forward(&tokens, &mut cache, 0).unwrap();
        assert_eq!(logits.len(), 50 * V as usize);
        assert!(logits.iter().all(|l| l.is_finite()), "{}", spec.name);
        // Batched and one token at a time agree closely.
        let mut cache = m.new_cache(64);
        let mut last = Vec::new();
        for &t in &tokens {
            last = m.forward(&[t], &mut cache, 0).unwrap();
        }
        let batched = &logits[49 * V as usize..];
        for (a, b) in last.iter().zip(batched) {
            assert!((a - b).abs() < 1e-2 * b.abs().max(1.0), "{}: {a} vs {b}", spec.name);
        }
    }
}

#[test]
fn sliding_window_layers_follow_the_pattern() {
    let dir = common::tempdir();
    let w = |n: u32| ("ARCH.attention.sliding_window", MetaValue::U32(n));
    // A window of 4 positions against all of them: only the local layers see less.
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let local = tiny(&da, "gemma3", 7, "", &[w(4)]);
    let m = LlamaModel::open(&local).unwrap();
    assert_eq!(m.hp.n_swa, 4);
    let tokens: Vec<u32> = (0..30).map(|i| (i * 11 % V) as u32).collect();
    let a = m.forward(&tokens, &mut m.new_cache(32), 0).unwrap();
    let wide = tiny(&db, "gemma3", 7, "", &[w(1000)]);
    let m2 = LlamaModel::open(&wide).unwrap();
    let b = m2.forward(&tokens, &mut m2.new_cache(32), 0).unwrap();
    // The first 4 positions see the same keys either way.
    let v = V as usize;
    assert_eq!(a[..4 * v], b[..4 * v]);
    assert_ne!(a[20 * v..21 * v], b[20 * v..21 * v]);
}

#[test]
fn missing_tensors_are_named() {
    let dir = common::tempdir();
    for (arch, t) in [
        ("qwen3", "blk.0.attn_k_norm.weight"),
        ("gemma3", "blk.1.post_ffw_norm.weight"),
        ("gemma3", "blk.0.attn_q_norm.weight"),
        ("gemma2", "blk.0.post_attention_norm.weight"),
        ("phi3", "blk.0.ffn_up.weight"),
        // Without the fused matrix phi3 reads separate ones, as llama.cpp does.
        ("phi3", "blk.1.attn_qkv.weight"),
    ] {
        let e = open_err(&tiny(dir.path(), arch, 2, t, &[]));
        let t = t.replace("attn_qkv", "attn_q");
        assert!(e.contains(&t) && e.contains("missing"), "{arch}: {e}");
    }
}

/// Architecture, metadata to set, the key the error must name.
type Case = (&'static str, Vec<(&'static str, MetaValue)>, &'static str);

#[test]
fn bad_settings_are_named() {
    let dir = common::tempdir();
    let w = ("ARCH.attention.sliding_window", MetaValue::U32(8));
    let cases: Vec<Case> = vec![
        ("gemma2", vec![("ARCH.attn_logit_softcapping", MetaValue::F32(f32::NAN))], "gemma2.attn_logit_softcapping"),
        ("gemma2", vec![("ARCH.final_logit_softcapping", MetaValue::F32(-3.0))], "gemma2.final_logit_softcapping"),
        // Read only when the model has sliding-window layers (as llama.cpp does).
        ("gemma3", vec![w.clone(), ("ARCH.rope.freq_base_swa", MetaValue::F32(0.0))], "gemma3.rope.freq_base_swa"),
        (
            "gemma3",
            vec![("ARCH.attention.sliding_window", MetaValue::String("wide".into()))],
            "gemma3.attention.sliding_window",
        ),
        (
            "gemma2",
            vec![(
                "ARCH.attention.sliding_window_pattern",
                MetaValue::Array(MetaType::Bool, vec![MetaValue::Bool(true), MetaValue::Bool(false)]),
            )],
            "gemma2.attention.sliding_window_pattern",
        ),
    ];
    for (arch, kv, key) in cases {
        let e = open_err(&tiny(dir.path(), arch, 2, "", &kv));
        assert!(e.contains(key), "{arch}: {e}");
    }
    // The attention factor multiplies RoPE's cos and sin for every architecture.
    let e = open_err(&tiny(dir.path(), "qwen3", 2, "", &[("ARCH.rope.scaling.attn_factor", MetaValue::F32(f32::NAN))]));
    assert!(e.contains("qwen3.rope.scaling.attn_factor"), "{e}");
}

#[test]
fn unknown_architecture_names_the_supported_ones() {
    let dir = common::tempdir();
    let e = open_err(&tiny(dir.path(), "phi2", 1, "", &[]));
    assert!(e.contains("`phi2`") && e.contains("not supported"), "{e}");
    for spec in ARCHITECTURES {
        assert!(e.contains(spec.name), "{e}");
    }
}

#[test]
fn llama_with_experts_is_mixtral_style() {
    let dir = common::tempdir();
    let p = tiny(dir.path(), "llama", 2, "", &[("ARCH.expert_count", MetaValue::U32(NX as u32))]);
    let m = LlamaModel::open(&p).unwrap();
    assert_eq!((m.hp.n_expert, m.hp.n_expert_used, m.hp.n_ff_exp), (NX as usize, 2, FF as usize));
    let names: Vec<&str> = m.matrices().iter().map(|(n, _)| *n).collect();
    for t in ["blk.1.ffn_gate_inp.weight", "blk.1.ffn_gate_exps.weight", "blk.1.ffn_down_exps.weight"] {
        assert!(names.contains(&t), "{names:?}");
        assert_eq!(m.first_layer_reading(t), Some(1));
    }
    let logits = m.forward(&[1, 2, 3, 4, 5], &mut m.new_cache(8), 0).unwrap();
    assert!(logits.iter().all(|l| l.is_finite()));
    // Without the count the same llama layout is dense.
    let dense = tiny(dir.path(), "llama", 2, "", &[]);
    assert_eq!(LlamaModel::open(&dense).unwrap().hp.n_expert, 0);
}

/// Architecture, tensor to drop, metadata to set, what the error must say.
type MoeCase = (&'static str, &'static str, Vec<(&'static str, MetaValue)>, &'static [&'static str]);

#[test]
fn moe_errors_are_named() {
    let dir = common::tempdir();
    let cases: Vec<MoeCase> = vec![
        ("qwen3moe", "blk.1.ffn_gate_exps.weight", vec![], &["blk.1.ffn_gate_exps.weight", "missing"]),
        ("qwen3moe", "blk.0.ffn_gate_inp.weight", vec![], &["blk.0.ffn_gate_inp.weight", "missing"]),
        ("qwen3moe", "blk.0.ffn_down_exps.weight", vec![], &["blk.0.ffn_down_exps.weight", "missing"]),
        ("qwen3moe", "", vec![("ARCH.expert_used_count", MetaValue::U32(5))], &["qwen3moe.expert_used_count"]),
        ("qwen3moe", "", vec![("ARCH.expert_count", MetaValue::U32(0))], &["qwen3moe.expert_count", "missing or zero"]),
        (
            "qwen3moe",
            "",
            vec![("ARCH.expert_feed_forward_length", MetaValue::U32(16))],
            &["blk.0.ffn_gate_exps.weight", "shape", "[32, 16, 4]"],
        ),
        (
            "qwen3moe",
            "",
            vec![(
                "ARCH.expert_used_count",
                MetaValue::Array(MetaType::U32, vec![MetaValue::U32(2), MetaValue::U32(2)]),
            )],
            &["qwen3moe.expert_used_count", "one count"],
        ),
        // The expert tensors are there, the count says dense.
        ("llama", "", vec![("ARCH.expert_count", MetaValue::U32(0))], &["blk.0.ffn_gate.weight", "expert tensors"]),
        (
            "llama",
            "blk.0.ffn_up_exps.weight",
            vec![("ARCH.expert_count", MetaValue::U32(NX as u32))],
            &["blk.0.ffn_up_exps.weight", "missing"],
        ),
    ];
    for (arch, drop, kv, want) in cases {
        let e = open_err(&tiny(dir.path(), arch, 2, drop, &kv));
        for w in want {
            assert!(e.contains(w), "{arch} without {drop:?}, {kv:?}: {e}");
        }
    }
}
