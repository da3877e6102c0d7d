//! `quantmix imatrix MODEL [--calibration FILE…] [-o imatrix.gguf]`: collect
//! an importance matrix exactly as `llama-imatrix` does and write it in its
//! GGUF format.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::calib;
use crate::model::{LlamaModel, Tokenizer};
use crate::sensitivity::collect::{collect, CollectOptions};
use crate::sensitivity::imatrix::Imatrix;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model GGUF (llama / mistral / qwen2).
    pub model: PathBuf,
    /// Calibration text files (plain text, or JSONL with a `text` field); default: the shipped set.
    #[arg(long, num_args = 1..)]
    pub calibration: Vec<PathBuf>,
    /// Output importance matrix (llama.cpp GGUF imatrix format).
    #[arg(short, long, default_value = "imatrix.gguf")]
    pub output: PathBuf,
    /// Tokens per chunk (llama-imatrix `-c`).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// At most this many chunks (default: all the text gives).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Also collect the input of `output.weight` (llama-imatrix --process-output).
    #[arg(long)]
    pub process_output: bool,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// A progress bar with ETA on stderr (hidden with `quiet`).
pub(crate) fn bar(len: u64, quiet: bool, what: &str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(
        Some(len),
        if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() },
    );
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}}, ETA {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}

pub(crate) fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().context("creating the thread pool")
}

/// [`collect`] with a progress bar (hidden with `quiet`).
pub(crate) fn collect_with_bar(
    model: &LlamaModel,
    tokens: &[u32],
    bos: Option<u32>,
    opts: &CollectOptions,
    cal: &calib::CalText,
    quiet: bool,
    cancel: &AtomicBool,
) -> Result<Imatrix> {
    let n_chunks = (tokens.len() / opts.n_ctx.max(1)).min(opts.max_chunks.unwrap_or(usize::MAX));
    let b = bar(n_chunks as u64, quiet, "imatrix");
    let m = collect(
        model,
        tokens,
        bos,
        opts,
        cal.sources.clone(),
        |done, _| b.set_position(done as u64),
        || cancel.load(Ordering::Relaxed),
    );
    b.finish_and_clear();
    Ok(m?)
}

pub fn run(a: Args, cancel: Arc<AtomicBool>) -> Result<()> {
    let cal = calib::load(&a.calibration)?;
    let model = LlamaModel::open(&a.model).with_context(|| format!("opening {}", a.model.display()))?;
    let tok = Tokenizer::from_metadata(model.file().metadata(), &a.model)?;
    let tokens = tok.encode(&cal.text, true, false)?;
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let opts = CollectOptions { n_ctx: a.ctx, max_chunks: a.chunks, process_output: a.process_output };
    let n_chunks = (tokens.len() / a.ctx.max(1)).min(a.chunks.unwrap_or(usize::MAX));
    eprintln!("imatrix: {} tokens of {}; {n_chunks} chunks of {} tokens", tokens.len(), cal.describe, a.ctx);
    let t = Instant::now();
    let m = pool(a.threads)?.install(|| collect_with_bar(&model, &tokens, bos, &opts, &cal, a.quiet, &cancel))?;
    m.save_gguf(&a.output).with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!(
        "imatrix: {} matrices, {} chunks × {} tokens, {:.1} s → {}",
        m.entries.len(),
        m.chunk_count,
        m.chunk_size,
        t.elapsed().as_secs_f64(),
        a.output.display()
    );
    Ok(())
}
