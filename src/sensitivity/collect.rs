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

use std::collections::BTreeMap;

use super::imatrix::{Entry, Imatrix};
use super::SensitivityError;
use crate::eval::ChunkPlan;
use crate::model::{Hooks, Input, LlamaModel, Outputs};

/// Running per-matrix sums (what llama-imatrix keeps in memory).
#[derive(Clone, Debug, Default)]
pub struct Collector {
    pub process_output: bool,
    stats: BTreeMap<String, (Vec<f32>, u64)>,
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
        let (acc, count) = self.stats.entry(name.to_string()).or_insert_with(|| (vec![0f32; cols], 0));
        if acc.len() != cols {
            self.error.get_or_insert_with(|| format!("`{name}`: inconsistent row length {cols} vs {}", acc.len()));
            return;
        }
        for row in x.chunks_exact(cols) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += v * v;
            }
        }
        *count += rows as u64;
        if acc.iter().any(|v| !v.is_finite()) {
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
            .map(|(name, (sums, count))| (name, Entry { sums, counts: vec![count as f32] }))
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
        let mut obs = |name: &str, x: &[f32], rows: usize| collector.observe(name, x, rows);
        let mut hooks = Hooks { observer: Some(&mut obs), ..Default::default() };
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
