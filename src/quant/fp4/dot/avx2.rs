//! AVX2 dot product of MXFP4 with Q8_0, in the float order of ggml's AVX2
//! `ggml_vec_dot_mxfp4_q8_0` (the same scheme as its IQ4_NL kernel): the
//! codes become levels with one `pshufb` per 16 bytes (|level| ≤ 12, so the
//! `maddubs` pair sums are exact), pairs of blocks go into two float
//! accumulators (even and odd blocks), an odd last block is added in scalar
//! with one fused multiply-add (GCC contracts ggml's `sumf += d·(s1 + s2)`).
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use crate::quant::blocks::*;
use crate::quant::fp4::{e8m0_to_f32_half, KVALUES_FP4};
use crate::quant::x86::*;

/// The 8 i32 lanes of `Σ level·q8` of one block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn block_lanes(table: __m256i, a: &BlockMXFP4, b: &BlockQ8_0) -> __m256i {
    let levels = _mm256_shuffle_epi8(table, nibbles_32(&a.qs));
    dot_i8_i8(levels, load_i8(&b.qs))
}

/// Σ over blocks of `(d_y·2^(e−128))·Σ level·q8`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn mxfp4_q8_0(x: &[BlockMXFP4], y: &[BlockQ8_0]) -> f32 {
    let nb = x.len().min(y.len());
    let table = _mm256_broadcastsi128_si256(load_16(&KVALUES_FP4));
    let (mut acc1, mut acc2) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut ib = 0;
    while ib + 1 < nb {
        let (a1, b1, a2, b2) = (&x[ib], &y[ib], &x[ib + 1], &y[ib + 1]);
        let p1 = block_lanes(table, a1, b1);
        let p2 = block_lanes(table, a2, b2);
        let d1 = _mm256_set1_ps(b1.d.to_f32() * e8m0_to_f32_half(a1.e));
        let d2 = _mm256_set1_ps(b2.d.to_f32() * e8m0_to_f32_half(a2.e));
        acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(p1), acc1);
        acc2 = _mm256_fmadd_ps(d2, _mm256_cvtepi32_ps(p2), acc2);
        ib += 2;
    }
    let mut sumf = hsum_ps(_mm256_add_ps(acc1, acc2));
    if ib < nb {
        let (a, b) = (&x[ib], &y[ib]);
        let d = b.d.to_f32() * e8m0_to_f32_half(a.e);
        sumf = d.mul_add(hsum_epi32(block_lanes(table, a, b)) as f32, sumf);
    }
    sumf
}
