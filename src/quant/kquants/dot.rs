//! Dot products of the k-quants with Q8_K activations: per super-block an
//! exact integer sum per sub-block, scaled by the sub-block scales, then the
//! float super-block scales (`d_x · d_y`, and `dmin_x · d_y` times the
//! activation block sums for the types with a minimum).
//!
//! [`scalar`] is the reference; [`avx2`] forms the same integer sums with
//! AVX2 and accumulates the scaled super-block sums in 8 float lanes (as
//! ggml's AVX2 kernels do, bit for bit), so its result differs from the
//! scalar one only by float rounding; [`vnni`] forms the AVX2 kernels' integer
//! lanes of Q2_K, Q3_K, Q4_K, Q5_K and Q6_K with AVX-512 VNNI, 64 levels at a time,
//! for the same bits. Each block type names its kernels in its `GgmlBlock`
//! impl (`vec_dot_scalar`, `VEC_DOT_AVX2`, `VEC_DOT_VNNI`); the trait picks
//! the best path.
//!
//! Both also hold the batch dot products (`*_batch`, `BATCH_DOT`): ggml's
//! tiled-GEMM arithmetic, which llama.cpp uses for products of 8 or more
//! tokens — the scalar and AVX2 versions give the same bits.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;

#[cfg(target_arch = "x86_64")]
pub mod vnni;
