//! The one error type of the model area (tokenizer, weights, forward pass).

use std::path::PathBuf;

/// What went wrong while loading or running a model from a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The GGUF layer could not read the file.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    /// A required metadata key is missing or has the wrong type.
    #[error("{path}: metadata `{key}`: {msg}")]
    Metadata { path: PathBuf, key: String, msg: String },
    /// The tokenizer described by `tokenizer.ggml.*` is not supported or inconsistent.
    #[error("{path}: tokenizer: {msg}")]
    Tokenizer { path: PathBuf, msg: String },
    /// The architecture is not one the built-in forward pass implements.
    #[error(
        "{path}: architecture `{arch}` is not supported by quantmix's forward pass (supported: {supported})",
        supported = super::arch::supported()
    )]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    /// A tensor is missing, has an unexpected shape, or a type without kernels.
    #[error("{path}: tensor `{tensor}`{}: {msg}", offset.map(|o| format!(" at byte offset {o}")).unwrap_or_default())]
    Tensor { path: PathBuf, tensor: String, offset: Option<u64>, msg: String },
    /// A request the model cannot serve (e.g. more tokens than the context).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
