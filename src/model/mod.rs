//! The built-in model: tokenizer and llama-family forward pass over the
//! quantized weights of a GGUF file.
//!
//! - [`tokenizer`]: token ids equal to llama.cpp's for the GGUF's
//!   `tokenizer.ggml.*` vocabulary (byte-level BPE and SentencePiece-style).
//! - [`llama`]: the llama-family forward pass on the quantized weights.
//! - [`arch`]: the architectures it implements, described as data.
//! - [`moe`]: the mixture-of-experts feed-forward (router, top-k, experts).
//! - [`hparams`]: hyper-parameters checked before they are used.
//! - `ops`: the element-wise and row operations of the forward pass.

pub mod arch;
pub mod attention;
pub mod error;
pub mod hparams;
pub mod llama;
pub mod moe;
mod ops;
pub mod tokenizer;

pub use error::{ModelError, Result};
pub use llama::{HParams, Hooks, Input, KvCache, LlamaModel, Outputs, WeightOverride};
pub use tokenizer::Tokenizer;
