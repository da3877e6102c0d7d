//! The output file of a plan, before anything is written: its metadata
//! (the source's, with what quantization changes and the plan recorded
//! under `quantmix.*`), its tensor layout, and so its exact size — the
//! same values [`crate::quantize`] hands the GGUF writer.

use crate::gguf::writer::{gguf_file_size, TensorSpec};
use crate::gguf::{MetaType, MetaValue, Metadata, DEFAULT_ALIGNMENT};

use super::Plan;

/// `general.quantization_version` that ggml's quantized formats carry today.
pub const QUANTIZATION_VERSION: u32 = 2;

/// The output's metadata, tensor specs and alignment.
#[derive(Clone, Debug)]
pub struct OutputLayout {
    pub metadata: Metadata,
    pub specs: Vec<TensorSpec>,
    pub alignment: u64,
}

impl OutputLayout {
    /// The exact size of the file in bytes.
    pub fn file_bytes(&self) -> u64 {
        gguf_file_size(&self.metadata, &self.specs, self.alignment)
    }

    /// Bytes before the first tensor (header, metadata, tensor infos,
    /// padding).
    pub fn header_bytes(&self) -> u64 {
        let data: u64 =
            self.specs.iter().map(|s| s.n_bytes().unwrap_or(0).div_ceil(self.alignment) * self.alignment).sum();
        self.file_bytes() - data
    }
}

fn str_array(items: impl IntoIterator<Item = String>) -> MetaValue {
    MetaValue::Array(MetaType::String, items.into_iter().map(MetaValue::String).collect())
}

/// The output of `plan` applied to a source with metadata `src`: the
/// source metadata with the file type and quantization version updated,
/// the imatrix provenance under `quantize.imatrix.*` (the keys
/// llama-quantize writes) and the plan under `quantmix.*`.
pub fn layout(src: &Metadata, plan: &Plan) -> OutputLayout {
    let mut md = src.clone();
    md.set("general.quantization_version", MetaValue::U32(QUANTIZATION_VERSION));
    md.set("general.file_type", MetaValue::U32(plan.file_type));
    if let Some(m) = &plan.imatrix {
        if let Some(f) = &m.file {
            md.set("quantize.imatrix.file", MetaValue::String(f.clone()));
        }
        if let Some(d) = &m.dataset {
            md.set("quantize.imatrix.dataset", MetaValue::String(d.clone()));
        }
        md.set("quantize.imatrix.entries_count", MetaValue::U32(m.entries as u32));
        if let Some(c) = m.chunks {
            md.set("quantize.imatrix.chunks_count", MetaValue::U32(c as u32));
        }
    }
    md.set("quantmix.version", MetaValue::String(env!("CARGO_PKG_VERSION").to_string()));
    md.set("quantmix.recipe.origin", MetaValue::String(plan.origin.clone()));
    md.set("quantmix.recipe", MetaValue::String(plan.recipe_text.clone()));
    md.set("quantmix.tensor.names", str_array(plan.tensors.iter().map(|t| t.name.clone())));
    md.set("quantmix.tensor.types", str_array(plan.tensors.iter().map(|t| t.ty.name().to_string())));
    md.set("quantmix.tensor.reasons", str_array(plan.tensors.iter().map(|t| t.reason.to_string())));
    let alignment = md.get_u64("general.alignment").filter(|a| *a > 0).unwrap_or(DEFAULT_ALIGNMENT);
    let specs =
        plan.tensors.iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect();
    OutputLayout { metadata: md, specs, alignment }
}
