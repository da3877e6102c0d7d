//! Llama-family forward pass over a GGUF file's quantized weights, for the
//! architectures [`super::arch`] describes (llama with or without experts,
//! mistral, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3), computed the way llama.cpp's CPU backend computes it:
//!
//! - token embeddings: one row of `token_embd` dequantized per token (times
//!   `sqrt(n_embd)` for gemma);
//! - RMSNorm (sum of squares in f64, `1/sqrt(mean + eps)` in f32) times the
//!   norm weight (GGUF stores gemma's norm weights with the 1 already added);
//! - Q/K/V projections, separate or one fused matrix (phi3) (qwen2 adds
//!   biases; qwen3 and gemma3 normalize each head of Q and K), RoPE as ggml
//!   applies it to GGUF weights (on the first `n_rot` dimensions): adjacent
//!   pairs for llama (the converter permuted Q/K), halves (NeoX) for the
//!   others, angles `pos · base^(-2i/n_rot)` accumulated in f32, optional
//!   `rope_freqs` or LongRoPE factors (phi3), linear scaling and the
//!   attention factor, gemma3's local layers with their own base;
//! - grouped-query causal attention with a KV cache that stores K and V as
//!   F16 (llama.cpp's default cache type; Q and the softmax weights are
//!   rounded to F16 for the products with it, as ggml's F16 `mul_mat` does),
//!   sliding-window masks on gemma's local layers, gemma2's soft-capped
//!   scores;
//! - SwiGLU (gate and up fused in phi3) or GeGLU feed-forward, or a mixture of experts (qwen3moe,
//!   Mixtral-style llama: [`super::moe`]), gemma's norms of the attention
//!   and feed-forward outputs; output projection or the tied token
//!   embeddings, optional logit soft-capping.
//!
//! Every matrix product runs on the quantized weights through
//! [`crate::quant::matmul`] (activations quantized to the weight type's
//! `vec_dot` type, once for the products that share an input: Q/K/V and
//! gate/up). Prompt processing is batched (all tokens of a call in one
//! matrix × matrix product per weight), generation is matrix × vector; both
//! are parallel (rayon's current pool).

use std::path::Path;

use rayon::prelude::*;

use super::arch::{self, Activation, ArchSpec, FinalSoftcap, QueryScale};
use super::attention::{self, round_to_f16, Scratch};
use super::error::{ModelError, Result};
use super::moe::{ExpertObserver, Experts};
use super::ops::{add_bias, add_into, geglu, rms_norm, rotate, scale, select_rows, softcap, swiglu};
use crate::gguf::{GgmlType, GgufFile, TensorInfo};
use crate::quant::matmul::{matmul_quantized, Activations, Weights};

mod attend;
mod load;

/// How RoPE pairs the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Dimensions `2i` and `2i+1` (ggml `LLAMA_ROPE_TYPE_NORM`).
    Normal,
    /// Dimensions `i` and `i + n_rot/2` (ggml `LLAMA_ROPE_TYPE_NEOX`).
    Neox,
}

/// Hyper-parameters read from the GGUF metadata.
#[derive(Clone, Debug)]
pub struct HParams {
    pub arch: String,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Hidden size of the dense feed-forward (0 when every layer has
    /// experts and the file does not set it).
    pub n_ff: usize,
    /// Experts per layer (0: dense feed-forward), experts used per token,
    /// hidden size of one expert.
    pub n_expert: usize,
    pub n_expert_used: usize,
    pub n_ff_exp: usize,
    pub n_vocab: usize,
    pub n_rot: usize,
    pub n_ctx_train: usize,
    pub eps: f32,
    pub freq_base: f32,
    pub freq_scale: f32,
    pub rope: RopeStyle,
    /// Scale of the attention scores (1 when the query is scaled instead).
    pub kq_scale: f32,
    /// What the architecture does beyond the llama layout.
    pub spec: &'static ArchSpec,
    /// Multiplier of the token embeddings (`sqrt(n_embd)` for gemma).
    pub embd_scale: Option<f32>,
    /// Multiplier of the query after RoPE (gemma).
    pub q_scale: Option<f32>,
    /// Sliding window of the local layers (0: every layer is global).
    pub n_swa: usize,
    /// RoPE base and scale of the local layers.
    pub freq_base_swa: f32,
    pub freq_scale_swa: f32,
    /// `cap · tanh(logit / cap)` on the logits.
    pub final_softcap: Option<f32>,
    /// `cap · tanh(score / cap)` on the attention scores.
    pub attn_softcap: Option<f32>,
    /// Multiplier of RoPE's cos and sin (`<arch>.rope.scaling.attn_factor`,
    /// 1 when absent).
    pub rope_attn_factor: f32,
    /// The context the RoPE frequencies were trained for
    /// (`<arch>.rope.scaling.original_context_length`, else
    /// `context_length`): LongRoPE's long factors apply beyond it.
    pub n_ctx_orig: usize,
}

/// A weight matrix in the file: `rows` × `cols` of `info.ty`, or a stack
/// of `n_mat` such matrices (the experts of a 3-D tensor, each contiguous).
#[derive(Clone, Debug)]
pub(super) struct Mat {
    pub(super) info: TensorInfo,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) n_mat: usize,
}

/// A layer's feed-forward weights.
pub(super) enum FfnWeights {
    Dense {
        gate: Mat,
        up: Mat,
        down: Mat,
    },
    /// Gate and up projections in one matrix of `2·n_ff` rows, the gate's
    /// first (phi3).
    FusedUp {
        up: Mat,
        down: Mat,
    },
    Experts(Experts),
}

impl FfnWeights {
    fn mats(&self) -> Vec<&Mat> {
        match self {
            FfnWeights::Dense { gate, up, down } => vec![gate, up, down],
            FfnWeights::FusedUp { up, down } => vec![up, down],
            FfnWeights::Experts(e) => vec![&e.router, &e.gate, &e.up, &e.down],
        }
    }
}

/// A layer's Q/K/V projections.
pub(super) enum Qkv {
    Separate {
        wq: Mat,
        wk: Mat,
        wv: Mat,
    },
    /// One matrix whose rows are Q's, then K's, then V's (phi3).
    Fused(Mat),
}

struct Layer {
    attn_norm: Vec<f32>,
    /// Per-head norms of Q and K (qwen3, gemma3).
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    /// Norms of the attention and feed-forward outputs (gemma).
    post_attn_norm: Option<Vec<f32>>,
    post_ffn_norm: Option<Vec<f32>>,
    /// A local (sliding-window) layer.
    swa: bool,
    qkv: Qkv,
    wo: Mat,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    bo: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    ffn: FfnWeights,
}

impl Layer {
    /// Every weight matrix of the layer, in the order the pass reads them.
    fn mats(&self) -> Vec<&Mat> {
        let mut v = match &self.qkv {
            Qkv::Separate { wq, wk, wv } => vec![wq, wk, wv],
            Qkv::Fused(w) => vec![w],
        };
        v.push(&self.wo);
        v.extend(self.ffn.mats());
        v
    }
}

/// The `rows` rows of `x`, each the concatenation of `widths.len()` parts,
/// split into one matrix per part.
fn split_columns<const N: usize>(x: &[f32], rows: usize, widths: [usize; N]) -> [Vec<f32>; N] {
    let total: usize = widths.iter().sum();
    let mut start = 0;
    widths.map(|w| {
        let mut out = Vec::with_capacity(rows * w);
        for row in x.chunks_exact(total).take(rows) {
            out.extend_from_slice(&row[start..start + w]);
        }
        start += w;
        out
    })
}

/// A llama-family model backed by the memory map of its GGUF file.
pub struct LlamaModel {
    file: GgufFile,
    pub hp: HParams,
    tok_embd: Mat,
    output: Mat,
    output_norm: Vec<f32>,
    rope_freqs: Option<Vec<f32>>,
    /// LongRoPE's factors for long and short contexts (phi3).
    rope_long: Option<Vec<f32>>,
    rope_short: Option<Vec<f32>>,
    layers: Vec<Layer>,
}

/// Where a forward pass starts.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Token ids (embedded with `token_embd`).
    Tokens(&'a [u32]),
    /// The residual stream entering `layer` (`rows × n_embd`). `layer ==
    /// n_layer` is the final hidden state before the output norm, holding
    /// only the rows the last layer carried (as the residual hook reports
    /// it): every row then gets logits, `Outputs::from` is not applied and
    /// the caches are left as they are.
    Hidden { layer: usize, x: &'a [f32] },
}

/// Which rows of each sequence go through the last layer, and whether
/// their logits are computed.
#[derive(Clone, Copy, Debug)]
pub struct Outputs {
    /// First row (within each sequence) carried through the last layer.
    pub from: usize,
    /// Compute the output projection for those rows.
    pub logits: bool,
}

/// A weight matrix replaced, for one forward pass, by other bytes (same
/// shape, possibly another type): a candidate quantization, without
/// copying the model.
#[derive(Clone, Copy, Debug)]
pub struct WeightOverride<'a> {
    pub name: &'a str,
    pub ty: GgmlType,
    pub data: &'a [u8],
}

/// Callback receiving, before each matrix product, the weight tensor's
/// name and the f32 input activations (`rows × cols`, then `rows`).
pub type MatmulObserver<'a> = dyn FnMut(&str, &[f32], usize) + 'a;

/// Callback receiving the residual stream entering each layer (`il`,
/// `rows × n_embd`); `il == n_layer` is the final hidden state.
pub type ResidualObserver<'a> = dyn FnMut(usize, &[f32]) + 'a;

/// Optional instrumentation of [`LlamaModel::forward_with`].
#[derive(Default)]
pub struct Hooks<'a> {
    /// Every ordinary matrix product (the expert routers included).
    pub observer: Option<&'a mut MatmulObserver<'a>>,
    /// Every product with a 3-D expert tensor (ggml's `MUL_MAT_ID`).
    pub experts: Option<&'a mut ExpertObserver<'a>>,
    pub overrides: &'a [WeightOverride<'a>],
    pub residual: Option<&'a mut ResidualObserver<'a>>,
}

/// Keys and values of the positions processed so far, per layer, stored
/// with F16 precision.
pub struct KvCache {
    n_ctx: usize,
    kv_dim: usize,
    len: usize,
    /// Keys, `[position][kv_dim]` per layer.
    k: Vec<Vec<f32>>,
    /// Values transposed, `[kv_dim][v_stride]` per layer.
    v: Vec<Vec<f32>>,
    /// Row length of the transposed values: `n_ctx` rounded up to 32.
    v_stride: usize,
}

impl KvCache {
    /// Number of positions filled.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Capacity in positions.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }
    /// Forget every position (llama.cpp `llama_memory_clear`).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl LlamaModel {
    /// Open a GGUF file and check that it holds a supported llama-family
    /// model whose tensors all have kernels.
    /// Where it fits, the file is copied into memory first
    /// ([`crate::gguf::resident`]).
    pub fn open(path: impl AsRef<Path>) -> Result<LlamaModel> {
        let mut file = GgufFile::open(path.as_ref())?;
        #[cfg(unix)]
        if crate::gguf::resident::worth_copying_here(file.bytes().len() as u64) {
            file.make_resident()?;
        }
        Self::from_file(file)
    }

    /// The underlying file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// Number of weights in the matrices and vectors the forward pass reads
    /// (the tied output counted once), and their bytes in the file.
    pub fn weight_stats(&self) -> (u64, u64) {
        let (mut n, mut b) = (0u64, 0u64);
        for t in self.file.tensors() {
            n += t.n_elements();
            b += t.n_bytes();
        }
        (n, b)
    }

    /// A KV cache for up to `n_ctx` positions.
    pub fn new_cache(&self, n_ctx: usize) -> KvCache {
        let kv_dim = self.hp.n_head_kv * self.hp.head_dim;
        let v_stride = n_ctx.div_ceil(32) * 32;
        KvCache {
            n_ctx,
            kv_dim,
            len: 0,
            k: (0..self.hp.n_layer).map(|_| vec![0f32; n_ctx * kv_dim]).collect(),
            v: (0..self.hp.n_layer).map(|_| vec![0f32; v_stride * kv_dim]).collect(),
            v_stride,
        }
    }

    /// The weights of `m`, or the override of the same name.
    fn weights<'s>(&'s self, m: &'s Mat, overrides: &'s [WeightOverride<'s>]) -> Weights<'s> {
        self.weights_of(m, 0, overrides)
    }

    /// The weights of matrix `e` of the stack `m` (expert `e`), or of the
    /// override of the same name.
    pub(super) fn weights_of<'s>(&'s self, m: &'s Mat, e: usize, overrides: &'s [WeightOverride<'s>]) -> Weights<'s> {
        let (ty, data) = match overrides.iter().find(|o| o.name == m.info.name) {
            Some(o) => (o.ty, o.data),
            None => (m.info.ty, self.file.tensor_data(&m.info)),
        };
        let bytes = data.len() / m.n_mat.max(1);
        Weights::new(ty, m.rows, m.cols, &data[e * bytes..(e + 1) * bytes])
            .expect("types and sizes are checked at load time and for overrides")
    }

    pub(super) fn matmul(&self, m: &Mat, x: &[f32], n: usize, hooks: &mut Hooks<'_>) -> Vec<f32> {
        let [out] = self.matmuls([m], x, n, hooks);
        out
    }

    /// The products of several matrices with the same `n` input rows `x`,
    /// which are quantized once per activation type.
    fn matmuls<const N: usize>(&self, ms: [&Mat; N], x: &[f32], n: usize, hooks: &mut Hooks<'_>) -> [Vec<f32>; N] {
        let mut acts = Activations::new();
        ms.map(|m| {
            if let Some(obs) = hooks.observer.as_mut() {
                obs(&m.info.name, x, n);
            }
            let w = self.weights(m, hooks.overrides);
            let aty = crate::quant::vec_dot_type(w.ty()).expect("checked by Weights::new");
            if acts.ty() != Some(aty) {
                acts.quantize(aty, x, m.cols).expect("activation shape");
            }
            let mut out = vec![0f32; n * m.rows];
            matmul_quantized(&w, &acts, &mut out).expect("shapes checked above");
            out
        })
    }

    /// Every weight matrix the forward pass multiplies with, with its
    /// layer (`None` for the token embeddings and the output, which
    /// `token_embd.weight` is when the model ties them).
    pub fn matrices(&self) -> Vec<(&str, Option<usize>)> {
        let mut v = vec![(self.tok_embd.info.name.as_str(), None)];
        for (il, l) in self.layers.iter().enumerate() {
            for m in l.mats() {
                v.push((m.info.name.as_str(), Some(il)));
            }
        }
        if self.output.info.name != self.tok_embd.info.name {
            v.push((self.output.info.name.as_str(), None));
        }
        v
    }

    /// The first layer whose computation reads tensor `name` (`Some(0)`
    /// for the token embeddings, `Some(n_layer)` for a separate output
    /// matrix), `None` for a tensor the forward pass does not read as a
    /// matrix.
    pub fn first_layer_reading(&self, name: &str) -> Option<usize> {
        if name == self.tok_embd.info.name {
            return Some(0);
        }
        if name == self.output.info.name {
            return Some(self.hp.n_layer);
        }
        self.layers.iter().position(|l| l.mats().iter().any(|m| m.info.name == name))
    }

    fn check_overrides(&self, overrides: &[WeightOverride<'_>]) -> Result<()> {
        for o in overrides {
            let m = std::iter::once(&self.tok_embd)
                .chain(std::iter::once(&self.output))
                .chain(self.layers.iter().flat_map(|l| l.mats()))
                .find(|m| m.info.name == o.name)
                .ok_or_else(|| ModelError::Invalid(format!("override of `{}`: not a weight matrix", o.name)))?;
            if !crate::quant::caps(o.ty).vec_dot {
                return Err(ModelError::Invalid(format!(
                    "override of `{}`: type {} has no dot-product kernel",
                    o.name, o.ty
                )));
            }
            let want = o.ty.row_bytes(m.cols as u64).map(|b| b * m.rows as u64 * m.n_mat as u64);
            if want != Some(o.data.len() as u64) {
                return Err(ModelError::Invalid(format!(
                    "override of `{}`: {} bytes, {} {} needs {:?}",
                    o.name,
                    o.data.len(),
                    o.ty,
                    m.info.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×"),
                    want
                )));
            }
        }
        Ok(())
    }

    /// Token embeddings: one dequantized row per token.
    fn embed(&self, tokens: &[u32], overrides: &[WeightOverride<'_>]) -> Result<Vec<f32>> {
        let d = self.hp.n_embd;
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= self.hp.n_vocab) {
            return Err(ModelError::Invalid(format!("token id {t} is outside the vocabulary of {}", self.hp.n_vocab)));
        }
        let mut x = vec![0f32; tokens.len() * d];
        let emb = self.weights(&self.tok_embd, overrides);
        let (ty, data, row_bytes) = (emb.ty(), emb.data(), emb.row_bytes());
        x.par_chunks_mut(d).zip(tokens.par_iter()).for_each(|(row, &t)| {
            let t = t as usize;
            crate::quant::dequantize_row(ty, &data[t * row_bytes..(t + 1) * row_bytes], row)
                .expect("type checked at load");
        });
        Ok(x)
    }

    /// Run `tokens` at positions `cache.len()..`, appending them to the
    /// cache, and return the logits (`n_vocab` per token) of the tokens from
    /// index `logits_from` on (none when `logits_from == tokens.len()`).
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits_from: usize) -> Result<Vec<f32>> {
        self.forward_with(
            Input::Tokens(tokens),
            std::slice::from_mut(cache),
            Outputs { from: logits_from, logits: true },
            &mut Hooks::default(),
        )
    }

    /// The general forward pass: several sequences of equal length in one
    /// batch (`caches.len()` sequences, each one's rows consecutive in the
    /// input, all at positions `caches[s].len()..`), started from the token
    /// embeddings or from the residual stream entering a given layer, with
    /// optional hooks (an observer of every matrix product's input, weight
    /// overrides, the residual stream entering each layer).
    ///
    /// Starting at layer `L` needs the caches to hold layers `L..` of the
    /// earlier positions (nothing when they are empty). Rows from index
    /// `out.from` of each sequence are carried through the last layer; with
    /// `out.logits` their logits are returned (sequence-major, `n_vocab`
    /// each). Every row's values are the same whatever the batch holds, so
    /// this computes exactly what [`LlamaModel::forward`] computes.
    pub fn forward_with(
        &self,
        input: Input<'_>,
        caches: &mut [KvCache],
        out: Outputs,
        hooks: &mut Hooks<'_>,
    ) -> Result<Vec<f32>> {
        let hp = &self.hp;
        let d = hp.n_embd;
        let n_seq = caches.len();
        self.check_overrides(hooks.overrides)?;
        let (mut x, start) = match input {
            Input::Tokens(t) => {
                let mut x = self.embed(t, hooks.overrides)?;
                if let Some(s) = hp.embd_scale {
                    scale(&mut x, s);
                }
                (x, 0)
            }
            Input::Hidden { layer, x } => {
                if layer > hp.n_layer || x.len() % d != 0 {
                    return Err(ModelError::Invalid(format!(
                        "forward: hidden state of {} values for layer {layer} (n_embd {d}, {} layers)",
                        x.len(),
                        hp.n_layer
                    )));
                }
                (x.to_vec(), layer)
            }
        };
        let total = x.len() / d;
        if n_seq == 0 || total == 0 || !total.is_multiple_of(n_seq) {
            return Err(ModelError::Invalid(format!("forward: {total} rows for {n_seq} sequences")));
        }
        let n = total / n_seq;
        if out.from > n && start < hp.n_layer {
            return Err(ModelError::Invalid(format!("forward: {n} tokens, logits from {}", out.from)));
        }
        let p0 = caches[0].len;
        for c in caches.iter() {
            if c.len != p0 || c.len + n > c.n_ctx || c.k.len() != hp.n_layer {
                return Err(ModelError::Invalid(format!(
                    "forward: {} cached + {n} new tokens exceed the context of {} (or the caches differ)",
                    c.len, c.n_ctx
                )));
            }
        }

        // One table per RoPE base and scale: the global layers', and the
        // local layers' when they differ.
        let factors = self.rope_factors(caches[0].n_ctx);
        let rope_global = self.rope_table(p0, n, hp.freq_base, hp.freq_scale, factors);
        let rope_local = (self.layers.iter().any(|l| l.swa)
            && (hp.freq_base_swa, hp.freq_scale_swa) != (hp.freq_base, hp.freq_scale))
            .then(|| self.rope_table(p0, n, hp.freq_base_swa, hp.freq_scale_swa, factors));
        let last = hp.n_layer - 1;
        let keep: Vec<usize> = (0..n_seq).flat_map(|s| (s * n + out.from)..(s + 1) * n).collect();
        let mut rows = n_seq * n; // rows of `x` still carried (the last layer keeps only `keep`)
        let finish = |caches: &mut [KvCache]| {
            for c in caches.iter_mut() {
                c.len = p0 + n;
            }
        };
        if start == hp.n_layer {
            // The final state holds only the rows the last layer carried
            // (what the residual hook reports): all of them get logits.
            if let Some(r) = hooks.residual.as_mut() {
                r(hp.n_layer, &x);
            }
        }
        for (il, layer) in self.layers.iter().enumerate().skip(start) {
            if let Some(r) = hooks.residual.as_mut() {
                r(il, &x);
            }
            let h = rms_norm(&x, d, hp.eps, &layer.attn_norm);
            let [mut q, mut k, mut v] = match &layer.qkv {
                Qkv::Separate { wq, wk, wv } => self.matmuls([wq, wk, wv], &h, rows, hooks),
                Qkv::Fused(w) => {
                    let qkv = self.matmul(w, &h, rows, hooks);
                    let kv_dim = hp.n_head_kv * hp.head_dim;
                    split_columns(&qkv, rows, [hp.n_head * hp.head_dim, kv_dim, kv_dim])
                }
            };
            add_bias(&mut q, layer.bq.as_deref());
            add_bias(&mut k, layer.bk.as_deref());
            add_bias(&mut v, layer.bv.as_deref());
            if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                q = rms_norm(&q, hp.head_dim, hp.eps, qn);
                k = rms_norm(&k, hp.head_dim, hp.eps, kn);
            }
            let rope = match &rope_local {
                Some(t) if layer.swa => t,
                _ => &rope_global,
            };
            let window = if layer.swa { hp.n_swa } else { 0 };
            let q_dim = hp.n_head * hp.head_dim;
            let mut attn = Vec::with_capacity(rows * q_dim);
            for (s, cache) in caches.iter_mut().enumerate() {
                let (kv_dim, vs) = (cache.kv_dim, cache.v_stride);
                let qs = &mut q[s * n * q_dim..(s + 1) * n * q_dim];
                let ks = &mut k[s * n * kv_dim..(s + 1) * n * kv_dim];
                self.apply_rope(qs, hp.n_head, rope);
                self.apply_rope(ks, hp.n_head_kv, rope);
                if let Some(s) = hp.q_scale {
                    scale(qs, s);
                }
                round_to_f16(ks);
                cache.k[il][p0 * kv_dim..(p0 + n) * kv_dim].copy_from_slice(ks);
                let vs_rows = &mut v[s * n * kv_dim..(s + 1) * n * kv_dim];
                round_to_f16(vs_rows);
                let vc = &mut cache.v[il];
                for (i, row) in vs_rows.chunks_exact(kv_dim).enumerate() {
                    for (c, &val) in row.iter().enumerate() {
                        vc[c * vs + p0 + i] = val;
                    }
                }
                let a = self.attention(qs, &cache.k[il], &cache.v[il], p0, n, kv_dim, vs, window);
                if n_seq == 1 {
                    attn = a;
                } else {
                    attn.extend_from_slice(&a);
                }
            }
            if il == last && out.from > 0 {
                // Only the rows whose outputs are wanted go on (llama.cpp's output ids).
                attn = select_rows(&attn, q_dim, &keep);
                x = select_rows(&x, d, &keep);
                rows = keep.len();
                if rows == 0 {
                    finish(caches);
                    return Ok(Vec::new());
                }
            }
            let mut o = self.matmul(&layer.wo, &attn, rows, hooks);
            add_bias(&mut o, layer.bo.as_deref());
            if let Some(w) = &layer.post_attn_norm {
                o = rms_norm(&o, d, hp.eps, w);
            }
            add_into(&mut x, &o);
            let h = rms_norm(&x, d, hp.eps, &layer.ffn_norm);
            let mut down = match &layer.ffn {
                FfnWeights::Dense { gate, up, down } => {
                    let [mut g, u] = self.matmuls([gate, up], &h, rows, hooks);
                    let act = match hp.spec.activation {
                        Activation::Silu => swiglu,
                        Activation::GeluTanh => geglu,
                    };
                    g.par_chunks_mut(gate.rows).zip(u.par_chunks(gate.rows)).for_each(|(g, u)| act(g, u));
                    self.matmul(down, &g, rows, hooks)
                }
                FfnWeights::FusedUp { up, down } => {
                    let gu = self.matmul(up, &h, rows, hooks);
                    let n_ff = up.rows / 2;
                    let mut g = vec![0f32; rows * n_ff];
                    g.par_chunks_mut(n_ff).zip(gu.par_chunks(up.rows)).for_each(|(g, gu)| {
                        let (gate, up) = gu.split_at(n_ff);
                        g.copy_from_slice(gate);
                        swiglu(g, up);
                    });
                    self.matmul(down, &g, rows, hooks)
                }
                FfnWeights::Experts(e) => self.moe_ffn(e, &h, rows, hooks),
            };
            if let Some(w) = &layer.post_ffn_norm {
                down = rms_norm(&down, d, hp.eps, w);
            }
            add_into(&mut x, &down);
        }
        if start < hp.n_layer {
            finish(caches);
            if let Some(r) = hooks.residual.as_mut() {
                r(hp.n_layer, &x);
            }
        }
        if !out.logits || rows == 0 {
            return Ok(Vec::new());
        }
        let h = rms_norm(&x, d, hp.eps, &self.output_norm);
        let mut logits = self.matmul(&self.output, &h, rows, hooks);
        if let Some(cap) = hp.final_softcap {
            softcap(&mut logits, cap);
        }
        Ok(logits)
    }

    /// The frequency factors RoPE divides by for a cache of `n_ctx`
    /// positions: `rope_freqs`, else LongRoPE's long factors when llama.cpp's
    /// per-sequence context (`n_ctx` rounded up to a multiple of 256) exceeds
    /// the original context, else its short ones, else none.
    fn rope_factors(&self, n_ctx: usize) -> Option<&[f32]> {
        if let Some(f) = &self.rope_freqs {
            return Some(f);
        }
        if n_ctx.next_multiple_of(256) > self.hp.n_ctx_orig {
            self.rope_long.as_deref()
        } else {
            self.rope_short.as_deref()
        }
    }

    /// cos/sin of every (position, pair) for the `n` positions from `p0`,
    /// RoPE base `freq_base`, linear scale `freq_scale`, frequency factors
    /// `factors`, both multiplied by the attention factor.
    fn rope_table(
        &self,
        p0: usize,
        n: usize,
        freq_base: f32,
        freq_scale: f32,
        factors: Option<&[f32]>,
    ) -> Vec<(f32, f32)> {
        let hp = &self.hp;
        let half = hp.n_rot / 2;
        let theta_scale = freq_base.powf(-2.0 / hp.n_rot as f32);
        let m = hp.rope_attn_factor;
        let mut table = Vec::with_capacity(n * half);
        for i in 0..n {
            let mut theta = (p0 + i) as f32;
            for j in 0..half {
                let ff = factors.map_or(1.0, |f| f[j]);
                let t = freq_scale * (theta / ff);
                table.push((t.cos() * m, t.sin() * m));
                theta *= theta_scale;
            }
        }
        table
    }

    /// Rotate the first `n_rot` dimensions of every head of every row.
    fn apply_rope(&self, x: &mut [f32], n_heads: usize, table: &[(f32, f32)]) {
        let hp = &self.hp;
        let (hd, half) = (hp.head_dim, hp.n_rot / 2);
        let style = hp.rope;
        x.par_chunks_mut(n_heads * hd).enumerate().for_each(|(i, row)| {
            let cs = &table[i * half..(i + 1) * half];
            for head in row.chunks_mut(hd) {
                rotate(head, cs, style);
            }
        });
    }
}
