//! A model's hyper-parameters checked before anything is allocated or
//! computed from them: counts against the model's own tensors and against
//! sane limits, floating-point settings for being finite and positive. A
//! file that fails names the key and what was expected.

use std::path::Path;

use super::error::{ModelError, Result};
use crate::gguf::{Metadata, TensorInfo};

/// More layers than llama.cpp loads (its `LLAMA_MAX_LAYERS`).
pub const MAX_LAYERS: u64 = 512;
/// Larger than any width, head count or context a model has (2^24).
pub const MAX_DIM: u64 = 1 << 24;
/// The most positions a KV cache is made for.
pub const MAX_CONTEXT: usize = 1 << 20;
/// The most bytes the KV caches of one run may take (64 GiB).
pub const MAX_CACHE_BYTES: u64 = 1 << 36;

/// The number of layers the tensors name: one more than the highest
/// `blk.N.` (0 when there is none).
pub fn layers_in_tensors(tensors: &[TensorInfo]) -> u64 {
    tensors.iter().filter_map(|t| crate::recipe::roles::layer_of(&t.name)).max().map_or(0, |m| m as u64 + 1)
}

/// `<arch>.block_count`, checked: at most [`MAX_LAYERS`], and when the
/// tensors name layers, exactly as many as they name (`None` when the key
/// is absent).
pub fn check_block_count(md: &Metadata, tensors: &[TensorInfo]) -> std::result::Result<Option<u64>, String> {
    let arch = md.architecture().unwrap_or_default();
    let Some(v) = md.get(&format!("{arch}.block_count")) else { return Ok(None) };
    let key = format!("{arch}.block_count");
    let n = v.as_u64().ok_or_else(|| format!("metadata `{key}`: {v:?} is not a non-negative integer"))?;
    if n > MAX_LAYERS {
        return Err(format!("metadata `{key}`: {n} layers (llama.cpp loads at most {MAX_LAYERS})"));
    }
    let named = layers_in_tensors(tensors);
    if named > 0 && n != named {
        return Err(format!("metadata `{key}` = {n}, but the tensors name {named} layers (blk.0 … blk.{})", named - 1));
    }
    Ok(Some(n))
}

/// Check what the forward pass reads from `md`: the layer count against
/// the tensors, every count against [`MAX_DIM`], and the floating-point
/// settings (RMS norm epsilon, RoPE base and scaling factor, attention
/// scale) for being finite and positive.
pub fn check(path: &Path, md: &Metadata, tensors: &[TensorInfo]) -> Result<()> {
    let arch = md.architecture().unwrap_or_default();
    let bad = |key: &str, msg: String| ModelError::Metadata { path: path.to_path_buf(), key: key.to_string(), msg };
    check_block_count(md, tensors).map_err(|m| ModelError::Invalid(format!("{}: {m}", path.display())))?;
    for suffix in [
        "embedding_length",
        "feed_forward_length",
        "attention.head_count",
        "attention.head_count_kv",
        "attention.key_length",
        "attention.value_length",
        "rope.dimension_count",
        "context_length",
        "expert_count",
        "expert_used_count",
        "expert_feed_forward_length",
    ] {
        let key = format!("{arch}.{suffix}");
        if let Some(n) = md.get_u64(&key).filter(|&n| n > MAX_DIM) {
            return Err(bad(&key, format!("{n} is beyond any model (at most {MAX_DIM})")));
        }
    }
    let positive = |suffix: &str, required_positive: bool| -> Result<()> {
        let key = format!("{arch}.{suffix}");
        let Some(v) = md.get(&key) else { return Ok(()) };
        let x = v.as_f64().ok_or_else(|| bad(&key, format!("{v:?} is not a number")))?;
        if !x.is_finite() || !(x as f32).is_finite() || (required_positive && x as f32 <= 0.0) {
            let want = if required_positive { "a finite number > 0" } else { "a finite number" };
            return Err(bad(&key, format!("{x} (expected {want})")));
        }
        Ok(())
    };
    positive("attention.layer_norm_rms_epsilon", true)?;
    positive("rope.freq_base", true)?;
    positive("rope.scaling.factor", true)?;
    positive("attention.scale", false)?;
    Ok(())
}

/// Check that KV caches for `n_seq` sequences of `n_ctx` positions stay
/// within [`MAX_CONTEXT`] and [`MAX_CACHE_BYTES`] before they are made.
pub fn check_context(hp: &super::HParams, n_ctx: usize, n_seq: usize) -> Result<()> {
    if n_ctx > MAX_CONTEXT {
        return Err(ModelError::Invalid(format!(
            "a context of {n_ctx} tokens is more than quantmix evaluates (at most {MAX_CONTEXT})"
        )));
    }
    let kv_dim = (hp.n_head_kv as u64).saturating_mul(hp.head_dim as u64);
    let per_seq = (n_ctx as u64 + n_ctx.div_ceil(32) as u64 * 32).saturating_mul(kv_dim).saturating_mul(4);
    let bytes = per_seq.saturating_mul(hp.n_layer as u64).saturating_mul(n_seq as u64);
    if bytes > MAX_CACHE_BYTES {
        return Err(ModelError::Invalid(format!(
            "{n_seq} × {n_ctx} positions need a {} GiB KV cache (at most {} GiB)",
            bytes >> 30,
            MAX_CACHE_BYTES >> 30
        )));
    }
    Ok(())
}
