//! Scalar reference, in the float order of ggml's generic C kernel
//! (`ggml_vec_dot_mxfp4_q8_0_generic`).

use crate::quant::blocks::*;
use crate::quant::fp4::{e8m0_to_f32_half, KVALUES_FP4};

/// `Σ level·q8` of one block.
#[inline]
pub(crate) fn block_sum(a: &BlockMXFP4, b: &BlockQ8_0) -> i32 {
    let (mut s1, mut s2) = (0i32, 0i32);
    for j in 0..16 {
        s1 += b.qs[j] as i32 * KVALUES_FP4[(a.qs[j] & 0x0F) as usize] as i32;
        s2 += b.qs[j + 16] as i32 * KVALUES_FP4[(a.qs[j] >> 4) as usize] as i32;
    }
    s1 + s2
}

/// Σ over blocks of `(d_y·2^(e−128))·Σ level·q8`.
pub fn mxfp4_q8_0(x: &[BlockMXFP4], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let d = b.d.to_f32() * e8m0_to_f32_half(a.e);
        sumf += d * block_sum(a, b) as f32;
    }
    sumf
}
