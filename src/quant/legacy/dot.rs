//! Dot products of the legacy types with their activation types (Q8_0 for
//! Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1), as ggml computes them: an exact
//! integer sum per block, then one float multiply-add per block.
//!
//! [`scalar`] is the reference; [`avx2`] computes the same integer sums with
//! AVX2 and accumulates the scaled block sums in 8 float lanes (as ggml's
//! AVX2 kernels do), so its float result differs from the scalar one only
//! by rounding. The functions here pick the best path for this CPU.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;

use crate::quant::blocks::*;

macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $kernel:ident, $X:ty, $Y:ty) => {
        $(#[$doc])*
        #[inline]
        pub fn $name(x: &[$X], y: &[$Y]) -> f32 {
            #[cfg(target_arch = "x86_64")]
            if crate::quant::simd::use_avx2() {
                // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C
                // were detected on this CPU.
                return unsafe { avx2::$kernel(x, y) };
            }
            scalar::$kernel(x, y)
        }
    };
}

dispatch!(
    /// Σ over blocks of `(Σ (q4-8)·q8) · d_x · d_y`.
    vec_dot_q4_0_q8_0, q4_0_q8_0, BlockQ4_0, BlockQ8_0
);
dispatch!(
    /// Σ over blocks of `d_x·d_y·Σ q4·q8 + m_x·s_y` (`s_y = d_y·Σ q8`).
    vec_dot_q4_1_q8_1, q4_1_q8_1, BlockQ4_1, BlockQ8_1
);
dispatch!(
    /// Σ over blocks of `(Σ (q5-16)·q8) · d_x · d_y`.
    vec_dot_q5_0_q8_0, q5_0_q8_0, BlockQ5_0, BlockQ8_0
);
dispatch!(
    /// Σ over blocks of `d_x·d_y·Σ q5·q8 + m_x·s_y`.
    vec_dot_q5_1_q8_1, q5_1_q8_1, BlockQ5_1, BlockQ8_1
);
dispatch!(
    /// Σ over blocks of `(Σ q8·q8) · d_x · d_y`.
    vec_dot_q8_0_q8_0, q8_0_q8_0, BlockQ8_0, BlockQ8_0
);

/// Q8_1 · Q8_1 (activation type; plain scaled integer dot product, scalar).
pub fn vec_dot_q8_1_q8_1(x: &[BlockQ8_1], y: &[BlockQ8_1]) -> f32 {
    scalar::q8_1_q8_1(x, y)
}
