//! Dot products of the k-quants with Q8_K activations: per super-block an
//! exact integer sum per sub-block, scaled by the sub-block scales, then the
//! float super-block scales (`d_x · d_y`, and `dmin_x · d_y` times the
//! activation block sums for the types with a minimum).
//!
//! [`scalar`] is the reference; [`avx2`] forms the same integer sums with
//! AVX2 and accumulates the scaled super-block sums in 8 float lanes (as
//! ggml's AVX2 kernels do), so its result differs from the scalar one only
//! by float rounding. The functions here pick the best path for this CPU.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;

use crate::quant::blocks::*;

macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $kernel:ident, $X:ty) => {
        $(#[$doc])*
        #[inline]
        pub fn $name(x: &[$X], y: &[BlockQ8K]) -> f32 {
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
    /// Σ over super-blocks of `d_y·(d_x·Σ_j sc_j·Σ q·q8 − dmin_x·Σ_j m_j·bsum_j)`.
    vec_dot_q2k_q8k, q2k_q8k, BlockQ2K
);
dispatch!(
    /// Σ over super-blocks of `d_x·d_y·Σ_j sc_j·Σ q3·q8` (signed 3-bit levels).
    vec_dot_q3k_q8k, q3k_q8k, BlockQ3K
);
dispatch!(
    /// Σ over super-blocks of `d_y·(d_x·Σ_j sc_j·Σ q4·q8 − dmin_x·Σ_j m_j·bsum_j)`.
    vec_dot_q4k_q8k, q4k_q8k, BlockQ4K
);
dispatch!(
    /// As Q4_K with 5-bit levels.
    vec_dot_q5k_q8k, q5k_q8k, BlockQ5K
);
dispatch!(
    /// Σ over super-blocks of `d_x·d_y·Σ_j sc_j·Σ q6·q8` (signed 6-bit levels).
    vec_dot_q6k_q8k, q6k_q8k, BlockQ6K
);
