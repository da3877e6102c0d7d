//! Collecting an importance matrix the way `llama-imatrix` does.
//!
//! For every weight-matrix product of the forward pass whose weight name
//! starts with `blk.` (and `output.weight` with `process_output`), and whose
//! batch has at least 16 rows, each input column's squared activations are
//! summed over the rows (in f32, row by row) and the rows are counted. The
//! text is tokenized whole (BOS first when the vocabulary adds one), cut into
//! `n_ctx`-token chunks (at most `max_chunks`; at least two chunks of text
//! are required), each chunk evaluated from an empty cache with its first
//! token replaced by BOS when the vocabulary adds BOS, every row of the last
//! layer computed (llama-imatrix requests all logits). The file records
//! `chunk_count` = chunks processed and `chunk_size` = `n_ctx`.
//!
//! Expert tensors (ggml's `MUL_MAT_ID`, whatever the batch size) keep one
//! sum vector and one token count per expert: for every slot of the
//! selected experts, then every token, the routed row's squared values are
//! added to its expert's sums and the expert's count goes up by one —
//! llama-imatrix's loop, in its order (the sums are f32).

use std::collections::BTreeMap;

use super::imatrix::{Entry, Imatrix};
use super::SensitivityError;
use crate::eval::ChunkPlan;
use crate::model::moe::ExpertInput;
use crate::model::{Hooks, Input, LlamaModel, Outputs};

/// Running per-matrix sums (what llama-imatrix keeps in memory).
#[derive(Clone, Debug, Default)]
pub struct Collector {
    pub process_output: bool,
    /// Sums (`cols` per matrix) and counts (one, or one per expert).
    stats: BTreeMap<String, (Vec<f32>, Vec<u64>)>,
    error: Option<String>,
}

impl Collector {
    pub fn new(process_output: bool) -> Collector {
        Collector { process_output, ..Default::default() }
    }

    /// Whether llama-imatrix collects the input of this product.
    pub fn wants(&self, name: &str, rows: usize) -> bool {
        rows >= 16 && (name.starts_with("blk.") || (self.process_output && name == "output.weight"))
    }

    /// Add one product's input activations (`rows × cols`).
    pub fn observe(&mut self, name: &str, x: &[f32], rows: usize) {
        if !self.wants(name, rows) || x.is_empty() {
            return;
        }
        let cols = x.len() / rows;
        let (acc, count) = self.stats.entry(name.to_string()).or_insert_with(|| (vec![0f32; cols], vec![0]));
        if acc.len() != cols || count.len() != 1 {
            self.error.get_or_insert_with(|| format!("`{name}`: inconsistent row length {cols} vs {}", acc.len()));
            return;
        }
        for row in x.chunks_exact(cols) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v * v;
            }
        }
        count[0] += rows as u64;
        if acc.iter().any(|v| !v.is_finite()) {
            self.error.get_or_insert_with(|| format!("non-finite activations in the input of `{name}`"));
        }
    }

    /// Add one expert product's input (every one: llama-imatrix collects
    /// all of `MUL_MAT_ID`'s).
    pub fn observe_experts(&mut self, inp: &ExpertInput<'_>) {
        let (cols, n_expert, k) = (inp.cols, inp.n_expert, inp.n_used);
        if cols == 0 || k == 0 {
            return;
        }
        let n_tokens = inp.ids.len() / k;
        let name = inp.name;
        let (acc, counts) =
            self.stats.entry(name.to_string()).or_insert_with(|| (vec![0f32; cols * n_expert], vec![0; n_expert]));
        if acc.len() != cols * n_expert || counts.len() != n_expert {
            self.error.get_or_insert_with(|| {
                format!("`{name}`: inconsistent shape {cols} × {n_expert} experts vs {} values", acc.len())
            });
            return;
        }
        let mut touched = vec![false; n_expert];
        for slot in 0..k {
            for t in 0..n_tokens {
                let e = inp.ids[t * k + slot] as usize;
                let row = if inp.per_slot { t * k + slot } else { t };
                let x = &inp.x[row * cols..(row + 1) * cols];
                counts[e] += 1;
                touched[e] = true;
                for (a, &v) in acc[e * cols..(e + 1) * cols].iter_mut().zip(x) {
                    *a += v * v;
                }
            }
        }
        let bad =
            touched.iter().enumerate().any(|(e, &t)| t && acc[e * cols..(e + 1) * cols].iter().any(|v| !v.is_finite()));
        if bad {
            self.error.get_or_insert_with(|| format!("non-finite activations in the input of `{name}`"));
        }
    }

    /// The collected matrix, as llama-imatrix would save it.
    pub fn finish(self, datasets: Vec<String>, chunk_count: u32, chunk_size: u32) -> Result<Imatrix, SensitivityError> {
        if let Some(e) = self.error {
            return Err(SensitivityError::Invalid(e));
        }
        let entries = self
            .stats
            .into_iter()
            .map(|(name, (sums, counts))| {
                (name, Entry { sums, counts: counts.into_iter().map(|c| c as f32).collect() })
            })
            .collect();
        Ok(Imatrix { entries, datasets, chunk_count, chunk_size, legacy: false })
    }
}

/// Options of [`collect`].
#[derive(Clone, Debug)]
pub struct CollectOptions {
    pub n_ctx: usize,
    pub max_chunks: Option<usize>,
    pub process_output: bool,
}

/// Collect the importance matrix of `model` over `tokens` (the whole
/// tokenized calibration text), one stage of progress, a step per chunk.
pub fn collect(
    model: &LlamaModel,
    tokens: &[u32],
    bos: Option<u32>,
    opts: &CollectOptions,
    datasets: Vec<String>,
    ctx: crate::job::Ctx<'_>,
) -> Result<Imatrix, SensitivityError> {
    let plan = ChunkPlan::new(tokens.len(), opts.n_ctx, opts.max_chunks)?;
    ctx.progress.stage("imatrix", plan.n_chunks as u64, crate::job::Unit::Steps);
    let mut collector = Collector::new(opts.process_output);
    crate::model::hparams::check_context(&model.hp, plan.n_ctx, 1)?;
    let mut cache = model.new_cache(plan.n_ctx);
    let mut batch = Vec::with_capacity(plan.n_ctx);
    for c in 0..plan.n_chunks {
        ctx.cancel.check()?;
        batch.clear();
        batch.extend_from_slice(&tokens[c * plan.n_ctx..(c + 1) * plan.n_ctx]);
        if let Some(b) = bos {
            batch[0] = b;
        }
        cache.clear();
        let collector = std::cell::RefCell::new(&mut collector);
        let mut obs = |name: &str, x: &[f32], rows: usize| collector.borrow_mut().observe(name, x, rows);
        let mut exp = |inp: &ExpertInput<'_>| collector.borrow_mut().observe_experts(inp);
        let mut hooks = Hooks { observer: Some(&mut obs), experts: Some(&mut exp), ..Default::default() };
        model.forward_with(
            Input::Tokens(&batch),
            std::slice::from_mut(&mut cache),
            Outputs { from: 0, logits: opts.process_output },
            &mut hooks,
        )?;
        ctx.progress.advance(1);
    }
    ctx.progress.finish();
    collector.finish(datasets, plan.n_chunks as u32, plan.n_ctx as u32)
}

/// `quantmix imatrix` as a job: collect on the calibration text and write
/// the importance matrix in llama.cpp's GGUF imatrix format.
#[derive(Clone, Debug)]
pub struct ImatrixJob {
    pub model: std::path::PathBuf,
    /// Calibration files (empty: the shipped set).
    pub calibration: Vec<std::path::PathBuf>,
    pub output: std::path::PathBuf,
    pub opts: CollectOptions,
}

/// Run an [`ImatrixJob`]; returns the importance matrix written.
pub fn run_job(job: &ImatrixJob, ctx: crate::job::Ctx<'_>) -> Result<Imatrix, SensitivityError> {
    let mut inputs = vec![job.model.clone()];
    inputs.extend(job.calibration.iter().cloned());
    crate::fsutil::check_outputs(&[&job.output], &inputs)?;
    let cal = super::calibration::Calibration::from_args(&job.calibration)?;
    let model = LlamaModel::open(&job.model)?;
    let tok = crate::model::Tokenizer::from_metadata(model.file().metadata(), &job.model)?;
    let tokens = tok.encode(&cal.joined(), true, false)?;
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let n_chunks = (tokens.len() / job.opts.n_ctx.max(1)).min(job.opts.max_chunks.unwrap_or(usize::MAX));
    ctx.progress.note(
        crate::job::Level::Info,
        &format!(
            "imatrix: {} tokens of {}; {n_chunks} chunks of {} tokens",
            tokens.len(),
            cal.describe(),
            job.opts.n_ctx
        ),
    );
    let m = ctx.install(|| collect(&model, &tokens, bos, &job.opts, cal.sources.clone(), ctx))??;
    m.save_gguf(&job.output)?;
    Ok(m)
}
