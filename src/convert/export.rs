//! GGUF (llama / qwen2) → Hugging Face directory: the inverse of [`super::hf`].
//!
//! Writes `config.json`, `model.safetensors` (weights dequantized when the
//! source is quantized, Q/K rows un-permuted, HF names), `tokenizer.json`,
//! `tokenizer_config.json` and a `README.md` whose front matter carries the
//! `general.*` keys the converter reads back. Each file is written to a
//! temporary file in the output directory and renamed into place; tensors
//! are produced one at a time while the safetensors file is streamed.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

use half::{bf16, f16};
use serde_json::{json, Map, Value};

use super::error::{ConvertError, Result};
use super::names::{gguf_to_hf, permute_qk_rows};
use super::tokenizer::hf_tokenizer_from_gguf;
use crate::fsutil::AtomicFile;
use crate::gguf::{GgmlType, GgufFile, MetaValue, TensorInfo};

/// Element type of the exported weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExportDtype {
    /// Lossless: F16 / BF16 tensors stay as they are, everything else F32.
    #[default]
    Auto,
    F32,
    F16,
}

impl std::str::FromStr for ExportDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => ExportDtype::Auto,
            "f32" => ExportDtype::F32,
            "f16" => ExportDtype::F16,
            _ => return Err(format!("unknown dtype `{s}` (auto, f32, f16)")),
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    pub dtype: ExportDtype,
}

/// What [`export_hf`] wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    pub n_tensors: usize,
    pub dequantized: usize,
    pub safetensors_bytes: u64,
}

fn tensor_err(path: &Path, t: &str, msg: impl Into<String>) -> ConvertError {
    ConvertError::Tensor { path: path.to_path_buf(), tensor: t.to_string(), msg: msg.into() }
}

/// A decimal that parses back (as f64, then f32) to exactly `x`.
fn f32_json(x: f32) -> Value {
    let shortest: f64 = format!("{x}").parse().unwrap_or(x as f64);
    serde_json::Number::from_f64(shortest).map(Value::Number).unwrap_or(Value::Null)
}

/// One tensor of the output, converted when the writer asks for its data.
struct Lazy<'a> {
    file: &'a GgufFile,
    info: &'a TensorInfo,
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    permute: Option<usize>,
    error: &'a RefCell<Option<ConvertError>>,
    cancel: &'a crate::job::Cancel,
}

impl Lazy<'_> {
    fn values_f32(&self) -> Result<Vec<f32>> {
        let t = self.info;
        let raw = self.file.tensor_data(t);
        let n = t.n_elements() as usize;
        let mut out = vec![0f32; n];
        crate::quant::dequantize_rows(t.ty, raw, t.row_len() as usize, &mut out).map_err(|e| ConvertError::Quant {
            path: self.file.path().to_path_buf(),
            tensor: t.name.clone(),
            source: e,
        })?;
        Ok(out)
    }

    /// The tensor's bytes, refused when a value is NaN or infinite.
    fn produce(&self) -> Result<Vec<u8>> {
        self.cancel.check()?;
        let bytes = self.encode()?;
        let ty = match self.dtype {
            safetensors::Dtype::F16 => GgmlType::F16,
            safetensors::Dtype::BF16 => GgmlType::BF16,
            _ => GgmlType::F32,
        };
        if let Some(i) = super::checks::first_non_finite(&bytes, ty) {
            let row = self.info.row_len().max(1) as usize;
            return Err(tensor_err(
                self.file.path(),
                &self.info.name,
                format!(
                    "row {}, column {}: the value is NaN or infinite as {ty} (weights must be finite numbers)",
                    i / row,
                    i % row
                ),
            ));
        }
        Ok(bytes)
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let t = self.info;
        let row = t.row_len() as usize;
        // Same 16-bit type in and out: move the bits (after un-permuting).
        let same16 = matches!(
            (t.ty, self.dtype),
            (GgmlType::F16, safetensors::Dtype::F16) | (GgmlType::BF16, safetensors::Dtype::BF16)
        );
        if same16 {
            let bits: Vec<u16> =
                self.file.tensor_data(t).chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            let bits = match self.permute {
                Some(h) => permute_qk_rows(&bits, row, h, true),
                None => bits,
            };
            return Ok(bits.iter().flat_map(|b| b.to_le_bytes()).collect());
        }
        let v = self.values_f32()?;
        let v = match self.permute {
            Some(h) => permute_qk_rows(&v, row, h, true),
            None => v,
        };
        Ok(match self.dtype {
            safetensors::Dtype::F16 => v.iter().flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes()).collect(),
            safetensors::Dtype::BF16 => v.iter().flat_map(|&x| bf16::from_f32(x).to_bits().to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
    }
}

impl safetensors::View for Lazy<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        match self.produce() {
            Ok(v) => Cow::Owned(v),
            Err(e) => {
                // The writer cannot fail from here: remember the error, write
                // filler of the right length, and discard the file afterwards.
                self.error.borrow_mut().get_or_insert(e);
                Cow::Owned(vec![0u8; self.data_len()])
            }
        }
    }
    fn data_len(&self) -> usize {
        let size = match self.dtype {
            safetensors::Dtype::F16 | safetensors::Dtype::BF16 => 2,
            _ => 4,
        };
        self.shape.iter().product::<usize>() * size
    }
}

/// `bytes` in a new file `dir/name`, to be committed with the others.
fn staged(dir: &Path, name: &str, bytes: &[u8]) -> Result<AtomicFile> {
    let path = dir.join(name);
    let mut f = AtomicFile::create(&path).map_err(|e| ConvertError::io(&path, e))?;
    f.write_all(bytes).map_err(|e| ConvertError::io(&path, e))?;
    Ok(f)
}

fn json_bytes(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("JSON values serialize");
    b.push(b'\n');
    b
}

/// README.md front matter with the `general.*` keys llama.cpp's converter reads.
fn model_card(file: &GgufFile) -> String {
    let m = file.metadata();
    let mut s = String::from("---\n");
    let q = |x: &str| serde_json::to_string(x).expect("string");
    for (key, card) in [
        ("general.name", "name"),
        ("general.author", "author"),
        ("general.version", "version"),
        ("general.organization", "organization"),
        ("general.finetune", "finetune"),
        ("general.basename", "basename"),
        ("general.description", "description"),
        ("general.size_label", "size_label"),
        ("general.license", "license"),
        ("general.license.name", "license_name"),
        ("general.license.link", "license_link"),
    ] {
        if let Some(v) = m.get_str(key) {
            s += &format!("{card}: {}\n", q(v));
        }
    }
    for (key, card) in [("general.tags", "tags"), ("general.languages", "language")] {
        if let Some(items) = m.get(key).and_then(MetaValue::as_array) {
            s += &format!("{card}:\n");
            for it in items.iter().filter_map(MetaValue::as_str) {
                s += &format!("- {}\n", q(it));
            }
        }
    }
    s += "---\n\nExported from a GGUF file by `quantmix export-hf`.\n";
    s
}

/// Export a llama / qwen2 GGUF to a Hugging Face model directory `out_dir`
/// (created if missing).
pub fn export_hf(gguf: &Path, out_dir: &Path, opts: &ExportOptions) -> Result<ExportReport> {
    export_hf_with(gguf, out_dir, opts, &crate::job::Cancel::new())
}

/// [`export_hf`], stopping (nothing written) once `cancel` is cancelled.
pub fn export_hf_with(
    gguf: &Path,
    out_dir: &Path,
    opts: &ExportOptions,
    cancel: &crate::job::Cancel,
) -> Result<ExportReport> {
    let existed = out_dir.exists();
    let r = export(gguf, out_dir, opts, cancel);
    if r.is_err() && !existed {
        // Leave no empty directory behind (remove_dir only removes an empty one).
        let _ = std::fs::remove_dir(out_dir);
    }
    r
}

fn export(gguf: &Path, out_dir: &Path, opts: &ExportOptions, cancel: &crate::job::Cancel) -> Result<ExportReport> {
    let file = GgufFile::open(gguf)?;
    let m = file.metadata();
    let cfg_err = |msg: String| ConvertError::BadConfig { path: gguf.to_path_buf(), msg };
    let arch = m.architecture().unwrap_or("").to_string();
    let (hf_arch, model_type, permute) = match arch.as_str() {
        "llama" => ("LlamaForCausalLM", "llama", true),
        "qwen2" => ("Qwen2ForCausalLM", "qwen2", false),
        other => return Err(cfg_err(format!("general.architecture `{other}`: only llama and qwen2 can be exported"))),
    };
    let req = |k: &str| m.arch_u64(k).ok_or_else(|| cfg_err(format!("missing {arch}.{k}")));
    let n_embd = req("embedding_length")?;
    let n_head = req("attention.head_count")?;
    let n_head_kv = m.arch_u64("attention.head_count_kv").unwrap_or(n_head);
    let n_blocks = req("block_count")?;
    crate::model::hparams::check_block_count(m, file.tensors()).map_err(cfg_err)?;
    if n_head == 0 || n_head_kv == 0 {
        return Err(cfg_err("zero attention heads".into()));
    }

    // ---- validate every tensor and plan the output.
    let mut plan: Vec<(String, &TensorInfo, Option<usize>)> = Vec::new();
    let mut has_output = false;
    for t in file.tensors() {
        let hf = gguf_to_hf(&t.name).ok_or_else(|| {
            tensor_err(
                gguf,
                &t.name,
                "has no Hugging Face llama equivalent (rope_freqs, multimodal or MoE tensors cannot be exported)",
            )
        })?;
        if t.name.starts_with("blk.") {
            let bid: u64 = t.name[4..].split('.').next().and_then(|x| x.parse().ok()).unwrap_or(u64::MAX);
            if bid >= n_blocks {
                return Err(tensor_err(gguf, &t.name, format!("block number beyond {arch}.block_count = {n_blocks}")));
            }
        }
        has_output |= t.name == "output.weight";
        if !crate::quant::caps(t.ty).dequantize && !matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            return Err(tensor_err(gguf, &t.name, format!("type {} cannot be dequantized", t.ty.name())));
        }
        let heads = if !permute {
            None
        } else if t.name.ends_with(".attn_q.weight") || t.name.ends_with(".attn_q.bias") {
            Some(n_head)
        } else if t.name.ends_with(".attn_k.weight") || t.name.ends_with(".attn_k.bias") {
            Some(n_head_kv)
        } else {
            None
        };
        if let Some(h) = heads {
            let rows = if t.shape.len() == 1 { t.shape[0] } else { t.n_rows() };
            if rows % (2 * h) != 0 {
                return Err(tensor_err(
                    gguf,
                    &t.name,
                    format!("{rows} rows cannot be split into {h} heads of row pairs"),
                ));
            }
        }
        plan.push((hf, t, heads.map(|h| h as usize)));
    }
    let head_dim = n_embd / n_head;
    if let Some(rd) = m.arch_u64("rope.dimension_count") {
        let kl = m.arch_u64("attention.key_length").unwrap_or(head_dim);
        if rd != kl {
            return Err(cfg_err(format!(
                "partial RoPE ({arch}.rope.dimension_count {rd} ≠ head size {kl}) cannot be exported"
            )));
        }
    }

    // ---- config.json
    let tokens = m.get("tokenizer.ggml.tokens").and_then(MetaValue::as_array).map(|a| a.len() as u64);
    let vocab_size = m
        .arch_u64("vocab_size")
        .or(tokens)
        .or_else(|| file.tensor("token_embd.weight").map(|t| t.n_rows()))
        .ok_or_else(|| cfg_err("cannot tell the vocabulary size".into()))?;
    let has_bias = file.tensors().iter().any(|t| t.name.ends_with(".attn_q.bias"));
    let out_dtype = |t: &TensorInfo| match (opts.dtype, t.ty) {
        (ExportDtype::F16, _) => safetensors::Dtype::F16,
        (ExportDtype::Auto, GgmlType::F16) => safetensors::Dtype::F16,
        (ExportDtype::Auto, GgmlType::BF16) => safetensors::Dtype::BF16,
        _ => safetensors::Dtype::F32,
    };
    let torch_dtype = match file.tensor("token_embd.weight").map(out_dtype) {
        Some(safetensors::Dtype::F16) => "float16",
        Some(safetensors::Dtype::BF16) => "bfloat16",
        _ => "float32",
    };
    let mut cfg = Map::new();
    cfg.insert("architectures".into(), json!([hf_arch]));
    cfg.insert("model_type".into(), json!(model_type));
    cfg.insert("hidden_size".into(), json!(n_embd));
    if let Some(ff) = m.arch_u64("feed_forward_length") {
        cfg.insert("intermediate_size".into(), json!(ff));
    }
    cfg.insert("num_hidden_layers".into(), json!(n_blocks));
    cfg.insert("num_attention_heads".into(), json!(n_head));
    if m.arch_u64("attention.head_count_kv").is_some() {
        cfg.insert("num_key_value_heads".into(), json!(n_head_kv));
    }
    if let Some(c) = m.arch_u64("context_length") {
        cfg.insert("max_position_embeddings".into(), json!(c));
    }
    let arch_f32 = |k: &str| m.get(&format!("{arch}.{k}")).and_then(MetaValue::as_f64).map(|x| x as f32);
    if let Some(e) = arch_f32("attention.layer_norm_rms_epsilon") {
        cfg.insert("rms_norm_eps".into(), f32_json(e));
    }
    if let Some(e) = arch_f32("attention.layer_norm_epsilon") {
        cfg.insert("layer_norm_eps".into(), f32_json(e));
    }
    if let Some(t) = arch_f32("rope.freq_base") {
        cfg.insert("rope_theta".into(), f32_json(t));
    }
    match m.get_str(&format!("{arch}.rope.scaling.type")) {
        None | Some("none") => {}
        Some("linear") => {
            let f = arch_f32("rope.scaling.factor").unwrap_or(1.0);
            cfg.insert("rope_scaling".into(), json!({"type": "linear", "rope_type": "linear", "factor": f32_json(f)}));
        }
        Some(other) => return Err(cfg_err(format!("RoPE scaling `{other}` cannot be exported"))),
    }
    if let Some(k) = m.arch_u64("attention.key_length") {
        cfg.insert("head_dim".into(), json!(k));
    }
    if m.get(&format!("{arch}.attention.causal")).and_then(MetaValue::as_bool) == Some(false) {
        cfg.insert("is_causal".into(), json!(false));
    }
    cfg.insert("vocab_size".into(), json!(vocab_size));
    cfg.insert("tie_word_embeddings".into(), json!(!has_output));
    cfg.insert("hidden_act".into(), json!("silu"));
    if arch == "llama" {
        cfg.insert("attention_bias".into(), json!(has_bias));
        cfg.insert("mlp_bias".into(), json!(false));
    }
    for (typ, key) in [
        ("bos", "tokenizer.ggml.bos_token_id"),
        ("eos", "tokenizer.ggml.eos_token_id"),
        ("unk", "tokenizer.ggml.unknown_token_id"),
        ("sep", "tokenizer.ggml.seperator_token_id"),
        ("pad", "tokenizer.ggml.padding_token_id"),
        ("mask", "tokenizer.ggml.mask_token_id"),
    ] {
        if let Some(id) = m.get_u64(key) {
            cfg.insert(format!("{typ}_token_id"), json!(id));
        }
    }
    cfg.insert("torch_dtype".into(), json!(torch_dtype));

    let tok = hf_tokenizer_from_gguf(m, gguf)?;

    // ---- write.
    let names = ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"];
    let outputs: Vec<_> = names.iter().map(|n| out_dir.join(n)).collect();
    // The directory is created when missing (then none of its files can be
    // the input).
    if out_dir.is_dir() {
        crate::fsutil::check_outputs(&outputs, &[gguf])?;
    }
    std::fs::create_dir_all(out_dir).map_err(|e| ConvertError::io(out_dir, e))?;
    let error = RefCell::new(None);
    let mut dequantized = 0;
    let views: Vec<(String, Lazy)> = plan
        .iter()
        .map(|(hf, t, heads)| {
            if !matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
                dequantized += 1;
            }
            let shape: Vec<usize> = t.shape.iter().rev().map(|&d| d as usize).collect();
            (
                hf.clone(),
                Lazy { file: &file, info: t, dtype: out_dtype(t), shape, permute: *heads, error: &error, cancel },
            )
        })
        .collect();
    let st_path = out_dir.join("model.safetensors");
    let st = AtomicFile::create(&st_path).map_err(|e| ConvertError::io(&st_path, e))?;
    safetensors::serialize_to_file(views, &None, st.temp_path())
        .map_err(|e| ConvertError::io(&st_path, std::io::Error::other(format!("{e:?}"))))?;
    if let Some(e) = error.into_inner() {
        return Err(e);
    }
    cancel.check()?;
    let st_bytes = std::fs::metadata(st.temp_path()).map_err(|e| ConvertError::io(&st_path, e))?.len();
    let files = vec![
        st,
        staged(out_dir, "config.json", &json_bytes(&Value::Object(cfg)))?,
        staged(out_dir, "tokenizer.json", &json_bytes(&tok.tokenizer_json))?,
        staged(out_dir, "tokenizer_config.json", &json_bytes(&tok.tokenizer_config))?,
        staged(out_dir, "README.md", model_card(&file).as_bytes())?,
    ];
    crate::fsutil::commit_all(files).map_err(|e| ConvertError::io(out_dir, e))?;
    Ok(ExportReport { n_tensors: plan.len(), dequantized, safetensors_bytes: st_bytes })
}
