//! Quality metrics computed exactly as llama.cpp's `llama-perplexity`
//! computes them, so that our numbers can be put next to theirs.
//!
//! - [`perplexity`]: the text is tokenized whole (with the vocabulary's BOS
//!   when it adds one), cut into chunks of `n_ctx` tokens, each chunk is
//!   evaluated from an empty cache with its first token replaced by BOS when
//!   the vocabulary adds BOS, and only the second half of each chunk is
//!   scored (`n_ctx/2 - 1` predictions per chunk). PPL = exp(mean NLL), its ±
//!   the standard error of the mean NLL times PPL.
//! - [`kld`]: the reference's log-probabilities are stored as llama.cpp
//!   stores them in its `--kl-divergence-base` file (16 bits per token,
//!   scaled between the maximum and at most 16 nats below it); every other
//!   model's logits are compared with them: mean and 99th-percentile KL
//!   divergence, ΔPPL, same-top-token fraction and RMS Δp, each with the ±
//!   llama.cpp prints.

pub mod kld;
pub mod perplexity;
pub mod run;

use std::time::{Duration, Instant};

use crate::model::{KvCache, LlamaModel, ModelError};

/// Errors of the evaluation area.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The text is too short for even one perplexity chunk pair.
    #[error("the text tokenizes to {tokens} tokens; perplexity with a context of {n_ctx} needs at least {}", 2 * n_ctx)]
    TextTooShort { tokens: usize, n_ctx: usize },
    /// Two models do not see the same token sequence.
    #[error(
        "{file} tokenizes the text differently from the reference {reference}; KL-divergence needs one vocabulary"
    )]
    TokensDiffer { file: String, reference: String },
    /// The reference and a model have different vocabulary sizes.
    #[error("{file} has {n_vocab} logits per token, the reference {reference} has {n_ref}")]
    VocabDiffers { file: String, reference: String, n_vocab: usize, n_ref: usize },
    #[error("{0}")]
    Invalid(String),
    /// The forward pass gave a NaN or infinite logit: a broken weight or
    /// hyper-parameter; no perplexity is printed for it.
    #[error("{file}: chunk {chunk}: the model computes a non-finite logit ({value}); its weights or hyper-parameters are not usable")]
    NonFinite { file: String, chunk: usize, value: f32 },
    #[error("interrupted")]
    Interrupted(#[from] crate::job::Interrupted),
    #[error(transparent)]
    ThreadPool(#[from] crate::job::ThreadPoolError),
}

/// Mean and standard error of the mean from running sums, as llama.cpp's
/// `mean_and_uncertainty` (no error for ≤ 10 samples).
pub fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count < 1 {
        return (0.0, 0.0);
    }
    let f = sum / count as f64;
    let var = sum2 / count as f64 - f * f;
    let err = if var > 0.0 && count > 10 { (var / (count - 1) as f64).sqrt() } else { 0.0 };
    (f, err)
}

/// Covariance of two means from running sums (llama.cpp's `covariance`).
pub fn covariance(sum_a: f64, sum_b: f64, sum_ab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (sum_ab / n - (sum_a / n) * (sum_b / n)) / (n - 1.0)
}

/// The chunks of a perplexity run: `n_chunks` chunks of `n_ctx` tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkPlan {
    pub n_ctx: usize,
    pub n_chunks: usize,
}

impl ChunkPlan {
    /// As llama-perplexity: at least `2·n_ctx` tokens, `len / n_ctx` chunks at
    /// most, optionally limited to `max_chunks`.
    pub fn new(n_tokens: usize, n_ctx: usize, max_chunks: Option<usize>) -> Result<ChunkPlan, EvalError> {
        if n_ctx < 4 {
            return Err(EvalError::Invalid(format!("context of {n_ctx} tokens is too small")));
        }
        if n_tokens < 2 * n_ctx {
            return Err(EvalError::TextTooShort { tokens: n_tokens, n_ctx });
        }
        let max = n_tokens / n_ctx;
        let n_chunks = max_chunks.map_or(max, |m| m.min(max));
        if n_chunks == 0 {
            return Err(EvalError::Invalid("zero chunks requested".into()));
        }
        Ok(ChunkPlan { n_ctx, n_chunks })
    }

    /// First scored position of a chunk.
    pub fn first(&self) -> usize {
        self.n_ctx / 2
    }

    /// Predictions scored per chunk.
    pub fn scored_per_chunk(&self) -> usize {
        self.n_ctx - 1 - self.first()
    }
}

/// Evaluate every chunk of `plan` and hand `f(chunk, tokens, logits)` the
/// chunk's tokens (as in the text, not BOS-replaced) and the logits of
/// positions `first..n_ctx` (`n_vocab` each).
pub fn for_each_chunk(
    model: &LlamaModel,
    tokens: &[u32],
    plan: ChunkPlan,
    bos: Option<u32>,
    cache: &mut KvCache,
    mut f: impl FnMut(usize, &[u32], &[f32]),
) -> Result<Duration, EvalError> {
    try_each_chunk(model, tokens, plan, bos, cache, |c, chunk, logits| {
        f(c, chunk, logits);
        Ok(())
    })
}

/// [`for_each_chunk`] with a callback that can stop the run with an error
/// (an interruption, a failed write).
pub fn try_each_chunk(
    model: &LlamaModel,
    tokens: &[u32],
    plan: ChunkPlan,
    bos: Option<u32>,
    cache: &mut KvCache,
    mut f: impl FnMut(usize, &[u32], &[f32]) -> Result<(), EvalError>,
) -> Result<Duration, EvalError> {
    let mut spent = Duration::ZERO;
    let first = plan.first();
    let mut batch = Vec::with_capacity(plan.n_ctx);
    for c in 0..plan.n_chunks {
        let chunk = &tokens[c * plan.n_ctx..(c + 1) * plan.n_ctx];
        batch.clear();
        batch.extend_from_slice(chunk);
        if let Some(b) = bos {
            batch[0] = b;
        }
        cache.clear();
        let t = Instant::now();
        let logits = model.forward(&batch, cache, first)?;
        spent += t.elapsed();
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite {
                file: model.file().path().display().to_string(),
                chunk: c,
                value: logits[i],
            });
        }
        f(c, chunk, &logits)?;
    }
    Ok(spent)
}
