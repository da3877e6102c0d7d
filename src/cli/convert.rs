//! `quantmix convert SRC -o OUT.gguf`: a GGUF is rewritten losslessly (same
//! metadata, byte-identical tensors; a split source is merged into one
//! file); a Hugging Face directory or safetensors file is converted as
//! llama.cpp's `convert_hf_to_gguf.py` does it ([`quantmix::convert::hf`]).

use std::path::PathBuf;

use anyhow::{Context, Result};

use quantmix::gguf::GgufModel;
use quantmix::job::{Cancel, Ctx};
use quantmix::report::human_bytes;

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
    pub outtype: quantmix::convert::OutType,
    /// Hugging Face sources: llama.cpp pre-tokenizer name (tokenizer.ggml.pre), instead of
    /// recognising the tokenizer the way llama.cpp's converter does.
    #[arg(long)]
    pub tokenizer_pre: Option<String>,
}

fn run_hf(a: &Args, cancel: &Cancel) -> Result<()> {
    let opts = quantmix::convert::HfConvertOptions {
        outtype: a.outtype,
        tokenizer_pre: a.tokenizer_pre.clone(),
        cancel: Some(cancel.clone()),
    };
    let r = quantmix::convert::convert_hf(&a.src, &a.output, &opts)
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

pub fn run(a: Args, ctx: Ctx<'_>) -> Result<()> {
    quantmix::fsutil::check_outputs(&[&a.output], &quantmix::quantize::job::model_files(&a.src))?;
    if a.src.is_dir() || quantmix::convert::safetensors::is_safetensors_path(&a.src) {
        return run_hf(&a, ctx.cancel);
    }
    let m = GgufModel::open(&a.src).with_context(|| format!("opening {}", a.src.display()))?;
    let n = quantmix::convert::copy_gguf(&m, &a.output, ctx)?;
    if !a.quiet {
        let from = if m.is_split() { format!(" from {} shards", m.n_shards()) } else { String::new() };
        eprintln!("wrote {} ({}, {} tensors{from})", a.output.display(), human_bytes(n), m.tensors().len());
    }
    Ok(())
}
