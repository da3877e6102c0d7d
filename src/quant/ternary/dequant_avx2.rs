//! AVX2 dequantizers of TQ1_0 and TQ2_0: the trits / codes of a super-block
//! decoded 32 at a time as the AVX2 dot products decode them, minus one,
//! converted to f32 and multiplied by the scale, one product per value as
//! the scalar references do, so the outputs are bit-identical.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use super::dot::avx2::{tq1_0_trits, tq2_0_codes};
use crate::quant::blocks::*;
use crate::quant::x86::*;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store(y: &mut [f32], codes: [__m256i; 8], d: __m256) {
    let one = _mm256_set1_epi8(1);
    for (k, c) in codes.into_iter().enumerate() {
        store_scaled_i8x32(&mut y[32 * k..32 * k + 32], _mm256_sub_epi8(c, one), d);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tq1_0(src: &[BlockTQ1_0], dst: &mut [f32]) {
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        store(y, tq1_0_trits(b), f16_splat(b.d));
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tq2_0(src: &[BlockTQ2_0], dst: &mut [f32]) {
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        store(y, tq2_0_codes(b), f16_splat(b.d));
    }
}
