//! Scalar reference dot products, in the float order of ggml's generic C
//! kernels (`ggml_vec_dot_tq1_0_q8_K_generic`, `ggml_vec_dot_tq2_0_q8_K_generic`).

use crate::quant::blocks::*;
use crate::quant::ternary::tq1_0::qs_index;
use crate::quant::ternary::tq2_0::code;
use crate::quant::ternary::trit;

/// `Σ (trit − 1)·q8` of one TQ1_0 super-block.
pub(crate) fn tq1_0_sum(a: &BlockTQ1_0, b: &BlockQ8K) -> i32 {
    let mut sum = 0i32;
    for (byte, &q) in a.qs.iter().enumerate() {
        for n in 0..5 {
            sum += (trit(q, n) - 1) * b.qs[qs_index(byte, n)] as i32;
        }
    }
    for (j, &q) in a.qh.iter().enumerate() {
        for n in 0..4 {
            sum += (trit(q, n) - 1) * b.qs[240 + j + 4 * n] as i32;
        }
    }
    sum
}

/// `Σ (code − 1)·q8` of one TQ2_0 super-block.
pub(crate) fn tq2_0_sum(a: &BlockTQ2_0, b: &BlockQ8K) -> i32 {
    b.qs.iter().enumerate().map(|(i, &q)| (code(a, i) - 1) * q as i32).sum()
}

/// Σ over super-blocks of `sum · (d_x·d_y)`.
pub fn tq1_0_q8k(x: &[BlockTQ1_0], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        sumf += tq1_0_sum(a, b) as f32 * (a.d.to_f32() * b.d);
    }
    sumf
}

/// Σ over super-blocks of `sum · (d_y·d_x)`.
pub fn tq2_0_q8k(x: &[BlockTQ2_0], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        sumf += tq2_0_sum(a, b) as f32 * (b.d * a.d.to_f32());
    }
    sumf
}
