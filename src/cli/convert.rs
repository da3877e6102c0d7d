//! `quantmix convert SRC -o OUT.gguf`: a GGUF is rewritten losslessly; a
//! Hugging Face directory or safetensors file is converted as llama.cpp's
//! `convert_hf_to_gguf.py` does it ([`crate::convert::hf`]).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::gguf::{GgufFile, GgufWriter, TensorSpec, DEFAULT_ALIGNMENT};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: a GGUF, or a Hugging Face model directory (config.json, tokenizer.json,
    /// safetensors) or a safetensors file / index inside one.
    pub src: PathBuf,
    /// Output GGUF (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
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

pub fn run(a: Args, cancel: Arc<AtomicBool>) -> Result<()> {
    if a.src.is_dir() || crate::convert::safetensors::is_safetensors_path(&a.src) {
        return run_hf(&a, cancel);
    }
    let g = GgufFile::open(&a.src).with_context(|| format!("opening {}", a.src.display()))?;
    let specs: Vec<TensorSpec> =
        g.tensors().iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect();
    let align = g.metadata().get_u64("general.alignment").unwrap_or(DEFAULT_ALIGNMENT);
    let mut w = GgufWriter::create(&a.output, g.metadata(), &specs, align)?;
    w.set_cancel_flag(cancel);
    for t in g.tensors() {
        w.write_tensor(g.tensor_data(t))?;
    }
    let n = w.finish()?;
    eprintln!("wrote {} ({n} bytes, {} tensors)", a.output.display(), specs.len());
    Ok(())
}
