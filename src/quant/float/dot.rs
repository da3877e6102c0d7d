//! Dot products of the float types (F32·F32, F16·F16, BF16·BF16).
//!
//! [`scalar`] is the reference (F16 and BF16 accumulate in f64 as ggml's
//! generic code does); [`avx2`] converts 8 values at a time to f32 and
//! accumulates with FMA in 32 float lanes, so it differs from the scalar
//! result by rounding only. The `GgmlBlock` impls of `f32`, `f16` and
//! `bf16` name these kernels; the trait picks the best path.

/// The scalar reference.
pub mod scalar {
    use half::{bf16, f16};

    /// Left to right in f32.
    pub fn dot_f32(x: &[f32], y: &[f32]) -> f32 {
        x.iter().zip(y).map(|(a, b)| a * b).sum()
    }

    /// The twin of the SIMD kernels' order (the AVX2 dot product and the
    /// AVX-512 tile kernels give exactly this): four chains of 8 lanes over
    /// 32-value chunks, fused multiply-adds, the chains added pairwise, the
    /// lanes reduced as `hsum_ps` reduces them, the tail in f64.
    pub fn dot_lanes<T: Copy + Into<f32>>(x: &[T], y: &[T]) -> f32 {
        let n = x.len().min(y.len());
        let chunks = n / 32;
        let mut acc = [[0f32; 8]; 4];
        for c in 0..chunks {
            for (k, chain) in acc.iter_mut().enumerate() {
                for (l, a) in chain.iter_mut().enumerate() {
                    let i = 32 * c + 8 * k + l;
                    *a = x[i].into().mul_add(y[i].into(), *a);
                }
            }
        }
        let sum: [f32; 8] = std::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]));
        let s4: [f32; 4] = std::array::from_fn(|i| sum[i + 4] + sum[i]);
        let mut s = ((s4[0] + s4[2]) + (s4[1] + s4[3])) as f64;
        for i in 32 * chunks..n {
            s += x[i].into() as f64 * y[i].into() as f64;
        }
        s as f32
    }

    /// Accumulated in f64 as ggml's scalar F16 dot product does.
    pub fn dot_f16(x: &[f16], y: &[f16]) -> f32 {
        x.iter().zip(y).map(|(a, b)| a.to_f32() as f64 * b.to_f32() as f64).sum::<f64>() as f32
    }

    /// Accumulated in f64 as ggml's scalar BF16 dot product does.
    pub fn dot_bf16(x: &[bf16], y: &[bf16]) -> f32 {
        x.iter().zip(y).map(|(a, b)| a.to_f32() as f64 * b.to_f32() as f64).sum::<f64>() as f32
    }
}

/// AVX2 + FMA + F16C paths.
///
/// # Safety
/// Every function requires AVX2, FMA and F16C on the running CPU.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use crate::quant::x86::hsum_ps;
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// 8 f32 values at `p`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8_f32(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }

    /// 8 f16 values at `p`, widened.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8_f16(p: *const f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }

    /// 8 bf16 values at `p`, widened (a bf16 is the top half of an f32).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8_bf16(p: *const bf16) -> __m256 {
        let h = _mm_loadu_si128(p as *const __m128i);
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    }

    /// Four independent 8-lane FMA chains over 32-value chunks, then the
    /// tail in f64.
    macro_rules! dot_by {
        ($(#[$doc:meta])* $name:ident, $T:ty, $load:ident) => {
            $(#[$doc])*
            /// # Safety
            /// The CPU must support AVX2, FMA and F16C.
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name(x: &[$T], y: &[$T]) -> f32 {
                let n = x.len().min(y.len());
                let (xc, yc) = (x[..n].chunks_exact(32), y[..n].chunks_exact(32));
                let (xr, yr) = (xc.remainder(), yc.remainder());
                let mut acc = [_mm256_setzero_ps(); 4];
                for (a, b) in xc.zip(yc) {
                    for k in 0..4 {
                        // SAFETY: chunks hold 32 values, so 8k..8k+8 (k < 4) exist.
                        let (va, vb) = unsafe { ($load(a.as_ptr().add(8 * k)), $load(b.as_ptr().add(8 * k))) };
                        acc[k] = _mm256_fmadd_ps(va, vb, acc[k]);
                    }
                }
                let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let mut s = hsum_ps(sum) as f64;
                for (&a, &b) in xr.iter().zip(yr) {
                    s += f32::from(a) as f64 * f32::from(b) as f64;
                }
                s as f32
            }
        };
    }

    dot_by!(
        /// Σ x·y of two f32 rows.
        dot_f32, f32, load8_f32
    );
    dot_by!(
        /// Σ x·y of two f16 rows.
        dot_f16, f16, load8_f16
    );
    dot_by!(
        /// Σ x·y of two bf16 rows.
        dot_bf16, bf16, load8_bf16
    );
}
