//! The one error type of the safetensors / Hugging Face conversion layer.

use std::path::PathBuf;

use crate::gguf::GgufError;
use crate::quant::QuantError;

fn show(p: &std::path::Path) -> std::path::Display<'_> {
    p.display()
}

/// Everything that can go wrong reading a safetensors checkpoint, a Hugging
/// Face model directory, or converting between them and GGUF. Every variant
/// names the file; those about one tensor name it too, and those about a
/// place in a file give the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{}: {source}", show(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The safetensors header (length prefix or JSON) is malformed.
    #[error("{}: bad safetensors header at byte offset {offset}: {msg}", show(path))]
    BadHeader { path: PathBuf, offset: u64, msg: String },
    /// One tensor's header entry is inconsistent (shape, offsets, dtype).
    #[error("{}: tensor `{tensor}` (header entry at byte offset {offset}): {msg}", show(path))]
    BadTensor { path: PathBuf, tensor: String, offset: u64, msg: String },
    /// A tensor's dtype is not one this tool converts.
    #[error(
        "{}: tensor `{tensor}` (data at byte offset {offset}) has dtype {dtype}; only F32, F16 and BF16 are supported",
        show(path)
    )]
    UnsupportedDtype { path: PathBuf, tensor: String, offset: u64, dtype: String },
    /// `model.safetensors.index.json` and the shards disagree, or it is malformed.
    #[error("{}: {msg}", show(path))]
    BadIndex { path: PathBuf, msg: String },
    /// `config.json` is missing a field, or describes something unsupported.
    #[error("{}: {msg}", show(path))]
    BadConfig { path: PathBuf, msg: String },
    /// `tokenizer.json` / `tokenizer_config.json` (or the GGUF tokenizer keys) cannot be used.
    #[error("{}: {msg}", show(path))]
    Tokenizer { path: PathBuf, msg: String },
    /// A tensor that cannot be mapped or has the wrong shape.
    #[error("{}: tensor `{tensor}`: {msg}", show(path))]
    Tensor { path: PathBuf, tensor: String, msg: String },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("interrupted")]
    Interrupted(#[from] crate::job::Interrupted),
    #[error(transparent)]
    OutputPath(#[from] crate::fsutil::OutputPathError),
    #[error("{}: tensor `{tensor}`: {source}", show(path))]
    Quant {
        path: PathBuf,
        tensor: String,
        #[source]
        source: QuantError,
    },
}

impl ConvertError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ConvertError::Io { path: path.into(), source }
    }
}

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
