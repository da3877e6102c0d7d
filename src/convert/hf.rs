//! Hugging Face llama-family checkpoint → GGUF, as llama.cpp's
//! `convert_hf_to_gguf.py` does it for `LlamaModel` (Llama, Mistral, SmolLM)
//! and `Qwen2Model`.
//!
//! - `config.json` → `general.*` and `<arch>.*` keys, in the converter's
//!   order and value types.
//! - Tensors: HF names → GGUF names, the Q/K row permutation (llama only),
//!   tied embeddings (no `output.weight` when the checkpoint has no
//!   `lm_head.weight`), Llama 3 `rope_freqs`. Types: 1-D tensors, norms and
//!   biases F32; the rest the output type (`auto` = the first 2-D F16/BF16
//!   tensor's type, else F16). Values: BF16 → F32 exactly, F32 → F16/BF16
//!   round to nearest even, as numpy / gguf-py do.
//! - Tokenizer: [`super::tokenizer`].
//!
//! Everything is validated (config, every tensor's dtype, name and shape)
//! before the output is created; tensors are then converted and written one
//! at a time.

use std::path::{Path, PathBuf};

use half::f16;
use serde_json::Value;

use super::checks::{first_non_finite, ConfigDims};
use super::error::{ConvertError, Result};
use super::names::{hf_to_gguf, permute_qk_rows};
use super::safetensors::{Dtype, SafetensorsModel, StTensor};
use super::tokenizer::add_hf_tokenizer;
use crate::gguf::{GgmlType, GgufWriter, MetaType, MetaValue, Metadata, TensorSpec, DEFAULT_ALIGNMENT};

/// `--outtype` of the converter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutType {
    /// The first 2-D F16/BF16 tensor's type, else F16.
    #[default]
    Auto,
    F32,
    F16,
    BF16,
}

impl std::str::FromStr for OutType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => OutType::Auto,
            "f32" => OutType::F32,
            "f16" => OutType::F16,
            "bf16" => OutType::BF16,
            _ => return Err(format!("unknown output type `{s}` (auto, f32, f16, bf16)")),
        })
    }
}

/// Options of [`convert_hf`].
#[derive(Clone, Debug, Default)]
pub struct HfConvertOptions {
    pub outtype: OutType,
    /// `tokenizer.ggml.pre` to use instead of the converter's hash lookup.
    pub tokenizer_pre: Option<String>,
    /// Abort (no output left) once this flag is set.
    pub cancel: Option<crate::job::Cancel>,
}

/// What [`convert_hf`] wrote.
#[derive(Clone, Debug)]
pub struct HfConvertReport {
    pub arch: String,
    pub n_tensors: usize,
    /// The bulk type (general.file_type's type).
    pub outtype: GgmlType,
    pub bytes: u64,
    pub tokenizer_pre: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arch {
    Llama,
    Qwen2,
}

impl Arch {
    fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// One output tensor: where its values come from and what to do with them.
struct Planned {
    source: Source,
    name: String,
    /// ggml order.
    shape: Vec<u64>,
    ty: GgmlType,
    /// `Some(heads)`: permute rows by this head count.
    permute: Option<usize>,
}

enum Source {
    Tensor(usize),
    Values(Vec<f32>),
}

fn cfg_err(path: &Path, msg: impl Into<String>) -> ConvertError {
    ConvertError::BadConfig { path: path.to_path_buf(), msg: msg.into() }
}

/// The directory holding `config.json` for a source path (a directory, or a
/// file inside one).
pub fn model_dir(src: &Path) -> PathBuf {
    if src.is_dir() {
        src.to_path_buf()
    } else {
        src.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
    }
}

struct Hparams<'a> {
    path: &'a Path,
    v: Value,
}

impl Hparams<'_> {
    fn find(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().find_map(|k| self.v.get(*k))
    }
    fn find_u32(&self, keys: &[&str]) -> Result<Option<u32>> {
        match self.find(keys) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                v.as_u64().and_then(|x| u32::try_from(x).ok()).map(Some).ok_or_else(|| {
                    cfg_err(self.path, format!("{} = {v} is not an integer that fits in 32 bits", keys[0]))
                })
            }
        }
    }
    fn req_u32(&self, keys: &[&str]) -> Result<u32> {
        self.find_u32(keys)?.ok_or_else(|| cfg_err(self.path, format!("missing `{}`", keys[0])))
    }
    fn find_f32(&self, keys: &[&str]) -> Result<Option<f32>> {
        match self.find(keys) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| cfg_err(self.path, format!("{} = {v} is not a number", keys[0]))),
        }
    }
}

/// Front matter of the model card (`README.md`): flat `key: value` scalars
/// and lists (`key:` then `- item` lines, or `[a, b]`). Enough for the keys
/// the converter reads into `general.*`.
fn model_card(dir: &Path) -> Vec<(String, Vec<String>, bool)> {
    let Ok(text) = std::fs::read_to_string(dir.join("README.md")) else { return Vec::new() };
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("---") {
        return Vec::new();
    }
    let unquote = |s: &str| {
        let s = s.trim();
        if s.len() >= 2 && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\''))) {
            if s.starts_with('"') {
                serde_json::from_str::<String>(s).unwrap_or_else(|_| s[1..s.len() - 1].to_string())
            } else {
                s[1..s.len() - 1].replace("''", "'")
            }
        } else {
            s.to_string()
        }
    };
    let mut out: Vec<(String, Vec<String>, bool)> = Vec::new();
    for line in lines {
        if line.trim_end() == "---" {
            break;
        }
        if let Some(item) = line.trim_start().strip_prefix("- ") {
            if let Some(last) = out.last_mut().filter(|l| l.2) {
                last.1.push(unquote(item));
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else { continue };
        let v = v.trim();
        if v.is_empty() {
            out.push((k.trim().to_string(), Vec::new(), true));
        } else if let Some(inner) = v.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            let items = inner.split(',').map(unquote).filter(|s| !s.is_empty()).collect();
            out.push((k.trim().to_string(), items, true));
        } else {
            out.push((k.trim().to_string(), vec![unquote(v)], false));
        }
    }
    out
}

/// gguf-py's `model_weight_count_rounded_notation` with two significant digits.
pub fn size_label(n_params: u64) -> String {
    let n = n_params as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    // Python's round() is half-to-even; only the digit count matters here.
    let digits = format!("{}", scaled.round_ties_even() as u64).trim_start_matches('0').len();
    let fix = 2usize.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// gguf-py's `Metadata.id_to_title`.
fn id_to_title(s: &str) -> String {
    let is_version_or_number = |w: &str| {
        let b = w.as_bytes();
        (!b.is_empty() && b[0].is_ascii_digit())
            || (b.len() > 1
                && b[0] == b'v'
                && w[1..].split('.').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())))
    };
    s.trim()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| {
            if w.chars().all(|c| !c.is_uppercase()) && w.chars().any(|c| c.is_lowercase()) && !is_version_or_number(w) {
                let mut c = w.chars();
                let first = c.next().map(|f| f.to_uppercase().collect::<String>()).unwrap_or_default();
                first + &c.as_str().to_lowercase()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn add_general(meta: &mut Metadata, dir: &Path, config: &Value, n_params: u64) {
    let card = model_card(dir);
    let scalar = |keys: &[&str]| -> Option<String> {
        keys.iter().find_map(|k| card.iter().find(|(ck, _, list)| ck == k && !list).map(|(_, v, _)| v[0].clone()))
    };
    let list = |keys: &[&str]| -> Option<Vec<String>> {
        let mut out: Option<Vec<String>> = None;
        for k in keys {
            if let Some((_, v, _)) = card.iter().find(|(ck, _, _)| ck == k) {
                out.get_or_insert_with(Vec::new).extend(v.iter().cloned());
            }
        }
        out
    };
    let name = scalar(&["name", "model_name"]).unwrap_or_else(|| {
        let from_config = config
            .get("_name_or_path")
            .and_then(Value::as_str)
            .filter(|s| s.matches('/').count() <= 1 && !s.is_empty())
            .map(|s| s.rsplit('/').next().unwrap_or(s).to_string());
        let dir_name = std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
        id_to_title(&from_config.unwrap_or(dir_name))
    });
    let s = |v: String| MetaValue::String(v);
    meta.set("general.type", s("model".into()));
    meta.set("general.name", s(name));
    for (key, card_keys) in [
        ("general.author", &["author", "model_author", "model_creator"][..]),
        ("general.version", &["version", "model_version"]),
        ("general.organization", &["organization", "model_organization"]),
        ("general.finetune", &["finetune", "model_finetune"]),
        ("general.basename", &["basename", "model_basename", "model_type"]),
        ("general.description", &["description", "model_description"]),
    ] {
        if let Some(v) = scalar(card_keys) {
            meta.set(key, s(v));
        }
    }
    meta.set(
        "general.size_label",
        s(scalar(&["size_label", "model_size_label"]).unwrap_or_else(|| size_label(n_params))),
    );
    if let Some(l) = list(&["license"]) {
        meta.set("general.license", s(l.join(",")));
    }
    for (key, card_keys) in [("general.license.name", "license_name"), ("general.license.link", "license_link")] {
        if let Some(v) = scalar(&[card_keys]) {
            meta.set(key, s(v));
        }
    }
    let str_arr = |v: Vec<String>| MetaValue::Array(MetaType::String, v.into_iter().map(MetaValue::String).collect());
    if let Some(t) = list(&["tags", "pipeline_tag"]) {
        meta.set("general.tags", str_arr(t));
    }
    if let Some(l) = list(&["languages", "language"]) {
        meta.set("general.languages", str_arr(l));
    }
}

/// Read `config.json` (merging a `text_config`), and the architecture.
fn read_config(dir: &Path) -> Result<(PathBuf, Value, Arch, String)> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ConvertError::io(&path, e))?;
    let mut v: Value = serde_json::from_str(&text).map_err(|e| cfg_err(&path, format!("invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(cfg_err(&path, "not a JSON object"));
    }
    let hf_arch = v
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .ok_or_else(|| cfg_err(&path, "no `architectures` list"))?
        .to_string();
    let arch = match hf_arch.as_str() {
        "LlamaForCausalLM" | "LLaMAForCausalLM" | "MistralForCausalLM" | "LlamaModel" => Arch::Llama,
        "Qwen2ForCausalLM" | "Qwen2Model" => Arch::Qwen2,
        other => {
            return Err(cfg_err(
                &path,
                format!(
                    "architecture `{other}` is not supported (LlamaForCausalLM, MistralForCausalLM, LlamaModel, \
                     Qwen2ForCausalLM, Qwen2Model)"
                ),
            ))
        }
    };
    if let Some(tc) = v.get("text_config").and_then(Value::as_object).cloned() {
        let o = v.as_object_mut().expect("object");
        for (k, x) in tc {
            o.insert(k, x);
        }
    }
    Ok((path, v, arch, hf_arch))
}

/// Whether the converter drops this tensor (multimodal parts, buffers).
fn skipped(name: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "mlp",
        "vit.",
        "vpm.",
        "siglip2.",
        "conformer.",
        "merger.",
        "resampler.",
        "sound_encoder.",
        "sound_projection.",
        "speech_embeddings.",
    ];
    const PARTS: &[&str] = &[
        "visual.",
        "vision.",
        "audio.",
        "talker.",
        "vision_",
        "audio_",
        "token2wav.",
        "code2wav.",
        "projector.",
        "pre_mm_projector_norm",
        "image_newline",
        "view_seperator",
        "patch_embed",
        "patch_embedding",
        "patch_merger.",
        "patch_merge_mlp.",
        "model.connector.",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || PARTS.iter().any(|p| name.contains(p))
        || name.ends_with(".attention.masked_bias")
        || name.ends_with(".attention.bias")
        || name.ends_with(".rotary_emb.inv_freq")
}

/// Llama 3 RoPE frequency factors (`rope_freqs.weight`).
fn llama3_rope_factors(hp: &Hparams, rope: &Value, head_dim: u32) -> Vec<f32> {
    let num = |k: &str, d: f64| rope.get(k).and_then(Value::as_f64).unwrap_or(d);
    let base = num("rope_theta", 10000.0) as f32;
    let factor = num("factor", 8.0);
    let low = num("low_freq_factor", 1.0);
    let high = num("high_freq_factor", 4.0);
    let old_ctx = num("original_max_position_embeddings", 8192.0);
    let _ = hp;
    let (low_wl, high_wl) = (old_ctx / low, old_ctx / high);
    (0..head_dim)
        .step_by(2)
        .map(|i| {
            // torch computes the frequencies in f32.
            let freq = 1.0f32 / base.powf(i as f32 / head_dim as f32);
            let wavelen = 2.0 * std::f64::consts::PI / freq as f64;
            if wavelen < high_wl {
                1.0
            } else if wavelen > low_wl {
                factor as f32
            } else {
                let smooth = (old_ctx / wavelen - low) / (high - low);
                (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
            }
        })
        .collect()
}

/// Convert a Hugging Face checkpoint directory (or a safetensors file inside
/// one) to a GGUF file at `out`.
pub fn convert_hf(src: &Path, out: &Path, opts: &HfConvertOptions) -> Result<HfConvertReport> {
    let dir = model_dir(src);
    let (cfg_path, config, arch, hf_arch) = read_config(&dir)?;
    let hp = Hparams { path: &cfg_path, v: config.clone() };
    let st = if src.is_dir() { SafetensorsModel::open(&dir)? } else { SafetensorsModel::open(src)? };

    let n_blocks = hp.req_u32(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?;
    let n_head = hp.find_u32(&["num_attention_heads", "n_head", "n_heads"])?;
    let n_head_kv = hp.find_u32(&["num_key_value_heads", "n_kv_heads"])?;
    if hp.find(&["num_local_experts", "num_experts", "n_routed_experts"]).is_some() {
        return Err(cfg_err(&cfg_path, "mixture-of-experts models are not supported"));
    }
    let rope: Value = hp.v.get("rope_parameters").or_else(|| hp.v.get("rope_scaling")).cloned().unwrap_or(Value::Null);
    let rope = if rope.is_object() { rope } else { Value::Object(Default::default()) };
    let rope = rope.get("full_attention").cloned().unwrap_or(rope);
    let rope_theta = match rope.get("rope_theta") {
        Some(v) => Some(v.as_f64().ok_or_else(|| cfg_err(&cfg_path, "rope_theta is not a number"))? as f32),
        None => hp.find_f32(&[
            "global_rope_theta",
            "rope_global_theta",
            "rope_theta_global",
            "rope_theta",
            "rotary_emb_base",
        ])?,
    };
    let rope_type = rope.get("rope_type").or_else(|| rope.get("type")).and_then(Value::as_str).map(str::to_lowercase);

    // ---- tensors: plan and validate everything before writing.
    let mut plan: Vec<Planned> = Vec::new();
    let head_dim = match hp.find_u32(&["head_dim"])? {
        Some(d) => Some(d),
        None => match (hp.find_u32(&["hidden_size"])?, n_head) {
            (Some(h), Some(n)) if n > 0 => Some(h / n),
            _ => None,
        },
    };
    if arch == Arch::Llama && rope_type.as_deref() == Some("llama3") {
        let d = head_dim.ok_or_else(|| cfg_err(&cfg_path, "llama3 RoPE needs head_dim or hidden_size"))?;
        let mut r = rope.clone();
        if r.get("rope_theta").is_none() {
            if let Some(t) = rope_theta {
                r["rope_theta"] = serde_json::json!(t as f64);
            }
        }
        let f = llama3_rope_factors(&hp, &r, d);
        plan.push(Planned {
            shape: vec![f.len() as u64],
            source: Source::Values(f),
            name: "rope_freqs.weight".into(),
            ty: GgmlType::F32,
            permute: None,
        });
    }

    let mut ftype = match opts.outtype {
        OutType::F32 => Some(GgmlType::F32),
        OutType::F16 => Some(GgmlType::F16),
        OutType::BF16 => Some(GgmlType::BF16),
        OutType::Auto => None,
    };
    let kept: Vec<(usize, &StTensor, String)> = st
        .tensors()
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            let mut name = t.name.replace("text_model.", "").replace("language_model.", "");
            if matches!(hf_arch.as_str(), "LlamaModel" | "Qwen2Model") {
                name = format!("model.{name}");
            }
            (!skipped(&t.name)).then_some((i, t, name))
        })
        .collect();
    if ftype.is_none() {
        ftype = Some(
            kept.iter()
                .filter(|(_, t, _)| t.shape.len() >= 2)
                .find_map(|(_, t, _)| match t.dtype {
                    Dtype::BF16 => Some(GgmlType::BF16),
                    Dtype::F16 => Some(GgmlType::F16),
                    _ => None,
                })
                .unwrap_or(GgmlType::F16),
        );
    }
    let ftype = ftype.expect("set above");
    let dims = ConfigDims {
        hidden: hp.find_u32(&["hidden_size", "n_embd", "dim"])?.map(u64::from),
        ff: hp
            .find_u32(&["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner"])?
            .map(u64::from),
        vocab: hp.find_u32(&["vocab_size"])?.map(u64::from),
        q: n_head.zip(head_dim).map(|(h, d)| h as u64 * d as u64),
        kv: n_head_kv.or(n_head).zip(head_dim).map(|(h, d)| h as u64 * d as u64),
    };
    for &(i, t, ref name) in &kept {
        st.check_float(t)?;
        let terr =
            |msg: String| ConvertError::Tensor { path: st.path_of(t).to_path_buf(), tensor: t.name.clone(), msg };
        let (gname, _bid) =
            hf_to_gguf(name, n_blocks as u64).ok_or_else(|| terr(format!("cannot map `{name}` to a GGUF tensor")))?;
        if t.shape.is_empty() || t.shape.len() > 4 || t.shape.contains(&0) {
            return Err(terr(format!("unsupported shape {:?}", t.shape)));
        }
        if let Some(want) = dims.expected(&gname) {
            if t.shape != want {
                return Err(terr(format!(
                    "shape {:?} in the checkpoint, but {} gives {want:?} ({})",
                    t.shape,
                    cfg_path.display(),
                    dims.describe()
                )));
            }
        }
        let mut permute = None;
        if arch == Arch::Llama {
            let heads = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
                Some(n_head.ok_or_else(|| cfg_err(&cfg_path, "missing `num_attention_heads`"))?)
            } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
                let h = n_head.ok_or_else(|| cfg_err(&cfg_path, "missing `num_attention_heads`"))?;
                Some(n_head_kv.unwrap_or(h))
            } else {
                None
            };
            if let Some(h) = heads {
                if h == 0 || t.shape[0] % (2 * h as u64) != 0 {
                    return Err(terr(format!("{} rows cannot be split into {h} heads of row pairs", t.shape[0])));
                }
                permute = Some(h as usize);
            }
        }
        let is_norm_or_1d = t.shape.len() <= 1 || gname.ends_with("_norm.weight");
        let ty = if is_norm_or_1d || !gname.ends_with(".weight") { GgmlType::F32 } else { ftype };
        let shape: Vec<u64> = t.shape.iter().rev().copied().collect();
        plan.push(Planned { source: Source::Tensor(i), name: gname, shape, ty, permute });
    }
    {
        let mut seen = std::collections::HashSet::new();
        for p in &plan {
            if !seen.insert(p.name.as_str()) {
                return Err(ConvertError::Tensor {
                    path: dir.clone(),
                    tensor: p.name.clone(),
                    msg: "two source tensors map to this GGUF tensor".into(),
                });
            }
        }
    }

    // ---- metadata, in the converter's order.
    let mut meta = Metadata::default();
    let a = arch.name();
    let u32v = MetaValue::U32;
    meta.set("general.architecture", MetaValue::String(a.into()));
    let n_params: u64 = plan.iter().map(|p| p.shape.iter().product::<u64>()).sum();
    add_general(&mut meta, &dir, &config, n_params);
    meta.set(format!("{a}.block_count"), u32v(n_blocks));
    let opt = |meta: &mut Metadata, k: &str, v: Option<u32>| {
        if let Some(v) = v {
            meta.set(format!("{a}.{k}"), MetaValue::U32(v));
        }
    };
    opt(
        &mut meta,
        "context_length",
        hp.find_u32(&[
            "max_position_embeddings",
            "n_ctx",
            "n_positions",
            "max_length",
            "max_sequence_length",
            "model_max_length",
        ])?,
    );
    opt(&mut meta, "embedding_length", hp.find_u32(&["hidden_size", "n_embd", "dim"])?);
    opt(
        &mut meta,
        "feed_forward_length",
        hp.find_u32(&[
            "prefix_dense_intermediate_size",
            "dense_intermediate_size",
            "intermediate_size",
            "n_inner",
            "hidden_dim",
        ])?,
    );
    opt(&mut meta, "attention.head_count", n_head);
    opt(&mut meta, "attention.head_count_kv", n_head_kv);
    if hp.v.get("is_causal").and_then(Value::as_bool) == Some(false) {
        meta.set(format!("{a}.attention.causal"), MetaValue::Bool(false));
    }
    match rope_type.as_deref() {
        None | Some("llama3") | Some("default") => {}
        Some("linear") => {
            if let Some(f) = rope.get("factor").and_then(Value::as_f64) {
                meta.set(format!("{a}.rope.scaling.type"), MetaValue::String("linear".into()));
                meta.set(format!("{a}.rope.scaling.factor"), MetaValue::F32(f as f32));
            }
        }
        Some(other) => {
            return Err(cfg_err(&cfg_path, format!("RoPE scaling type `{other}` is not supported (linear, llama3)")))
        }
    }
    if let Some(t) = rope_theta {
        meta.set(format!("{a}.rope.freq_base"), MetaValue::F32(t));
    }
    if let Some(e) = hp.find_f32(&["rms_norm_eps", "norm_eps"])? {
        meta.set(format!("{a}.attention.layer_norm_rms_epsilon"), MetaValue::F32(e));
    }
    if let Some(e) = hp.find_f32(&["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])? {
        meta.set(format!("{a}.attention.layer_norm_epsilon"), MetaValue::F32(e));
    }
    if let Some(d) = hp.find_u32(&["head_dim"])? {
        meta.set(format!("{a}.attention.key_length"), u32v(d));
        meta.set(format!("{a}.attention.value_length"), u32v(d));
    }
    let file_type = match ftype {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        _ => 32,
    };
    meta.set("general.file_type", u32v(file_type));
    let vocab_size = hp.find_u32(&["vocab_size"])?;
    if arch == Arch::Llama {
        let v = vocab_size.ok_or_else(|| cfg_err(&cfg_path, "missing `vocab_size`"))?;
        meta.set(format!("{a}.vocab_size"), u32v(v));
        let d = head_dim.ok_or_else(|| cfg_err(&cfg_path, "missing `hidden_size` / `num_attention_heads`"))?;
        meta.set(format!("{a}.rope.dimension_count"), u32v(d));
    }
    meta.set("general.quantization_version", u32v(2));
    add_hf_tokenizer(
        &dir,
        &config,
        vocab_size.map(u64::from),
        opts.tokenizer_pre.as_deref(),
        arch == Arch::Llama,
        &mut meta,
    )?;
    let pre = meta.get_str("tokenizer.ggml.pre").unwrap_or_default().to_string();

    // ---- write.
    let specs: Vec<TensorSpec> =
        plan.iter().map(|p| TensorSpec { name: p.name.clone(), shape: p.shape.clone(), ty: p.ty }).collect();
    let mut w = GgufWriter::create(out, &meta, &specs, DEFAULT_ALIGNMENT)?;
    if let Some(c) = &opts.cancel {
        w.set_cancel(c.clone());
    }
    for p in &plan {
        let bytes = match &p.source {
            Source::Values(v) => encode(v.clone(), None, p.ty),
            Source::Tensor(i) => {
                let t = &st.tensors()[*i];
                let row_len = *p.shape.first().expect("non-empty shape") as usize;
                let raw = match t.dtype {
                    // F16 stays F16 until the output type is applied (exact).
                    Dtype::F16 => Raw::F16(st.read_u16(t)),
                    _ => Raw::F32(st.read_f32(t)?),
                };
                let raw = match p.permute {
                    Some(h) => match raw {
                        Raw::F16(v) => Raw::F16(permute_qk_rows(&v, row_len, h, false)),
                        Raw::F32(v) => Raw::F32(permute_qk_rows(&v, row_len, h, false)),
                    },
                    None => raw,
                };
                match raw {
                    Raw::F32(v) => encode(v, None, p.ty),
                    Raw::F16(v) => encode(Vec::new(), Some(v), p.ty),
                }
            }
        };
        if let Some(i) = first_non_finite(&bytes, p.ty) {
            let row_len = p.shape.first().copied().unwrap_or(1).max(1) as usize;
            let src = match &p.source {
                Source::Tensor(i) => st.path_of(&st.tensors()[*i]).to_path_buf(),
                Source::Values(_) => cfg_path.clone(),
            };
            return Err(ConvertError::Tensor {
                path: src,
                tensor: p.name.clone(),
                msg: format!(
                    "row {}, column {}: the value is NaN or infinite as {} (weights must be finite numbers)",
                    i / row_len,
                    i % row_len,
                    p.ty
                ),
            });
        }
        w.write_tensor(&bytes)?;
    }
    let bytes = w.finish()?;
    Ok(HfConvertReport { arch: a.into(), n_tensors: plan.len(), outtype: ftype, bytes, tokenizer_pre: pre })
}

enum Raw {
    F32(Vec<f32>),
    F16(Vec<u16>),
}

/// Encode values as `ty` (F32, F16 or BF16) little-endian bytes. `f16_bits`,
/// when given, are the values (an F16 source) instead of `v`.
fn encode(v: Vec<f32>, f16_bits: Option<Vec<u16>>, ty: GgmlType) -> Vec<u8> {
    if let (GgmlType::F16, Some(b)) = (ty, &f16_bits) {
        return b.iter().flat_map(|x| x.to_le_bytes()).collect();
    }
    let vals: Vec<f32> = match f16_bits {
        Some(b) => b.iter().map(|&x| f16::from_bits(x).to_f32()).collect(),
        None => v,
    };
    match ty {
        GgmlType::F32 => vals.iter().flat_map(|x| x.to_le_bytes()).collect(),
        GgmlType::F16 => vals.iter().flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes()).collect(),
        _ => vals.iter().flat_map(|&x| bf16_bits(x).to_le_bytes()).collect(),
    }
}

/// f32 → bf16 bits, round to nearest even, NaN kept quiet (gguf-py and ggml agree).
fn bf16_bits(x: f32) -> u16 {
    crate::quant::float::f32_to_bf16(x).to_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels_like_gguf_py() {
        assert_eq!(size_label(134_515_008), "135M");
        assert_eq!(size_label(1_711_376_384), "1.7B");
        assert_eq!(size_label(8_030_261_248), "8.0B");
        assert_eq!(size_label(999_000), "999K");
    }

    #[test]
    fn titles() {
        assert_eq!(id_to_title("SmolLM2-135M-Instruct"), "SmolLM2 135M Instruct");
        assert_eq!(id_to_title("my-model-v1.2"), "My Model v1.2");
    }
}
