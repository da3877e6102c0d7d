//! quantmix: hybrid per-layer GGUF quantization.
//!
//! - [`gguf`]: the file format (reader, writer, types).
//! - [`quant`]: ggml block quantization kernels, bit-exact with ggml.
//! - [`recipe`]: which type each tensor gets (recipes, llama.cpp presets).
//! - [`quantize`]: the streaming quantization pipeline.
//! - [`bench`]: kernel and matmul benchmarks.
//! - [`fuzz`]: fuzzing entry points of the readers of untrusted input.

pub mod bench;
pub mod convert;
pub mod eval;
pub mod fsutil;
pub mod fuzz;
pub mod gguf;
pub mod job;
pub mod model;
pub mod plan;
pub mod quant;
pub mod quantize;
pub mod recipe;
pub mod report;
pub mod sensitivity;
