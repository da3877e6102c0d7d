//! Per-tensor sensitivity: the damage of quantizing one tensor alone.
//!
//! The reference is the source model itself. Its forward pass over a few
//! calibration sequences (spread evenly over the calibration text) is run
//! once; the residual stream entering every layer and the final
//! log-probabilities are kept. A candidate (one tensor quantized to one
//! type, with the importance matrix, exactly as `quantmix quantize` would
//! quantize it) is then evaluated by a forward pass that starts at the
//! first layer reading the tensor, from the cached residual stream, with
//! the tensor's weights overridden: layers before it are not recomputed.
//! The damage is the mean KL-divergence of the final logits against the
//! reference over every position of the sequences (as `llama-perplexity
//! --kl-divergence` computes it), with its standard error.
//!
//! Next to it a cheap proxy is computed: the imatrix-weighted squared
//! quantization error `Σ_rows Σ_j imp_j (w_j − q_j)²`.

use std::collections::BTreeMap;

use super::SensitivityError;
use rayon::prelude::*;

use crate::gguf::{GgmlType, TensorInfo};
use crate::model::{Hooks, Input, LlamaModel, Outputs, WeightOverride};
use crate::recipe::llama::allows_quantization;
use crate::recipe::roles;

/// The candidate types measured by default (llama.cpp's k-quants and Q8_0;
/// shapes that cannot take a k-quant get llama.cpp's fallback instead).
pub const DEFAULT_TYPES: &[GgmlType] =
    &[GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_0];

/// The types measured by default (`--predict-from`); every other candidate
/// of a tensor is predicted from them. Chosen by measurement: see the
/// README's "Sensitivity" section (tests/tools/bench_measurement.sh).
pub const DEFAULT_ANCHORS: &[GgmlType] = &[GgmlType::Q3_K];

/// One type a tensor can get, and the requested types that end there.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateSpec {
    pub ty: GgmlType,
    pub requested: Vec<GgmlType>,
    /// The source type: keeping it is lossless, nothing to measure.
    pub is_source: bool,
}

/// A tensor whose sensitivity is measured.
#[derive(Clone, Debug)]
pub struct Target {
    pub info: TensorInfo,
    pub layer: Option<usize>,
    pub role: String,
    /// The layer the forward pass restarts at when this tensor changes.
    pub start_layer: usize,
    pub candidates: Vec<CandidateSpec>,
}

/// The type a tensor of row length `row_len` really gets when `ty` is
/// asked for: `ty` itself, else llama.cpp's fallback, else F16 (what a
/// recipe without `[fallback]` gives).
pub fn effective_type(ty: GgmlType, row_len: u64) -> GgmlType {
    crate::plan::fitted_type(ty, row_len, &Default::default()).unwrap_or(GgmlType::F16)
}

/// The tensors to measure (every weight matrix the forward pass reads that
/// llama-quantize would quantize, in file order) with their candidates for
/// the requested `types`, and the rest (kept as they are).
pub fn targets(model: &LlamaModel, types: &[GgmlType]) -> (Vec<Target>, Vec<TensorInfo>) {
    let (mut out, mut fixed) = (Vec::new(), Vec::new());
    for t in model.file().tensors() {
        let start = model.first_layer_reading(&t.name);
        let (Some(start_layer), Ok(())) = (start, allows_quantization(&t.name, t.shape.len())) else {
            fixed.push(t.clone());
            continue;
        };
        let row_len = t.row_len();
        let mut cands: Vec<CandidateSpec> = Vec::new();
        for &ty in types {
            let eff = effective_type(ty, row_len);
            if !crate::quant::caps(eff).writable || !crate::quant::caps(eff).vec_dot {
                continue;
            }
            match cands.iter_mut().find(|c| c.ty == eff) {
                Some(c) => c.requested.push(ty),
                None => cands.push(CandidateSpec { ty: eff, requested: vec![ty], is_source: false }),
            }
        }
        match cands.iter_mut().find(|c| c.ty == t.ty) {
            Some(c) => c.is_source = true,
            None => cands.push(CandidateSpec { ty: t.ty, requested: Vec::new(), is_source: true }),
        }
        cands.sort_by(|a, b| {
            let bpw = |c: &CandidateSpec| c.ty.type_size() as f64 / c.ty.block_size() as f64;
            bpw(a).total_cmp(&bpw(b))
        });
        out.push(Target {
            info: t.clone(),
            layer: roles::layer_of(&t.name).map(|l| l as usize),
            role: roles::role_of(&t.name).to_string(),
            start_layer,
            candidates: cands,
        });
    }
    (out, fixed)
}

/// The reference: the source model's residual stream entering every layer
/// and its final log-probabilities, over `n_seq` sequences of `ctx` tokens.
pub struct Reference {
    pub n_seq: usize,
    pub ctx: usize,
    /// The sequences' tokens (sequence-major, BOS first when the vocabulary
    /// adds one).
    pub tokens: Vec<u32>,
    /// `hidden[l]`: the residual stream entering layer `l` (`l = n_layer`:
    /// the final hidden state), `n_seq · ctx · n_embd` values.
    pub hidden: Vec<Vec<f32>>,
    /// The reference's log-probabilities, `n_vocab` per position.
    pub logprobs: Vec<f32>,
    pub n_vocab: usize,
}

/// `ln Σ exp(logits)` of one row, in f64.
fn log_norm(logits: &[f32]) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    max as f64 + sum.ln()
}

/// `ln softmax(logits)` of one row.
fn log_softmax(logits: &[f32], out: &mut [f32]) {
    let norm = log_norm(logits);
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = (l as f64 - norm) as f32;
    }
}

/// `KL(p_ref ‖ p)` of one row from the reference's log-probabilities and
/// the candidate's logits (in f64; exactly 0 for equal logits).
pub fn row_kld(ref_lp: &[f32], logits: &[f32]) -> f64 {
    let norm = log_norm(logits);
    let mut kld = 0f64;
    for (&lr, &l) in ref_lp.iter().zip(logits) {
        let lr = lr as f64;
        kld += lr.exp() * (lr - (l as f64 - norm));
    }
    kld.max(0.0)
}

/// Where the `chunks` sequences of `ctx + 1` tokens start: spread evenly
/// over `n_tokens` tokens.
pub fn sequence_starts(n_tokens: usize, ctx: usize, chunks: usize) -> Result<Vec<usize>, SensitivityError> {
    if ctx < 8 || chunks == 0 {
        return Err(SensitivityError::Invalid(format!("sequences of {ctx} tokens × {chunks}: too small")));
    }
    if n_tokens < chunks * (ctx + 1) {
        return Err(SensitivityError::Invalid(format!(
            "the calibration text has {n_tokens} tokens; {chunks} sequences of {ctx} tokens need {}",
            chunks * (ctx + 1)
        )));
    }
    let span = n_tokens - (ctx + 1);
    Ok((0..chunks).map(|i| if chunks == 1 { 0 } else { i * span / (chunks - 1) }).collect())
}

impl Reference {
    /// Run the source model over the sequences.
    pub fn compute(
        model: &LlamaModel,
        tokens: &[u32],
        bos: Option<u32>,
        ctx: usize,
        chunks: usize,
    ) -> Result<Reference, SensitivityError> {
        let starts = sequence_starts(tokens.len(), ctx, chunks)?;
        crate::model::hparams::check_context(&model.hp, ctx, chunks)?;
        let mut seq = Vec::with_capacity(chunks * ctx);
        for &s in &starts {
            let mut part = tokens[s..s + ctx].to_vec();
            if let Some(b) = bos {
                part[0] = b;
            }
            seq.extend_from_slice(&part);
        }
        let n_layer = model.hp.n_layer;
        let mut hidden: Vec<Vec<f32>> = vec![Vec::new(); n_layer + 1];
        let mut caches: Vec<_> = (0..chunks).map(|_| model.new_cache(ctx)).collect();
        let logits = {
            let mut keep = |l: usize, x: &[f32]| hidden[l] = x.to_vec();
            let mut hooks = Hooks { residual: Some(&mut keep), ..Default::default() };
            model.forward_with(Input::Tokens(&seq), &mut caches, Outputs { from: 0, logits: true }, &mut hooks)?
        };
        if let Some(v) = logits.iter().find(|v| !v.is_finite()) {
            return Err(SensitivityError::Invalid(format!(
                "{}: the model computes a non-finite logit ({v}) on the calibration text; its weights or \
                 hyper-parameters are not usable",
                model.file().path().display()
            )));
        }
        let n_vocab = model.hp.n_vocab;
        let mut logprobs = vec![0f32; logits.len()];
        logprobs.par_chunks_mut(n_vocab).zip(logits.par_chunks(n_vocab)).for_each(|(o, l)| log_softmax(l, o));
        Ok(Reference { n_seq: chunks, ctx, tokens: seq, hidden, logprobs, n_vocab })
    }

    /// Mean KL-divergence (and its standard error) of the model with one
    /// weight matrix replaced, starting at `start_layer`.
    pub fn divergence(
        &self,
        model: &LlamaModel,
        start_layer: usize,
        over: WeightOverride<'_>,
    ) -> Result<(f64, f64), SensitivityError> {
        let mut caches: Vec<_> = (0..self.n_seq).map(|_| model.new_cache(self.ctx)).collect();
        let input = if start_layer == 0 {
            Input::Tokens(&self.tokens)
        } else {
            Input::Hidden { layer: start_layer, x: &self.hidden[start_layer] }
        };
        let overrides = [over];
        let mut hooks = Hooks { overrides: &overrides, ..Default::default() };
        let logits = model.forward_with(input, &mut caches, Outputs { from: 0, logits: true }, &mut hooks)?;
        let n_vocab = self.n_vocab;
        let per_row: Vec<f64> =
            logits.par_chunks(n_vocab).zip(self.logprobs.par_chunks(n_vocab)).map(|(l, r)| row_kld(r, l)).collect();
        let n = per_row.len();
        if n == 0 {
            return Err(SensitivityError::Invalid("no position was compared".into()));
        }
        let (sum, sum2) = per_row.iter().fold((0.0, 0.0), |(a, b), &k| (a + k, b + k * k));
        if !sum.is_finite() {
            return Err(SensitivityError::Invalid(format!(
                "`{}` as {}: the KL-divergence is not finite ({sum})",
                over.name, over.ty
            )));
        }
        Ok(crate::eval::mean_and_uncertainty(sum, sum2, n))
    }
}

/// One measured candidate.
#[derive(Clone, Debug)]
pub struct Measured {
    pub ty: GgmlType,
    pub requested: Vec<GgmlType>,
    pub bytes: u64,
    pub kld: f64,
    pub kld_err: f64,
    pub proxy: f64,
    /// Predicted from an anchor's measurement, not measured.
    pub predicted: bool,
}

/// Whether candidate `c` is measured when only `anchors` (requested
/// types) are: all are when `anchors` is empty (the exhaustive mode).
pub fn is_anchor(c: &CandidateSpec, anchors: &[GgmlType]) -> bool {
    anchors.is_empty() || c.requested.iter().any(|r| anchors.contains(r))
}

/// Candidates of `target` that a run with `anchors` measures by a forward
/// pass (every one but the source when no anchor of it is measurable).
pub fn measured_candidates<'a>(target: &'a Target, anchors: &'a [GgmlType]) -> impl Iterator<Item = &'a CandidateSpec> {
    let any = target.candidates.iter().any(|c| !c.is_source && is_anchor(c, anchors));
    target.candidates.iter().filter(move |c| !c.is_source && (!any || is_anchor(c, anchors)))
}

/// The tensor's weights as f32 (dequantized from the file).
pub fn weights_f32(model: &LlamaModel, t: &TensorInfo) -> Result<Vec<f32>, SensitivityError> {
    let data = model.file().tensor_data(t);
    let mut w = vec![0f32; t.n_elements() as usize];
    crate::quant::dequantize_rows(t.ty, data, t.row_len() as usize, &mut w)?;
    Ok(w)
}

/// Quantize `w` (rows of `row_len`) to `ty` with the importance vector, as
/// `quantmix quantize` does; returns the bytes and the proxy. An importance
/// of `n · row_len` values splits `w` into `n` equal stacks of rows (the
/// experts of a 3-D tensor), each quantized and weighted with its own
/// vector.
pub fn quantize_candidate(
    ty: GgmlType,
    w: &[f32],
    row_len: usize,
    imp: Option<&[f32]>,
) -> Result<(Vec<u8>, f64), SensitivityError> {
    let row_bytes =
        ty.row_bytes(row_len as u64)
            .ok_or_else(|| SensitivityError::Invalid(format!("{ty} does not fit rows of {row_len}")))? as usize;
    let rows = w.len() / row_len;
    let n_mat = imp.map_or(1, |v| v.len() / row_len.max(1)).max(1);
    if !rows.is_multiple_of(n_mat) || imp.is_some_and(|v| v.len() != n_mat * row_len) {
        return Err(SensitivityError::Invalid(format!(
            "an importance vector of {} values for {rows} rows of {row_len}",
            imp.map_or(0, |v| v.len())
        )));
    }
    let mat_rows = rows / n_mat;
    let mut q = vec![0u8; row_bytes * rows];
    let mut back = vec![0f32; w.len()];
    let mut proxy = 0f64;
    for (m, (qm, (wm, bm))) in q
        .chunks_mut(row_bytes * mat_rows)
        .zip(w.chunks(row_len * mat_rows).zip(back.chunks_mut(row_len * mat_rows)))
        .enumerate()
    {
        let im = imp.map(|v| &v[m * row_len..(m + 1) * row_len]);
        crate::quant::quantize_rows(ty, wm, row_len, im, qm)?;
        crate::quant::dequantize_rows(ty, qm, row_len, bm)?;
        for (rw, rb) in wm.chunks_exact(row_len).zip(bm.chunks_exact(row_len)) {
            for (j, (&a, &b)) in rw.iter().zip(rb).enumerate() {
                let e = (a - b) as f64;
                proxy += im.map_or(1.0, |v| v[j] as f64) * e * e;
            }
        }
    }
    Ok((q, proxy))
}

/// Whether any tensor llama-quantize would quantize is stored quantized
/// (the sources the exact-activations mode is for).
pub fn has_quantized_weights(tensors: &[TensorInfo]) -> bool {
    tensors.iter().any(|t| t.ty.is_quantized() && allows_quantization(&t.name, t.shape.len()).is_ok())
}

/// The models a measurement runs on: `source`, whose tensors are measured
/// (and quantized from), and `forward`, which computes the reference and
/// every candidate — the source itself, or its f32 copy ([`f32_copy`]) in
/// the exact-activations mode, where candidates are also fed to the
/// forward pass dequantized, so that no matmul rounds its activations to
/// 8 bits.
#[derive(Clone, Copy)]
pub struct Models<'a> {
    pub source: &'a LlamaModel,
    pub forward: &'a LlamaModel,
    pub exact: bool,
}

/// Write `model` with every quantized tensor dequantized to F32 (the same
/// values, exactly) as a GGUF at `out`.
pub fn f32_copy(model: &LlamaModel, out: &std::path::Path, ctx: crate::job::Ctx<'_>) -> Result<(), SensitivityError> {
    use crate::gguf::{GgufWriter, TensorSpec};
    let file = model.file();
    let ty_of = |t: &TensorInfo| if t.ty.is_quantized() { GgmlType::F32 } else { t.ty };
    let specs: Vec<TensorSpec> = file
        .tensors()
        .iter()
        .map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: ty_of(t) })
        .collect();
    let gerr = |e: crate::gguf::GgufError| SensitivityError::Model(e.into());
    let alignment = file.metadata().get_u64("general.alignment").filter(|a| *a > 0).unwrap_or(32);
    let mut w = GgufWriter::create(out, file.metadata(), &specs, alignment).map_err(gerr)?;
    w.set_cancel(ctx.cancel.clone());
    for t in file.tensors() {
        if t.ty.is_quantized() {
            let x = weights_f32(model, t)?;
            w.write_tensor(bytemuck::cast_slice(&x)).map_err(gerr)?;
        } else {
            w.write_tensor(file.tensor_data(t)).map_err(gerr)?;
        }
    }
    w.finish().map_err(gerr)?;
    Ok(())
}

/// Measure every candidate of `target`: a step of progress per measured
/// candidate, cancellation checked before each.
pub fn measure_target(
    models: Models<'_>,
    reference: &Reference,
    target: &Target,
    importance: &BTreeMap<String, Vec<f32>>,
    anchors: &[GgmlType],
    ctx: crate::job::Ctx<'_>,
) -> Result<Vec<Measured>, SensitivityError> {
    let t = &target.info;
    let row_len = t.row_len() as usize;
    // One vector, or one per expert of a 3-D tensor (as `quantize` uses it).
    let n_mat: usize = t.shape.iter().skip(2).map(|&d| d as usize).product();
    let imp = importance.get(&t.name).map(Vec::as_slice).filter(|v| v.len() == row_len || v.len() == row_len * n_mat);
    let w = weights_f32(models.source, t)?;
    let measured: Vec<GgmlType> = measured_candidates(target, anchors).map(|c| c.ty).collect();
    let mut out = Vec::with_capacity(target.candidates.len());
    for c in &target.candidates {
        if c.is_source {
            out.push(Measured {
                ty: c.ty,
                requested: c.requested.clone(),
                bytes: t.n_bytes(),
                kld: 0.0,
                kld_err: 0.0,
                proxy: 0.0,
                predicted: false,
            });
            continue;
        }
        ctx.cancel.check()?;
        let (q, proxy) = quantize_candidate(c.ty, &w, row_len, imp)?;
        if !measured.contains(&c.ty) {
            let m = Measured {
                ty: c.ty,
                requested: c.requested.clone(),
                bytes: q.len() as u64,
                kld: f64::NAN,
                kld_err: f64::NAN,
                proxy,
                predicted: true,
            };
            out.push(m);
            continue;
        }
        let dequantized;
        let over = if models.exact {
            let mut x = vec![0f32; w.len()];
            crate::quant::dequantize_rows(c.ty, &q, row_len, &mut x)?;
            dequantized = x;
            WeightOverride { name: &t.name, ty: GgmlType::F32, data: bytemuck::cast_slice(&dequantized) }
        } else {
            WeightOverride { name: &t.name, ty: c.ty, data: &q }
        };
        let (kld, kld_err) = reference.divergence(models.forward, target.start_layer, over)?;
        out.push(Measured {
            ty: c.ty,
            requested: c.requested.clone(),
            bytes: q.len() as u64,
            kld,
            kld_err,
            proxy,
            predicted: false,
        });
        ctx.progress.advance(1);
    }
    predict(&mut out);
    Ok(out)
}

/// Fill in the predicted candidates from the measured ones (the anchors):
/// a tensor's damage is taken proportional to its imatrix-weighted squared
/// error, `ΔKLD(c) ≈ ΔKLD(a) · proxy(c) / proxy(a)`, with `a` the anchor
/// nearest to `c` in log proxy.
fn predict(out: &mut [Measured]) {
    let anchors: Vec<(f64, f64, f64)> =
        out.iter().filter(|m| !m.predicted && m.proxy > 0.0).map(|m| (m.proxy, m.kld, m.kld_err)).collect();
    for m in out.iter_mut().filter(|m| m.predicted) {
        let nearest = anchors.iter().min_by(|a, b| {
            let d = |x: &(f64, f64, f64)| (x.0.ln() - m.proxy.max(f64::MIN_POSITIVE).ln()).abs();
            d(a).total_cmp(&d(b))
        });
        let (kld, err) = match nearest {
            Some(&(p, k, e)) => (k * m.proxy / p, e * m.proxy / p),
            None => (0.0, 0.0),
        };
        m.kld = kld;
        m.kld_err = err;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_types_follow_llama_cpp_fallbacks() {
        assert_eq!(effective_type(GgmlType::Q4_K, 1536), GgmlType::Q4_K);
        assert_eq!(effective_type(GgmlType::Q4_K, 576), GgmlType::Q5_0);
        assert_eq!(effective_type(GgmlType::Q2_K, 576), GgmlType::Q4_0);
        assert_eq!(effective_type(GgmlType::Q6_K, 576), GgmlType::Q8_0);
        assert_eq!(effective_type(GgmlType::Q8_0, 48), GgmlType::F16);
        assert_eq!(effective_type(GgmlType::IQ4_XS, 576), GgmlType::IQ4_NL);
        assert_eq!(effective_type(GgmlType::IQ4_NL, 576), GgmlType::IQ4_NL);
        assert_eq!(effective_type(GgmlType::IQ3_XXS, 576), GgmlType::IQ4_NL);
        assert_eq!(effective_type(GgmlType::IQ3_S, 1536), GgmlType::IQ3_S);
    }

    #[test]
    fn kld_of_equal_logits_is_zero_and_positive_otherwise() {
        let a: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let mut lp = vec![0f32; 100];
        log_softmax(&a, &mut lp);
        assert!(row_kld(&lp, &a) < 1e-7);
        let b: Vec<f32> = a.iter().enumerate().map(|(i, &x)| x + (i % 3) as f32 * 0.1).collect();
        let k = row_kld(&lp, &b);
        assert!(k > 1e-4 && k < 0.1, "{k}");
    }

    #[test]
    fn sequences_spread_over_the_text() {
        assert_eq!(sequence_starts(1000, 99, 3).unwrap(), vec![0, 450, 900]);
        assert_eq!(sequence_starts(1000, 99, 1).unwrap(), vec![0]);
        assert!(sequence_starts(100, 99, 2).is_err());
    }
}
