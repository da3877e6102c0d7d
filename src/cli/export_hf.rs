//! `quantmix export-hf MODEL.gguf -o DIR`: a llama / qwen2 GGUF as a Hugging
//! Face model directory (config.json, model.safetensors, tokenizer files).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use quantmix::convert::{export_hf_with, ExportDtype, ExportOptions};
use quantmix::job::Cancel;

#[derive(Args, Debug, Clone)]
pub struct ExportHfArgs {
    /// The GGUF model to export (llama or qwen2; quantized tensors are dequantized).
    pub model: PathBuf,
    /// Output directory (created if missing; existing files of the same names are replaced).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Weight type: auto (F16/BF16 tensors kept, the rest F32), f32 or f16.
    #[arg(long, default_value = "auto")]
    pub dtype: ExportDtype,
}

pub fn run(args: &ExportHfArgs, cancel: &Cancel) -> Result<()> {
    let rep = export_hf_with(&args.model, &args.output, &ExportOptions { dtype: args.dtype }, cancel)
        .with_context(|| format!("exporting {} to {}", args.model.display(), args.output.display()))?;
    eprintln!(
        "wrote {}: {} tensors ({} dequantized), model.safetensors {:.1} MiB",
        args.output.display(),
        rep.n_tensors,
        rep.dequantized,
        rep.safetensors_bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
