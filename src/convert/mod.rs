//! safetensors / Hugging Face checkpoints ↔ GGUF.
//!
//! - [`safetensors`]: validated, memory-mapped reader (single file or sharded).
//! - [`hf`]: HF llama-family directory → GGUF, as llama.cpp's converter does it.
//! - [`export`]: GGUF → HF directory (config, safetensors, tokenizer).
//! - [`tokenizer`]: `tokenizer.json` ↔ `tokenizer.ggml.*`.
//! - [`names`]: tensor names and the Q/K permutation.

pub mod error;
pub mod export;
pub mod hf;
pub mod names;
pub mod safetensors;
pub mod tokenizer;

pub use error::ConvertError;
pub use export::{export_hf, ExportDtype, ExportOptions};
pub use hf::{convert_hf, HfConvertOptions, HfConvertReport, OutType};
pub use safetensors::{Dtype, SafetensorsModel, StTensor};
