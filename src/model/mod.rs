//! The built-in model: tokenizer and llama-family forward pass over the
//! quantized weights of a GGUF file.
//!
//! - [`tokenizer`]: token ids equal to llama.cpp's for the GGUF's
//!   `tokenizer.ggml.*` vocabulary (byte-level BPE and SentencePiece-style).

pub mod error;
pub mod tokenizer;

pub use error::{ModelError, Result};
pub use tokenizer::Tokenizer;
