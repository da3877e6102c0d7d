//! safetensors / Hugging Face checkpoints ↔ GGUF.
//!
//! - [`safetensors`]: validated, memory-mapped reader (single file or sharded).
//! - [`hf`]: HF llama-family directory → GGUF, as llama.cpp's converter does it.
//! - [`export`]: GGUF → HF directory (config, safetensors, tokenizer).
//! - [`tokenizer`]: `tokenizer.json` ↔ `tokenizer.ggml.*`.
//! - [`names`]: tensor names and the Q/K permutation.

pub mod checks;
pub mod error;
pub mod export;
pub mod hf;
pub mod names;
pub mod safetensors;
pub mod tokenizer;

pub use error::ConvertError;
pub use export::{export_hf, export_hf_with, ExportDtype, ExportOptions};
pub use hf::{convert_hf, HfConvertOptions, HfConvertReport, OutType};
pub use safetensors::{Dtype, SafetensorsModel, StTensor};

/// Rewrite a GGUF model losslessly into one file `out` (same metadata,
/// byte-identical tensors; the shards of a split model are merged).
/// Returns the size written.
pub fn copy_gguf(
    m: &crate::gguf::GgufModel,
    out: &std::path::Path,
    ctx: crate::job::Ctx<'_>,
) -> std::result::Result<u64, crate::gguf::GgufError> {
    use crate::gguf::{GgufWriter, TensorSpec};
    /// Bytes handed to the writer at a time (progress and Ctrl-C granularity).
    const CHUNK: usize = 8 << 20;
    let specs: Vec<TensorSpec> =
        m.tensors().iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect();
    let mut w = GgufWriter::create(out, m.metadata(), &specs, m.alignment())?;
    w.set_cancel(ctx.cancel.clone());
    let total: u64 = m.tensors().iter().map(|t| t.n_bytes()).sum();
    ctx.progress.stage("copying", total, crate::job::Unit::Bytes);
    for t in m.tensors() {
        ctx.progress.item(&t.name);
        for chunk in m.tensor_data(t).chunks(CHUNK) {
            w.write_tensor_chunk(chunk)?;
            ctx.progress.advance(chunk.len() as u64);
        }
        w.end_tensor()?;
    }
    let n = w.finish()?;
    ctx.progress.finish();
    Ok(n)
}
