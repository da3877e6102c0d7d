//! `quantmix convert SRC.gguf -o OUT.gguf`: a lossless rewrite.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::gguf::{GgufFile, GgufWriter, TensorSpec, DEFAULT_ALIGNMENT};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source GGUF.
    pub src: PathBuf,
    /// Output GGUF (written atomically).
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(a: Args, cancel: Arc<AtomicBool>) -> Result<()> {
    let g = GgufFile::open(&a.src).with_context(|| {
        if a.src.is_dir() || a.src.extension().is_some_and(|e| e == "safetensors") {
            "safetensors / Hugging Face sources are not supported by `convert` yet".to_string()
        } else {
            format!("opening {}", a.src.display())
        }
    })?;
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
