//! Hugging Face ↔ GGUF: SmolLM2 exported to an HF directory and converted
//! back gives the same weights and metadata; a generated sharded BF16/F16
//! checkpoint converts as llama.cpp's converter would; malformed safetensors
//! files give their specific errors.

mod common;

use std::collections::HashMap;
use std::path::Path;

use quantmix::convert::names::permute_qk_rows;
use quantmix::convert::{
    convert_hf, export_hf, ConvertError, ExportDtype, ExportOptions, HfConvertOptions, OutType, SafetensorsModel,
};
use quantmix::gguf::{GgmlType, GgufFile, MetaValue};

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn dequant(g: &GgufFile, name: &str) -> Vec<f32> {
    let t = g.tensor(name).unwrap();
    let mut v = vec![0f32; t.n_elements() as usize];
    quantmix::quant::dequantize_rows(t.ty, g.tensor_data(t), t.row_len() as usize, &mut v).unwrap();
    v
}

/// Keys whose values legitimately differ between the SmolLM2 GGUF and our
/// conversion of its export, and why.
const DIFFERING: &[(&str, &str)] = &[("general.file_type", "the source is Q4_1 (3); the re-conversion is F32 (0)")];
/// Keys we write that the SmolLM2 file lacks: it was made by an older
/// converter, before gguf-py set add_eos_token from a ByteLevel post-processor.
const ADDED: &[&str] = &["tokenizer.ggml.add_eos_token"];

#[test]
fn smollm2_export_and_convert_back() {
    let Some(src) = common::smollm2() else { return };
    let dir = common::tempdir();
    let hf = dir.path().join("hf");
    let rep = export_hf(&src, &hf, &ExportOptions { dtype: ExportDtype::F32 }).unwrap();
    assert_eq!(rep.n_tensors, 272);
    assert_eq!(rep.dequantized, 211, "210 Q4_1 + 1 Q8_0 tensors");
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"] {
        assert!(hf.join(f).is_file(), "{f} missing");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&hf)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(hf.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["tie_word_embeddings"], true);
    assert_eq!(cfg["num_key_value_heads"], 3);
    // No output.weight in SmolLM2 (tied), so no lm_head in the export.
    let st = SafetensorsModel::open(hf.join("model.safetensors")).unwrap();
    assert!(st.tensor("lm_head.weight").is_none());
    assert_eq!(st.tensor("model.layers.0.self_attn.k_proj.weight").unwrap().shape, vec![192, 576]);

    let out = dir.path().join("back.gguf");
    let r =
        convert_hf(&hf, &out, &HfConvertOptions { outtype: OutType::F32, tokenizer_pre: None, cancel: None }).unwrap();
    // The pre-tokenizer is found by the converter's own method: the hash of
    // the check text encoded by our exported tokenizer.json.
    assert_eq!(r.tokenizer_pre, "smollm");
    let a = GgufFile::open(&src).unwrap();
    let b = GgufFile::open(&out).unwrap();

    // Weights: exactly the dequantized source values (Q/K permutation undone
    // by the export and redone by the conversion).
    assert_eq!(a.tensors().len(), b.tensors().len());
    for t in a.tensors() {
        let u = b.tensor(&t.name).unwrap_or_else(|| panic!("{} missing", t.name));
        assert_eq!(u.shape, t.shape, "{}", t.name);
        assert_eq!(u.ty, GgmlType::F32, "{}", t.name);
        let (x, y) = (dequant(&a, &t.name), f32s(b.tensor_data(u)));
        assert!(x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()), "{} values differ", t.name);
    }

    // Metadata.
    let am: HashMap<&str, &MetaValue> = a.metadata().iter().collect();
    let bm: HashMap<&str, &MetaValue> = b.metadata().iter().collect();
    for (k, v) in &am {
        if DIFFERING.iter().any(|(d, _)| d == k) {
            continue;
        }
        assert_eq!(bm.get(k), Some(v), "metadata {k} differs");
    }
    for k in bm.keys() {
        assert!(am.contains_key(k) || ADDED.contains(k), "unexpected key {k}");
    }
    assert_eq!(bm["general.file_type"], &MetaValue::U32(0));
    assert_eq!(bm["tokenizer.ggml.add_eos_token"], &MetaValue::Bool(false));
}

/// Minimum top-1 agreement between the Q4_1 original and the F16 conversion.
const TOP1_MIN: f64 = 0.95;

#[test]
fn smollm2_f16_conversion_is_what_numpy_rounding_gives() {
    let Some(src) = common::smollm2() else { return };
    let dir = common::tempdir();
    let hf = dir.path().join("hf");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_quantmix"))
        .arg("export-hf")
        .arg(&src)
        .arg("-o")
        .arg(&hf)
        .args(["--dtype", "f32"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("f16.gguf");
    // auto on an all-F32 checkpoint falls back to F16, as the converter does.
    let r = convert_hf(&hf, &out, &HfConvertOptions::default()).unwrap();
    assert_eq!(r.outtype, GgmlType::F16);
    let a = GgufFile::open(&src).unwrap();
    let b = GgufFile::open(&out).unwrap();
    assert_eq!(b.metadata().get_u64("general.file_type"), Some(1));
    for t in a.tensors() {
        let u = b.tensor(&t.name).unwrap();
        let want_ty = if t.shape.len() == 1 { GgmlType::F32 } else { GgmlType::F16 };
        assert_eq!(u.ty, want_ty, "{}", t.name);
        if u.ty == GgmlType::F16 {
            let x = dequant(&a, &t.name);
            let y = b.tensor_data(u);
            for (i, (p, q)) in x.iter().zip(y.chunks_exact(2)).enumerate() {
                let q = u16::from_le_bytes([q[0], q[1]]);
                assert_eq!(half::f16::from_f32(*p).to_bits(), q, "{}[{i}]", t.name);
            }
        }
    }

    // llama.cpp loads and runs the conversion: same token ids from the
    // rebuilt tokenizer metadata, and next-token predictions that agree with
    // the Q4_1 original (whose matmuls also quantize activations, so not
    // bit-identical).
    let Some(py) = common::python() else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/hf_roundtrip_check.py");
    let o = std::process::Command::new(py).arg(script).arg(&src).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8_lossy(&o.stdout);
    eprintln!("llama.cpp check: {line}");
    let v: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap()).unwrap();
    assert_eq!(v["same_tokens"], true, "{line}");
    assert!(v["n_tokens"].as_u64().unwrap() > 30, "{line}");
    assert!(v["top1_agree"].as_f64().unwrap() >= TOP1_MIN, "{line}");
}

// ---------------------------------------------------------------- fixture

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// A tiny byte-level BPE tokenizer.json: the 256 byte symbols, a few merges,
/// two special tokens.
fn tiny_tokenizer() -> serde_json::Value {
    // GPT-2's byte → unicode table.
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut pairs: Vec<(u32, u32)> = bs.into_iter().zip(cs).collect();
    pairs.sort();
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|endoftext|>".into(), 0.into());
    vocab.insert("<|im_start|>".into(), 1.into());
    for (i, (_, c)) in pairs.iter().enumerate() {
        vocab.insert(char::from_u32(*c).unwrap().to_string(), (i + 2).into());
    }
    let merges = ["Ġ t", "h e", "Ġt he"];
    for (id, m) in (258..).zip(merges) {
        vocab.insert(m.replace(' ', ""), id.into());
    }
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [
            {"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<|im_start|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    })
}

const N_EMBD: usize = 64;
const N_HEAD: usize = 4;
const N_KV: usize = 2;
const N_FF: usize = 96;
const N_VOCAB: usize = 261;

/// Write a 2-layer llama checkpoint in two shards: BF16 attention and
/// embeddings in shard 1, F16 MLP and F32 norms in shard 2.
/// Name, dtype, shape, bytes of one tensor to write.
type RawTensor = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

fn write_tiny_checkpoint(dir: &Path) -> HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<f32>)> {
    write_tiny(dir, false)
}

/// `qwen2`: Qwen2ForCausalLM with Q/K/V biases (and no permutation).
fn write_tiny(dir: &Path, qwen2: bool) -> HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<f32>)> {
    use safetensors::Dtype as D;
    let mut rng = Rng(42);
    let mut specs: Vec<(String, D, Vec<usize>)> =
        vec![("model.embed_tokens.weight".into(), D::BF16, vec![N_VOCAB, N_EMBD])];
    for l in 0..2 {
        let p = format!("model.layers.{l}.");
        specs.push((format!("{p}self_attn.q_proj.weight"), D::BF16, vec![N_EMBD, N_EMBD]));
        specs.push((format!("{p}self_attn.k_proj.weight"), D::BF16, vec![N_KV * N_EMBD / N_HEAD, N_EMBD]));
        specs.push((format!("{p}self_attn.v_proj.weight"), D::BF16, vec![N_KV * N_EMBD / N_HEAD, N_EMBD]));
        specs.push((format!("{p}self_attn.o_proj.weight"), D::BF16, vec![N_EMBD, N_EMBD]));
        if qwen2 {
            specs.push((format!("{p}self_attn.q_proj.bias"), D::BF16, vec![N_EMBD]));
            specs.push((format!("{p}self_attn.k_proj.bias"), D::BF16, vec![N_KV * N_EMBD / N_HEAD]));
            specs.push((format!("{p}self_attn.v_proj.bias"), D::BF16, vec![N_KV * N_EMBD / N_HEAD]));
        }
        specs.push((format!("{p}mlp.gate_proj.weight"), D::F16, vec![N_FF, N_EMBD]));
        specs.push((format!("{p}mlp.up_proj.weight"), D::F16, vec![N_FF, N_EMBD]));
        specs.push((format!("{p}mlp.down_proj.weight"), D::F16, vec![N_EMBD, N_FF]));
        specs.push((format!("{p}input_layernorm.weight"), D::F32, vec![N_EMBD]));
        specs.push((format!("{p}post_attention_layernorm.weight"), D::F32, vec![N_EMBD]));
    }
    specs.push(("model.norm.weight".into(), D::F32, vec![N_EMBD]));
    let mut values = HashMap::new();
    let mut shards: [Vec<RawTensor>; 2] = [Vec::new(), Vec::new()];
    for (name, dt, shape) in specs {
        let n: usize = shape.iter().product();
        let raw: Vec<f32> = (0..n).map(|_| rng.next()).collect();
        let (bytes, exact): (Vec<u8>, Vec<f32>) = match dt {
            D::BF16 => {
                let h: Vec<half::bf16> = raw.iter().map(|&x| half::bf16::from_f32(x)).collect();
                (h.iter().flat_map(|x| x.to_le_bytes()).collect(), h.iter().map(|x| x.to_f32()).collect())
            }
            D::F16 => {
                let h: Vec<half::f16> = raw.iter().map(|&x| half::f16::from_f32(x)).collect();
                (h.iter().flat_map(|x| x.to_le_bytes()).collect(), h.iter().map(|x| x.to_f32()).collect())
            }
            _ => (raw.iter().flat_map(|x| x.to_le_bytes()).collect(), raw.clone()),
        };
        let shard = usize::from(dt != D::BF16);
        values.insert(name.clone(), (dt, shape.clone(), exact));
        shards[shard].push((name, dt, shape, bytes));
    }
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let views: Vec<(String, safetensors::tensor::TensorView)> = shard
            .iter()
            .map(|(n, dt, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*dt, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, &None, &dir.join(&file)).unwrap();
        for (n, ..) in shard {
            weight_map.insert(n.clone(), file.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let config = serde_json::json!({
        "architectures": [if qwen2 { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
        "model_type": if qwen2 { "qwen2" } else { "llama" },
        "hidden_size": N_EMBD, "intermediate_size": N_FF, "num_hidden_layers": 2,
        "num_attention_heads": N_HEAD, "num_key_value_heads": N_KV, "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": N_VOCAB, "tie_word_embeddings": true,
        "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "bfloat16"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tiny_tokenizer().to_string()).unwrap();
    let tc = serde_json::json!({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                                "chat_template": "{{ messages }}", "tokenizer_class": "GPT2Tokenizer"});
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).unwrap();
    values
}

#[test]
fn sharded_bf16_f16_checkpoint_converts() {
    let dir = common::tempdir();
    let hf = dir.path().join("Tiny-Llama-v0.1");
    std::fs::create_dir(&hf).unwrap();
    let values = write_tiny_checkpoint(&hf);

    let st = SafetensorsModel::open(&hf).unwrap();
    assert_eq!(st.paths().len(), 2);
    assert_eq!(st.tensors().len(), values.len());

    // An unknown tokenizer is an error that says how to proceed.
    let out = dir.path().join("tiny.gguf");
    let e = convert_hf(&hf, &out, &HfConvertOptions::default()).unwrap_err().to_string();
    assert!(e.contains("not recognised") && e.contains("--tokenizer-pre"), "{e}");
    assert!(!out.exists());

    let opts = HfConvertOptions { outtype: OutType::Auto, tokenizer_pre: Some("gpt-2".into()), cancel: None };
    let r = convert_hf(&hf, &out, &opts).unwrap();
    // auto: the first 2-D F16/BF16 tensor in shard order is the BF16 embedding.
    assert_eq!(r.outtype, GgmlType::BF16);
    let g = GgufFile::open(&out).unwrap();
    let m = g.metadata();
    assert_eq!(m.get_str("general.architecture"), Some("llama"));
    assert_eq!(m.get_str("general.name"), Some("Tiny Llama v0.1"));
    assert_eq!(m.get_u64("general.file_type"), Some(32));
    for (k, v) in [
        ("llama.block_count", 2),
        ("llama.context_length", 256),
        ("llama.embedding_length", N_EMBD as u64),
        ("llama.feed_forward_length", N_FF as u64),
        ("llama.attention.head_count", N_HEAD as u64),
        ("llama.attention.head_count_kv", N_KV as u64),
        ("llama.vocab_size", N_VOCAB as u64),
        ("llama.rope.dimension_count", (N_EMBD / N_HEAD) as u64),
        ("tokenizer.ggml.bos_token_id", 0),
    ] {
        assert_eq!(m.get_u64(k), Some(v), "{k}");
    }
    assert_eq!(m.get("llama.attention.layer_norm_rms_epsilon"), Some(&MetaValue::F32(1e-5)));
    assert_eq!(m.get("llama.rope.freq_base"), Some(&MetaValue::F32(10000.0)));
    assert_eq!(m.get_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(m.get_str("tokenizer.ggml.pre"), Some("gpt-2"));
    assert_eq!(m.get_str("tokenizer.chat_template"), Some("{{ messages }}"));
    let toks = m.get("tokenizer.ggml.tokens").unwrap().as_array().unwrap();
    assert_eq!(toks.len(), N_VOCAB);
    assert_eq!(toks[0].as_str(), Some("<|endoftext|>"));
    let types = m.get("tokenizer.ggml.token_type").unwrap().as_array().unwrap();
    assert_eq!((&types[1], &types[2]), (&MetaValue::I32(3), &MetaValue::I32(1)));
    assert_eq!(m.get("tokenizer.ggml.merges").unwrap().as_array().unwrap().len(), 3);
    let names: Vec<&str> = m.iter().map(|(k, _)| k).collect();
    let pos = |k: &str| names.iter().position(|x| *x == k).unwrap();
    assert!(pos("general.architecture") < pos("llama.block_count"));
    assert!(pos("general.file_type") < pos("llama.vocab_size"));
    assert!(pos("general.quantization_version") < pos("tokenizer.ggml.model"));

    // Tied: no output tensor. Types, shapes and values.
    assert!(g.tensor("output.weight").is_none());
    assert_eq!(g.tensors().len(), values.len());
    for (hf_name, (dt, shape, vals)) in &values {
        let (gname, _) = quantmix::convert::names::hf_to_gguf(hf_name, 2).unwrap();
        let t = g.tensor(&gname).unwrap();
        let ggml_shape: Vec<u64> = shape.iter().rev().map(|&d| d as u64).collect();
        assert_eq!(t.shape, ggml_shape, "{gname}");
        let want_ty = if shape.len() == 1 { GgmlType::F32 } else { GgmlType::BF16 };
        assert_eq!(t.ty, want_ty, "{gname}");
        let mut expect = vals.clone();
        if hf_name.contains("q_proj") {
            expect = permute_qk_rows(&expect, N_EMBD, N_HEAD, false);
        } else if hf_name.contains("k_proj") {
            expect = permute_qk_rows(&expect, N_EMBD, N_KV, false);
        }
        let got: Vec<f32> = match t.ty {
            GgmlType::F32 => f32s(g.tensor_data(t)),
            _ => g
                .tensor_data(t)
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
        };
        if *dt == safetensors::Dtype::F16 {
            // F16 → BF16 rounds (to nearest even) from the exact F16 value.
            let r: Vec<f32> = expect.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect();
            assert_eq!(got, r, "{gname}");
        } else {
            assert_eq!(got, expect, "{gname}");
        }
    }
    // The permutation moved rows: row 1 of the GGUF q is HF row head_dim/2.
    let q = g.tensor("blk.0.attn_q.weight").unwrap();
    let row = |d: &[u8], r: usize| d[r * N_EMBD * 2..(r + 1) * N_EMBD * 2].to_vec();
    let hf_q = &values["model.layers.0.self_attn.q_proj.weight"].2;
    let want: Vec<u8> =
        hf_q[8 * N_EMBD..9 * N_EMBD].iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect();
    assert_eq!(row(g.tensor_data(q), 1), want);

    // The command line: `inspect` lists the checkpoint, `convert` writes the
    // same file as the library call.
    let bin = env!("CARGO_BIN_EXE_quantmix");
    let o = std::process::Command::new(bin).args(["inspect", "--json"]).arg(&hf).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = v["tensors"].as_array().unwrap();
    assert_eq!(items.len(), values.len());
    let emb = items.iter().find(|t| t["name"] == "model.embed_tokens.weight").unwrap();
    assert_eq!(emb["shape"], serde_json::json!([N_EMBD, N_VOCAB]));
    assert_eq!(emb["type"], "BF16");
    assert_eq!(emb["bytes"], (N_EMBD * N_VOCAB * 2) as u64);
    let o = std::process::Command::new(bin)
        .arg("inspect")
        .arg(hf.join("model-00002-of-00002.safetensors"))
        .output()
        .unwrap();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("model.norm.weight"));
    let cli_out = dir.path().join("cli.gguf");
    let o = std::process::Command::new(bin)
        .arg("convert")
        .arg(&hf)
        .arg("-o")
        .arg(&cli_out)
        .args(["--tokenizer-pre", "gpt-2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&cli_out).unwrap() == std::fs::read(&out).unwrap(), "CLI and library outputs differ");

    // --outtype f32 keeps every value exactly.
    let out32 = dir.path().join("tiny32.gguf");
    convert_hf(
        &hf,
        &out32,
        &HfConvertOptions { outtype: OutType::F32, tokenizer_pre: Some("gpt-2".into()), cancel: None },
    )
    .unwrap();
    let g32 = GgufFile::open(&out32).unwrap();
    assert!(g32.tensors().iter().all(|t| t.ty == GgmlType::F32));
    let e = &values["model.layers.1.mlp.down_proj.weight"].2;
    assert_eq!(&f32s(g32.tensor_data(g32.tensor("blk.1.ffn_down.weight").unwrap())), e);
}

// ---------------------------------------------------------------- errors

fn one_tensor_file(path: &Path, dtype: &str, shape: &[usize], offsets: (usize, usize), data_len: usize) {
    let header =
        serde_json::json!({"w": {"dtype": dtype, "shape": shape, "data_offsets": [offsets.0, offsets.1]}}).to_string();
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend(vec![0u8; data_len]);
    std::fs::write(path, b).unwrap();
}

fn open_err(path: &Path) -> (ConvertError, String) {
    let e = SafetensorsModel::open(path).unwrap_err();
    let s = e.to_string();
    assert!(s.contains(&path.display().to_string()), "error does not name the file: {s}");
    (e, s)
}

#[test]
fn malformed_safetensors_errors() {
    let dir = common::tempdir();
    let p = dir.path().join("x.safetensors");

    // Offsets past the end of the file.
    one_tensor_file(&p, "F32", &[4], (0, 16), 8);
    let (e, s) = open_err(&p);
    assert!(matches!(e, ConvertError::BadTensor { .. }), "{s}");
    assert!(s.contains("tensor `w`") && s.contains("end past the end of the file") && s.contains("byte offset"), "{s}");

    // A truncated file: valid header, data cut short.
    one_tensor_file(&p, "F32", &[4], (0, 16), 16);
    let full = std::fs::read(&p).unwrap();
    std::fs::write(&p, &full[..full.len() - 5]).unwrap();
    let (_, s) = open_err(&p);
    assert!(s.contains("tensor `w`") && s.contains("end past the end"), "{s}");
    // Truncated inside the header.
    std::fs::write(&p, &full[..20]).unwrap();
    let (e, s) = open_err(&p);
    assert!(matches!(e, ConvertError::BadHeader { offset: 0, .. }) && s.contains("exceeds"), "{s}");
    std::fs::write(&p, &full[..5]).unwrap();
    let (_, s) = open_err(&p);
    assert!(s.contains("8-byte header length"), "{s}");

    // Shape × dtype size ≠ byte length.
    one_tensor_file(&p, "F16", &[4], (0, 16), 16);
    let (_, s) = open_err(&p);
    assert!(s.contains("needs 8 bytes") && s.contains("hold 16"), "{s}");

    // Unknown dtype name; bad JSON.
    one_tensor_file(&p, "Q4", &[4], (0, 4), 4);
    let (_, s) = open_err(&p);
    assert!(s.contains("unknown dtype `Q4`"), "{s}");
    let mut b = 9u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{\"w\": 3,}");
    std::fs::write(&p, b).unwrap();
    let (e, s) = open_err(&p);
    assert!(matches!(e, ConvertError::BadHeader { .. }) && s.contains("header"), "{s}");

    // Unsupported dtype: readable for inspection, rejected for conversion
    // with the file, the tensor, the dtype and the data offset.
    let hf = dir.path().join("m");
    std::fs::create_dir(&hf).unwrap();
    write_tiny_checkpoint(&hf);
    let shard = hf.join("model-00002-of-00002.safetensors");
    let st = SafetensorsModel::open(&shard).unwrap();
    let mut views: Vec<RawTensor> = st
        .tensors()
        .iter()
        .map(|t| {
            let dt = match t.dtype {
                quantmix::convert::Dtype::F32 => safetensors::Dtype::F32,
                _ => safetensors::Dtype::F16,
            };
            (t.name.clone(), dt, t.shape.iter().map(|&d| d as usize).collect(), st.bytes(t).to_vec())
        })
        .collect();
    let i = views.iter().position(|v| v.0 == "model.norm.weight").unwrap();
    views[i].1 = safetensors::Dtype::I32;
    drop(st);
    let tv: Vec<_> = views
        .iter()
        .map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(tv, &None, &shard).unwrap();
    let st = SafetensorsModel::open(&hf).unwrap();
    assert_eq!(st.tensor("model.norm.weight").unwrap().dtype.name(), "I32");
    let out = dir.path().join("never.gguf");
    let e = convert_hf(
        &hf,
        &out,
        &HfConvertOptions { outtype: OutType::Auto, tokenizer_pre: Some("gpt-2".into()), cancel: None },
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(matches!(e, ConvertError::UnsupportedDtype { .. }), "{s}");
    assert!(
        s.contains("model-00002-of-00002.safetensors") && s.contains("model.norm.weight") && s.contains("I32"),
        "{s}"
    );
    assert!(s.contains("byte offset"), "{s}");
    assert!(!out.exists());

    // A shard listed in the index but missing.
    std::fs::remove_file(&shard).unwrap();
    let (e, s) = open_err(&hf.join("model.safetensors.index.json"));
    assert!(matches!(e, ConvertError::BadIndex { .. }) && s.contains("missing"), "{s}");
}

#[test]
fn qwen2_with_biases_converts_and_round_trips_exactly() {
    let dir = common::tempdir();
    let hf = dir.path().join("tiny-qwen");
    std::fs::create_dir(&hf).unwrap();
    let values = write_tiny(&hf, true);
    let out = dir.path().join("q.gguf");
    let opts = HfConvertOptions { outtype: OutType::Auto, tokenizer_pre: Some("qwen2".into()), cancel: None };
    convert_hf(&hf, &out, &opts).unwrap();
    let g = GgufFile::open(&out).unwrap();
    let m = g.metadata();
    assert_eq!(m.get_str("general.architecture"), Some("qwen2"));
    assert_eq!(m.get_u64("qwen2.attention.head_count_kv"), Some(N_KV as u64));
    // Qwen2Model writes neither vocab_size nor rope.dimension_count.
    assert!(m.get("qwen2.vocab_size").is_none() && m.get("qwen2.rope.dimension_count").is_none());
    // Biases are F32 and nothing is permuted.
    let b = g.tensor("blk.1.attn_k.bias").unwrap();
    assert_eq!(b.ty, GgmlType::F32);
    assert_eq!(f32s(g.tensor_data(b)), values["model.layers.1.self_attn.k_proj.bias"].2);
    let q = g.tensor("blk.0.attn_q.weight").unwrap();
    let want: Vec<u8> = values["model.layers.0.self_attn.q_proj.weight"]
        .2
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    assert!(g.tensor_data(q) == want.as_slice());

    // GGUF → HF (auto keeps BF16 bits) → GGUF gives byte-identical tensors
    // and the same metadata.
    let back_dir = dir.path().join("exported");
    export_hf(&out, &back_dir, &ExportOptions::default()).unwrap();
    let out2 = dir.path().join("q2.gguf");
    convert_hf(&back_dir, &out2, &opts).unwrap();
    let g2 = GgufFile::open(&out2).unwrap();
    let a: HashMap<&str, &MetaValue> = g.metadata().iter().collect();
    let b: HashMap<&str, &MetaValue> = g2.metadata().iter().collect();
    assert_eq!(a, b);
    assert_eq!(g.tensors().len(), g2.tensors().len());
    for t in g.tensors() {
        let u = g2.tensor(&t.name).unwrap();
        assert_eq!((&u.shape, u.ty), (&t.shape, t.ty), "{}", t.name);
        assert!(g.tensor_data(t) == g2.tensor_data(u), "{} bytes differ", t.name);
    }
}
