//! Benchmarks behind `quantmix bench`: [`kernels`] (quantize / dequantize /
//! vec_dot throughput per type, memcpy baseline, matmul GFLOP/s).

pub mod kernels;
