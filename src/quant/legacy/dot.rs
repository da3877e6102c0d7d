//! Dot products of the legacy types with their activation types (Q8_0 for
//! Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1), as ggml computes them: an exact
//! integer sum per block, then one float multiply-add per block.
//!
//! [`scalar`] is the reference; [`avx2`] computes the same integer sums with
//! AVX2 and accumulates the scaled block sums in 8 float lanes (as ggml's
//! AVX2 kernels do), so its float result differs from the scalar one only
//! by rounding. Each block type names its kernels in its `GgmlBlock` impl
//! (`vec_dot_scalar`, `VEC_DOT_AVX2`); the trait picks the best path.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
