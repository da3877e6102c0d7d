//! Scalar reference dot products, in the float order of ggml's generic C
//! kernels (`ggml_vec_dot_iq4_nl_q8_0_generic`,
//! `ggml_vec_dot_iq4_xs_q8_K_generic`).

use crate::quant::blocks::*;
use crate::quant::iquants::iq4xs::sub_scale;
use crate::quant::iquants::KVALUES_IQ4NL;

/// Σ of `level(q4)·q8` over 32 values: 16 bytes of nibbles (low: values
/// 0..16, high: 16..32) against 32 activation levels.
#[inline(always)]
fn block_sum(qs: &[u8], q8: &[i8]) -> i32 {
    let (mut s1, mut s2) = (0i32, 0i32);
    for j in 0..16 {
        s1 += q8[j] as i32 * KVALUES_IQ4NL[(qs[j] & 0x0F) as usize] as i32;
        s2 += q8[j + 16] as i32 * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32;
    }
    s1 + s2
}

/// Σ over blocks of `d_x·d_y·Σ level·q8`.
pub fn iq4nl_q8_0(x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let d = b.d.to_f32() * a.d.to_f32();
        sumf += d * block_sum(&a.qs, &b.qs) as f32;
    }
    sumf
}

/// Σ over super-blocks and sub-blocks of `d_x·d_y·(ls−32)·Σ level·q8`.
pub fn iq4xs_q8k(x: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let d4d8 = a.d.to_f32() * b.d;
        for ib in 0..8 {
            let dl = d4d8 * sub_scale(a, ib) as f32;
            sumf += dl * block_sum(&a.qs[16 * ib..16 * ib + 16], &b.qs[32 * ib..32 * ib + 32]) as f32;
        }
    }
    sumf
}
