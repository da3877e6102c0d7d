//! `quantmix convert SRC -o OUT.gguf`: a lossless rewrite (same metadata,
//! byte-identical tensors). A split source is merged into one file.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::gguf::{GgufModel, GgufWriter, TensorSpec};
use crate::report::human_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source GGUF (any shard of a split model: all shards are merged).
    pub src: PathBuf,
    /// Output GGUF (written to a temporary file, renamed when complete).
    #[arg(short, long)]
    pub output: PathBuf,
    /// No progress bar or summary.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Bytes handed to the writer at a time (progress and Ctrl-C granularity).
const CHUNK: usize = 8 << 20;

pub fn run(a: Args, cancel: Arc<AtomicBool>) -> Result<()> {
    let ext = a.src.extension().and_then(|e| e.to_str()).unwrap_or("");
    if a.src.is_dir() || ext == "safetensors" {
        anyhow::bail!("{}: safetensors / Hugging Face sources are not supported by `convert` yet", a.src.display());
    }
    let m = GgufModel::open(&a.src).with_context(|| format!("opening {}", a.src.display()))?;
    let specs: Vec<TensorSpec> =
        m.tensors().iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect();
    let mut w = GgufWriter::create(&a.output, m.metadata(), &specs, m.alignment())
        .with_context(|| format!("writing {}", a.output.display()))?;
    w.set_cancel_flag(cancel);

    let total: u64 = m.tensors().iter().map(|t| t.n_bytes()).sum();
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if a.quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr_with_hz(8) },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {msg:30!}",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    for t in m.tensors() {
        bar.set_message(t.name.clone());
        for chunk in m.tensor_data(t).chunks(CHUNK) {
            w.write_tensor_chunk(chunk)?;
            bar.inc(chunk.len() as u64);
        }
        w.end_tensor()?;
    }
    let n = w.finish()?;
    bar.finish_and_clear();
    if !a.quiet {
        let from = if m.is_split() { format!(" from {} shards", m.n_shards()) } else { String::new() };
        eprintln!("wrote {} ({}, {} tensors{from})", a.output.display(), human_bytes(n), specs.len());
    }
    Ok(())
}
