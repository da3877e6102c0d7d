//! quantmix: hybrid per-layer GGUF quantization.
//!
//! - [`gguf`]: the file format (reader, writer, types).
//! - [`quant`]: ggml block quantization kernels, bit-exact with ggml.

pub mod cli;
pub mod gguf;
pub mod model;
pub mod quant;
