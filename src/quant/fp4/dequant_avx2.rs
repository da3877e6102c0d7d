//! AVX2 dequantizer of MXFP4: the 32 levels of a block looked up with
//! `pshufb`, converted to f32 and multiplied by `2^(e−128)`, one product per
//! value as the scalar reference does, so the outputs are bit-identical.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use super::{e8m0_to_f32_half, KVALUES_FP4};
use crate::quant::blocks::*;
use crate::quant::x86::*;

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn mxfp4(src: &[BlockMXFP4], dst: &mut [f32]) {
    let table = _mm256_broadcastsi128_si256(load_16(&KVALUES_FP4));
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_MXFP4)) {
        let levels = _mm256_shuffle_epi8(table, nibbles_32(&b.qs));
        store_scaled_i8x32(y, levels, _mm256_set1_ps(e8m0_to_f32_half(b.e)));
    }
}
