//! One evaluation run over several GGUF files (`quantmix eval`): size,
//! perplexity, KL-divergence against a reference and throughput per file.
//!
//! - The text is tokenized with the reference's tokenizer; every file must
//!   produce the same tokens (one vocabulary), or the run stops.
//! - The reference is evaluated first; its log-probabilities of every scored
//!   position are kept per chunk (in memory, or in a temporary file when
//!   they would exceed [`EvalOptions::spill_above`] bytes), then every other
//!   file is evaluated chunk by chunk against them ([`super::kld`]).
//! - Throughput ([`measure_speed`]) as llama-bench measures it: prompt
//!   processing is one batch of `pp_tokens` tokens from an empty cache
//!   (logits of the last token only), generation is `tg_tokens` single
//!   tokens from an empty cache; one warm-up of each, then `reps` timed
//!   runs; the median and the min–max spread are reported.

use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::kld::{Kld, KldSummary, RefLogProbs};
use super::perplexity::Perplexity;
use super::{try_each_chunk, ChunkPlan, EvalError};
use crate::job::{Ctx, Unit};
use crate::model::{LlamaModel, ModelError, Tokenizer};
use crate::report::{human_bytes, Table};

/// The project's held-out evaluation text (`tests/data/eval.txt`, an
/// original story written for quantmix). It is never used as calibration
/// text, so quality measured on it is not inflated by the imatrix.
pub const DEFAULT_TEXT: &str = include_str!("../../tests/data/eval.txt");

/// How [`DEFAULT_TEXT`] is named in reports.
pub const DEFAULT_TEXT_NAME: &str = "built-in held-out evaluation text (tests/data/eval.txt; not calibration text)";

/// Throughput measurement settings.
#[derive(Clone, Copy, Debug)]
pub struct SpeedOptions {
    /// Tokens of the prompt-processing batch (llama-bench `-p`).
    pub pp_tokens: usize,
    /// Generated tokens (llama-bench `-n`).
    pub tg_tokens: usize,
    /// Timed repetitions after one warm-up.
    pub reps: usize,
}

impl Default for SpeedOptions {
    fn default() -> Self {
        SpeedOptions { pp_tokens: 512, tg_tokens: 32, reps: 3 }
    }
}

/// Settings of an evaluation run.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Tokens per perplexity chunk (llama-perplexity `-c`).
    pub n_ctx: usize,
    /// At most this many chunks (default: as many as the text holds).
    pub max_chunks: Option<usize>,
    /// Throughput measurement, or `None` to skip it.
    pub speed: Option<SpeedOptions>,
    /// Keep the reference log-probabilities in a temporary file when they
    /// would take more than this many bytes of memory.
    pub spill_above: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { n_ctx: 512, max_chunks: None, speed: Some(SpeedOptions::default()), spill_above: 1 << 30 }
    }
}

/// Tokens per second of one measurement: median and spread over the timed runs.
#[derive(Clone, Debug, Serialize)]
pub struct Speed {
    pub tokens: usize,
    pub reps: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Speed {
    /// From the seconds each repetition took for `tokens` tokens.
    pub fn from_seconds(tokens: usize, secs: &[f64]) -> Speed {
        let mut r: Vec<f64> = secs.iter().map(|&s| tokens as f64 / s.max(1e-12)).collect();
        r.sort_by(f64::total_cmp);
        let n = r.len();
        let median = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            r[n / 2]
        } else {
            0.5 * (r[n / 2 - 1] + r[n / 2])
        };
        Speed {
            tokens,
            reps: n,
            median,
            min: r.first().copied().unwrap_or(f64::NAN),
            max: r.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The results of one file.
#[derive(Clone, Debug)]
pub struct FileEval {
    pub path: PathBuf,
    /// File size on disk.
    pub bytes: u64,
    /// Weights (elements of every tensor).
    pub params: u64,
    /// Bits per weight of the tensor data.
    pub bpw: f64,
    /// This file is the reference (its KLD statistics are `None`).
    pub is_reference: bool,
    pub ppl: f64,
    pub ppl_err: f64,
    /// Scored positions.
    pub scored: usize,
    pub kld: Option<KldSummary>,
    pub pp: Option<Speed>,
    pub tg: Option<Speed>,
}

/// The results of a run.
#[derive(Clone, Debug)]
pub struct EvalReport {
    pub reference: PathBuf,
    /// The reference's PPL and ± (also when it is not one of the files).
    pub reference_ppl: (f64, f64),
    pub n_tokens: usize,
    pub plan: ChunkPlan,
    pub threads: usize,
    pub speed: Option<SpeedOptions>,
    /// Whether the reference log-probabilities went to a temporary file.
    pub spilled: bool,
    pub files: Vec<FileEval>,
}

/// The reference's log-probabilities per chunk.
enum RefStore {
    Memory(Vec<RefLogProbs>),
    Disk { file: File, n_vocab: usize, rows: usize, chunk_bytes: u64, n: usize },
}

impl RefStore {
    fn new(spill: bool, n_vocab: usize, rows: usize) -> Result<RefStore, EvalError> {
        if !spill {
            return Ok(RefStore::Memory(Vec::new()));
        }
        let file =
            tempfile::tempfile().map_err(|e| io_err("a temporary file for the reference log-probabilities", e))?;
        let chunk_bytes = (rows * 8 + rows * n_vocab * 2) as u64;
        Ok(RefStore::Disk { file, n_vocab, rows, chunk_bytes, n: 0 })
    }

    fn push(&mut self, r: RefLogProbs) -> Result<(), EvalError> {
        match self {
            RefStore::Memory(v) => v.push(r),
            RefStore::Disk { file, n, chunk_bytes, .. } => {
                file.seek(SeekFrom::Start(*n as u64 * *chunk_bytes))
                    .and_then(|_| {
                        let mut w = BufWriter::new(&mut *file);
                        r.write_to(&mut w)?;
                        w.flush()
                    })
                    .map_err(|e| io_err("the temporary reference log-probabilities", e))?;
                *n += 1;
            }
        }
        Ok(())
    }

    fn get(&mut self, c: usize) -> Result<std::borrow::Cow<'_, RefLogProbs>, EvalError> {
        match self {
            RefStore::Memory(v) => Ok(std::borrow::Cow::Borrowed(&v[c])),
            RefStore::Disk { file, n_vocab, rows, chunk_bytes, .. } => file
                .seek(SeekFrom::Start(c as u64 * *chunk_bytes))
                .and_then(|_| RefLogProbs::read_from(&mut BufReader::new(&mut *file), *n_vocab, *rows))
                .map(std::borrow::Cow::Owned)
                .map_err(|e| io_err("the temporary reference log-probabilities", e)),
        }
    }
}

fn io_err(what: &str, e: std::io::Error) -> EvalError {
    EvalError::Invalid(format!("{what}: {e}"))
}

/// Tokens of `text` as llama-perplexity tokenizes it (special tokens added,
/// not parsed), the BOS id to put first in every chunk, and the tokenizer.
pub fn tokenize(model: &LlamaModel, text: &str) -> Result<(Vec<u32>, Option<u32>), EvalError> {
    let tok = Tokenizer::from_metadata(model.file().metadata(), model.file().path())?;
    let tokens = tok.encode(text, true, false)?;
    let bos = if tok.add_bos() { tok.bos() } else { None };
    Ok((tokens, bos))
}

/// Prompt-processing and generation throughput of `model` with the
/// current rayon pool, as described in the module documentation. `tokens`
/// supplies the token ids (repeated when shorter than needed).
pub fn measure_speed(
    model: &LlamaModel,
    tokens: &[u32],
    bos: Option<u32>,
    opts: SpeedOptions,
    ctx: Ctx<'_>,
) -> Result<(Speed, Speed), EvalError> {
    if tokens.is_empty() || opts.pp_tokens == 0 || opts.tg_tokens == 0 || opts.reps == 0 {
        return Err(EvalError::Invalid("throughput: no tokens, or zero tokens/repetitions requested".into()));
    }
    crate::model::hparams::check_context(&model.hp, opts.pp_tokens.max(opts.tg_tokens), 2)?;
    let mut batch: Vec<u32> = tokens.iter().copied().cycle().take(opts.pp_tokens).collect();
    if let Some(b) = bos {
        batch[0] = b;
    }
    let gen: Vec<u32> = batch.iter().copied().cycle().take(opts.tg_tokens).collect();
    let mut pp_cache = model.new_cache(opts.pp_tokens);
    let mut tg_cache = model.new_cache(opts.tg_tokens);
    let pp = |cache: &mut crate::model::KvCache| -> Result<f64, ModelError> {
        cache.clear();
        let t = Instant::now();
        model.forward(&batch, cache, batch.len() - 1)?;
        Ok(t.elapsed().as_secs_f64())
    };
    let tg = |cache: &mut crate::model::KvCache| -> Result<f64, ModelError> {
        cache.clear();
        let t = Instant::now();
        for &g in &gen {
            model.forward(&[g], cache, 0)?;
        }
        Ok(t.elapsed().as_secs_f64())
    };
    pp(&mut pp_cache)?;
    step(ctx)?;
    let mut pp_secs = Vec::with_capacity(opts.reps);
    for _ in 0..opts.reps {
        pp_secs.push(pp(&mut pp_cache)?);
        step(ctx)?;
    }
    tg(&mut tg_cache)?;
    step(ctx)?;
    let mut tg_secs = Vec::with_capacity(opts.reps);
    for _ in 0..opts.reps {
        tg_secs.push(tg(&mut tg_cache)?);
        step(ctx)?;
    }
    Ok((Speed::from_seconds(opts.pp_tokens, &pp_secs), Speed::from_seconds(opts.tg_tokens, &tg_secs)))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn file_info(model: &LlamaModel) -> Result<(u64, u64, f64), EvalError> {
    let path = model.file().path();
    let bytes = std::fs::metadata(path).map_err(|e| io_err(&format!("{}", path.display()), e))?.len();
    let (params, data) = model.weight_stats();
    Ok((bytes, params, data as f64 * 8.0 / params.max(1) as f64))
}

/// A file's stage of work begins: `steps` steps follow.
fn begin(ctx: Ctx<'_>, path: &Path, what: &str, steps: u64) {
    ctx.progress.stage(&display_name(path), steps, Unit::Steps);
    ctx.progress.item(what);
}

/// One chunk evaluated or one timed run done; stop if cancelled.
fn step(ctx: Ctx<'_>) -> Result<(), EvalError> {
    ctx.progress.advance(1);
    Ok(ctx.cancel.check()?)
}

/// Evaluate `files` on `text` against `reference` (default: the first
/// file) on [`Ctx::threads`] threads.
pub fn run_eval(
    files: &[PathBuf],
    reference: Option<&Path>,
    text: &str,
    opts: &EvalOptions,
    ctx: Ctx<'_>,
) -> Result<EvalReport, EvalError> {
    let Some(first) = files.first() else {
        return Err(EvalError::Invalid("no model files to evaluate".into()));
    };
    let ref_path = reference.unwrap_or(first).to_path_buf();
    // Open everything first: a missing file or an unsupported model fails
    // before any long computation.
    let ref_model = LlamaModel::open(&ref_path)?;
    let ref_index = files.iter().position(|f| same_file(f, &ref_path));
    let mut models = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        models.push(if Some(i) == ref_index { None } else { Some(LlamaModel::open(f)?) });
    }

    let (tokens, bos) = tokenize(&ref_model, text)?;
    let plan = ChunkPlan::new(tokens.len(), opts.n_ctx, opts.max_chunks)?;
    let n_vocab = ref_model.hp.n_vocab;
    let first_scored = plan.first();
    let rows = plan.scored_per_chunk();
    for (f, m) in files.iter().zip(&models) {
        let Some(m) = m else { continue };
        if m.hp.n_vocab != n_vocab {
            return Err(EvalError::VocabDiffers {
                file: f.display().to_string(),
                reference: ref_path.display().to_string(),
                n_vocab: m.hp.n_vocab,
                n_ref: n_vocab,
            });
        }
        let (t, b) = tokenize(m, text)?;
        if t != tokens || b != bos {
            return Err(EvalError::TokensDiffer {
                file: f.display().to_string(),
                reference: ref_path.display().to_string(),
            });
        }
    }

    // The reference pass.
    let spill = plan.n_chunks.saturating_mul(rows).saturating_mul(n_vocab * 2 + 8) > opts.spill_above;
    let mut store = RefStore::new(spill, n_vocab, rows)?;
    let mut ref_ppl = Perplexity::default();
    crate::model::hparams::check_context(&ref_model.hp, plan.n_ctx, 1)?;
    let mut cache = ref_model.new_cache(plan.n_ctx);
    let ref_label = if ref_index.is_some() { "reference" } else { "reference (not in the list)" };
    begin(ctx, &ref_path, ref_label, plan.n_chunks as u64);
    try_each_chunk(&ref_model, &tokens, plan, bos, &mut cache, |_, chunk, logits| {
        ref_ppl.add_chunk(chunk, first_scored, logits, n_vocab);
        let mut r = RefLogProbs::new(n_vocab);
        for row in logits.chunks_exact(n_vocab).take(rows) {
            r.push(row);
        }
        store.push(r)?;
        step(ctx)
    })?;
    let reference_ppl = ref_ppl.ppl_with_error();
    let ref_speed_steps = opts.speed.map_or(0, |s| 2 * (s.reps as u64 + 1));
    let mut ref_speed = None;
    if let (Some(s), Some(_)) = (opts.speed, ref_index) {
        // Speed of the reference file itself, while it is warm.
        begin(ctx, &ref_path, "reference: throughput", ref_speed_steps);
        ref_speed = Some(measure_speed(&ref_model, &tokens, bos, s, ctx)?);
    }
    ctx.progress.finish();

    let mut out = Vec::with_capacity(files.len());
    for (i, (f, m)) in files.iter().zip(&models).enumerate() {
        let Some(m) = m else {
            let (bytes, params, bpw) = file_info(&ref_model)?;
            let (pp, tg) = ref_speed.clone().unzip();
            out.push(FileEval {
                path: f.clone(),
                bytes,
                params,
                bpw,
                is_reference: true,
                ppl: reference_ppl.0,
                ppl_err: reference_ppl.1,
                scored: ref_ppl.count,
                kld: None,
                pp,
                tg,
            });
            continue;
        };
        let _ = i;
        begin(ctx, f, "perplexity + KLD", plan.n_chunks as u64 + ref_speed_steps);
        let mut ppl = Perplexity::default();
        let mut kld = Kld::default();
        let mut cache = m.new_cache(plan.n_ctx);
        try_each_chunk(m, &tokens, plan, bos, &mut cache, |c, chunk, logits| {
            ppl.add_chunk(chunk, first_scored, logits, n_vocab);
            let r = store.get(c)?;
            for (k, row) in logits.chunks_exact(n_vocab).take(rows).enumerate() {
                kld.add(row, chunk[first_scored + k + 1] as usize, &r, k);
            }
            step(ctx)
        })?;
        let (pp, tg) = match opts.speed {
            Some(s) => {
                let (p, t) = measure_speed(m, &tokens, bos, s, ctx)?;
                (Some(p), Some(t))
            }
            None => (None, None),
        };
        ctx.progress.finish();
        let (bytes, params, bpw) = file_info(m)?;
        let (p, e) = ppl.ppl_with_error();
        out.push(FileEval {
            path: f.clone(),
            bytes,
            params,
            bpw,
            is_reference: false,
            ppl: p,
            ppl_err: e,
            scored: ppl.count,
            kld: kld.summary(),
            pp,
            tg,
        });
    }
    Ok(EvalReport {
        reference: ref_path,
        reference_ppl,
        n_tokens: tokens.len(),
        plan,
        threads: rayon::current_num_threads(),
        speed: opts.speed,
        spilled: spill,
        files: out,
    })
}

/// One file of the `--json` output: flat keys, `null` where not measured.
/// The reference's own KLD keys are `null` (it is what the others are
/// compared with).
#[derive(Clone, Debug, Serialize)]
pub struct JsonRow {
    pub file: String,
    pub bytes: u64,
    pub params: u64,
    pub bpw: f64,
    pub reference: bool,
    pub text: String,
    pub n_ctx: usize,
    pub chunks: usize,
    pub scored: usize,
    pub ppl: f64,
    pub ppl_err: f64,
    pub kld_mean: Option<f64>,
    pub kld_mean_err: Option<f64>,
    pub kld_median: Option<f64>,
    pub kld_p99: Option<f64>,
    pub kld_max: Option<f64>,
    pub delta_ppl: Option<f64>,
    pub delta_ppl_err: Option<f64>,
    pub ln_ppl_ratio: Option<f64>,
    pub ln_ppl_ratio_err: Option<f64>,
    pub same_top_p: Option<f64>,
    pub same_top_p_err: Option<f64>,
    pub rms_dp: Option<f64>,
    pub rms_dp_err: Option<f64>,
    pub max_dp: Option<f64>,
    pub threads: usize,
    pub pp_tokens: Option<usize>,
    pub pp_tokens_per_s: Option<f64>,
    pub pp_min: Option<f64>,
    pub pp_max: Option<f64>,
    pub tg_tokens: Option<usize>,
    pub tg_tokens_per_s: Option<f64>,
    pub tg_min: Option<f64>,
    pub tg_max: Option<f64>,
    pub reps: Option<usize>,
}

impl EvalReport {
    /// The `--json` rows; `text` names the evaluation text.
    pub fn json_rows(&self, text: &str) -> Vec<JsonRow> {
        self.files
            .iter()
            .map(|f| {
                let k = f.kld.as_ref();
                JsonRow {
                    file: f.path.display().to_string(),
                    bytes: f.bytes,
                    params: f.params,
                    bpw: f.bpw,
                    reference: f.is_reference,
                    text: text.to_string(),
                    n_ctx: self.plan.n_ctx,
                    chunks: self.plan.n_chunks,
                    scored: f.scored,
                    ppl: f.ppl,
                    ppl_err: f.ppl_err,
                    kld_mean: k.map(|k| k.kld_mean),
                    kld_mean_err: k.map(|k| k.kld_mean_err),
                    kld_median: k.map(|k| k.kld_median),
                    kld_p99: k.map(|k| k.kld_p99),
                    kld_max: k.map(|k| k.kld_max),
                    delta_ppl: k.map(|k| k.delta_ppl),
                    delta_ppl_err: k.map(|k| k.delta_ppl_err),
                    ln_ppl_ratio: k.map(|k| k.ln_ppl_ratio),
                    ln_ppl_ratio_err: k.map(|k| k.ln_ppl_ratio_err),
                    same_top_p: k.map(|k| k.same_top_p),
                    same_top_p_err: k.map(|k| k.same_top_p_err),
                    rms_dp: k.map(|k| k.rms_dp),
                    rms_dp_err: k.map(|k| k.rms_dp_err),
                    max_dp: k.map(|k| k.max_dp),
                    threads: self.threads,
                    pp_tokens: f.pp.as_ref().map(|s| s.tokens),
                    pp_tokens_per_s: f.pp.as_ref().map(|s| s.median),
                    pp_min: f.pp.as_ref().map(|s| s.min),
                    pp_max: f.pp.as_ref().map(|s| s.max),
                    tg_tokens: f.tg.as_ref().map(|s| s.tokens),
                    tg_tokens_per_s: f.tg.as_ref().map(|s| s.median),
                    tg_min: f.tg.as_ref().map(|s| s.min),
                    tg_max: f.tg.as_ref().map(|s| s.max),
                    reps: f.pp.as_ref().map(|s| s.reps),
                }
            })
            .collect()
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let pp_h = self.speed.map_or("pp t/s".to_string(), |s| format!("pp{} t/s", s.pp_tokens));
        let tg_h = self.speed.map_or("tg t/s".to_string(), |s| format!("tg{} t/s", s.tg_tokens));
        let mut t = Table::new(&[
            "file",
            "size",
            "bpw",
            "PPL",
            "KLD mean",
            "KLD p99",
            "ΔPPL",
            "same top %",
            "RMS Δp %",
            &pp_h,
            &tg_h,
        ])
        .left(0);
        let speed = |s: &Option<Speed>| match s {
            Some(s) => format!("{:.1} ({:.1}–{:.1})", s.median, s.min, s.max),
            None => "-".into(),
        };
        for f in &self.files {
            let name = display_name(&f.path);
            let (kld, p99, dppl, same, rms) = match &f.kld {
                Some(k) => (
                    format!("{:.5} ± {:.5}", k.kld_mean, k.kld_mean_err),
                    format!("{:.4}", k.kld_p99),
                    format!("{:+.4} ± {:.4}", k.delta_ppl, k.delta_ppl_err),
                    format!("{:.2} ± {:.2}", 100.0 * k.same_top_p, 100.0 * k.same_top_p_err),
                    format!("{:.3} ± {:.3}", 100.0 * k.rms_dp, 100.0 * k.rms_dp_err),
                ),
                None if f.is_reference => ("reference".into(), "-".into(), "-".into(), "-".into(), "-".into()),
                None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
            };
            t.row(vec![
                name,
                human_bytes(f.bytes),
                format!("{:.2}", f.bpw),
                format!("{:.4} ± {:.4}", f.ppl, f.ppl_err),
                kld,
                p99,
                dppl,
                same,
                rms,
                speed(&f.pp),
                speed(&f.tg),
            ]);
        }
        t.render()
    }

    /// Lines describing the run (text, tokens, chunks, reference, threads).
    pub fn header(&self, text_name: &str) -> String {
        let mut s = format!("text: {text_name}\n");
        s.push_str(&format!(
            "{} tokens; {} chunk{} of {} tokens, {} scored positions per file (second half of each chunk, as llama-perplexity)\n",
            self.n_tokens,
            self.plan.n_chunks,
            if self.plan.n_chunks == 1 { "" } else { "s" },
            self.plan.n_ctx,
            self.plan.n_chunks * self.plan.scored_per_chunk()
        ));
        s.push_str(&format!(
            "reference: {} (PPL {:.4} ± {:.4}); KLD, ΔPPL, same top token and RMS Δp are against it\n",
            self.reference.display(),
            self.reference_ppl.0,
            self.reference_ppl.1
        ));
        match self.speed {
            Some(sp) => s.push_str(&format!(
                "throughput: {} threads; pp = one {}-token batch, tg = {} single tokens; median of {} runs after a warm-up (min–max)\n",
                self.threads, sp.pp_tokens, sp.tg_tokens, sp.reps
            )),
            None => s.push_str(&format!("throughput: not measured ({} threads)\n", self.threads)),
        }
        s
    }

    /// The picture: file size vs mean KLD (log scale; the reference on the
    /// bottom edge), or vs PPL when no file was compared with a reference;
    /// every point labelled with its file name and throughput.
    pub fn scatter(&self) -> crate::report::plot::Scatter {
        use crate::report::plot::{Scatter, ScatterPoint};
        let use_kld = self.files.iter().any(|f| f.kld.is_some());
        let points = self
            .files
            .iter()
            .map(|f| {
                let mut detail = match (&f.pp, &f.tg) {
                    (Some(p), Some(t)) => format!("pp {:.0} / tg {:.0} tok/s", p.median, t.median),
                    _ => String::new(),
                };
                if f.is_reference && use_kld {
                    detail = if detail.is_empty() {
                        "reference (KLD 0)".into()
                    } else {
                        format!("{detail}; reference (KLD 0)")
                    };
                }
                let y = if use_kld { f.kld.as_ref().map_or(0.0, |k| k.kld_mean) } else { f.ppl };
                ScatterPoint {
                    label: display_name(&f.path),
                    detail,
                    x: f.bytes as f64 / (1024.0 * 1024.0),
                    y,
                    reference: f.is_reference && use_kld,
                }
            })
            .collect();
        Scatter {
            title: if use_kld {
                format!("size vs KL-divergence against {}", display_name(&self.reference))
            } else {
                "size vs perplexity".into()
            },
            x_label: "file size (MiB)".into(),
            y_label: if use_kld { "mean KLD (log scale)".into() } else { "perplexity".into() },
            points,
            log_y: use_kld,
            width: 960,
            height: 600,
        }
    }
}

/// The file name of `p` (the whole path when it has none).
pub fn display_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_median_and_spread() {
        let s = Speed::from_seconds(100, &[1.0, 0.5, 2.0]);
        assert_eq!((s.median, s.min, s.max, s.reps), (100.0, 50.0, 200.0, 3));
        let s = Speed::from_seconds(10, &[1.0, 0.5]);
        assert_eq!(s.median, 15.0);
    }

    #[test]
    fn reference_store_on_disk_gives_back_each_chunk() {
        let n_vocab = 50;
        let rows = 3;
        let chunk = |c: usize| {
            let mut r = RefLogProbs::new(n_vocab);
            for k in 0..rows {
                let l: Vec<f32> = (0..n_vocab).map(|i| ((i * 31 + k * 7 + c * 13) % 17) as f32 * 0.5).collect();
                r.push(&l);
            }
            r
        };
        let bytes = |r: &RefLogProbs| {
            let mut b = Vec::new();
            r.write_to(&mut b).unwrap();
            b
        };
        for spill in [false, true] {
            let mut st = RefStore::new(spill, n_vocab, rows).unwrap();
            for c in 0..4 {
                st.push(chunk(c)).unwrap();
            }
            for c in [2, 0, 3, 1] {
                assert_eq!(bytes(&st.get(c).unwrap()), bytes(&chunk(c)), "spill {spill} chunk {c}");
            }
        }
    }

    #[test]
    fn default_text_is_long_enough() {
        assert!(DEFAULT_TEXT.len() > 20_000);
    }
}
