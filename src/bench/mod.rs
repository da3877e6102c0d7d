//! Benchmarks behind `quantmix bench`: [`kernels`] (quantize / dequantize /
//! vec_dot throughput per type, memcpy baseline, matmul GFLOP/s) and
//! [`model`] (whole-model prompt-processing and generation tokens/s, next
//! to llama.cpp's `llama-bench`).

pub mod kernels;
pub mod model;
