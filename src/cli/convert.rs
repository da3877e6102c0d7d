//! `quantmix convert SRC -o OUT.gguf`: a GGUF is rewritten losslessly (same
//! metadata, byte-identical tensors; a split source is merged into one
//! file); a Hugging Face directory or safetensors file is converted as
//! llama.cpp's `convert_hf_to_gguf.py` does it ([`crate::convert::hf`]).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::gguf::{GgufModel, GgufWriter, TensorSpec};
use crate::report::human_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: a GGUF (any shard of a split model: all shards are merged), or a Hugging Face
    /// model directory (config.json, tokenizer.json, safetensors) or a safetensors file / index.
    pub src: PathBuf,
    /// Output GGUF (written to a temporary file, renamed when complete).
    #[arg(short, long)]
    pub output: PathBuf,
    /// No progress bar or summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Hugging Face sources: type of the 2-D weights (auto = the checkpoint's F16/BF16, else F16;
    /// norms, biases and 1-D tensors are always F32).
    #[arg(long, default_value = "auto")]
    pub outtype: crate::convert::OutType,
    /// Hugging Face sources: llama.cpp pre-tokenizer name (tokenizer.ggml.pre), instead of
    /// recognising the tokenizer the way llama.cpp's converter does.
    #[arg(long)]
    pub tokenizer_pre: Option<String>,
}

fn run_hf(a: &Args, cancel: Arc<AtomicBool>) -> Result<()> {
    let opts = crate::convert::HfConvertOptions {
        outtype: a.outtype,
        tokenizer_pre: a.tokenizer_pre.clone(),
        cancel: Some(cancel),
    };
    let r = crate::convert::convert_hf(&a.src, &a.output, &opts)
        .with_context(|| format!("converting {} to {}", a.src.display(), a.output.display()))?;
    eprintln!(
        "wrote {} ({} bytes, {} tensors, {} {}, tokenizer.ggml.pre = {})",
        a.output.display(),
        r.bytes,
        r.n_tensors,
        r.arch,
        r.outtype.name(),
        r.tokenizer_pre
    );
    Ok(())
}

/// Bytes handed to the writer at a time (progress and Ctrl-C granularity).
const CHUNK: usize = 8 << 20;

pub fn run(a: Args, cancel: Arc<AtomicBool>) -> Result<()> {
    if a.src.is_dir() || crate::convert::safetensors::is_safetensors_path(&a.src) {
        return run_hf(&a, cancel);
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
