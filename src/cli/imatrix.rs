//! `quantmix imatrix MODEL [--calibration FILE…] [-o imatrix.gguf]`: collect
//! an importance matrix exactly as `llama-imatrix` does and write it in its
//! GGUF format.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use super::progress::Bar;
use quantmix::job::{Cancel, Ctx};
use quantmix::sensitivity::collect::{run_job, CollectOptions, ImatrixJob};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model GGUF (llama incl. Mixtral-style experts, mistral, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3).
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

pub fn run(a: Args, cancel: &Cancel) -> Result<()> {
    let job = ImatrixJob {
        model: a.model.clone(),
        calibration: a.calibration.clone(),
        output: a.output.clone(),
        opts: CollectOptions { n_ctx: a.ctx, max_chunks: a.chunks, process_output: a.process_output },
    };
    let bar = Bar::bars_only(a.quiet);
    let t = Instant::now();
    let m = run_job(&job, Ctx { cancel, progress: &bar, threads: a.threads })
        .with_context(|| format!("collecting the importance matrix of {}", a.model.display()))?;
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
