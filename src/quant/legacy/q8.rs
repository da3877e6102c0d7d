//! Q8_0 (8-bit symmetric, used for weights and activations) and Q8_1 (the
//! activation type of Q4_1/Q5_1, which also stores `d · Σq`).

use super::{inv, trunc_i8};
use crate::quant::blocks::{BlockQ8_0, BlockQ8_1, QK8_0};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

/// Scale and inverse scale of a block: `d = max|x| / 127`.
#[inline]
fn q8_scale(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    for &v in x {
        amax = if amax > v.abs() { amax } else { v.abs() };
    }
    let d = amax / 127.0;
    (d, inv(d))
}

impl GgmlBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const BLCK_SIZE: usize = QK8_0;
    type VecDot = BlockQ8_0;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q8_0_q8_0);

    /// ggml ignores importance weights for Q8_0.
    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (x, y) in src.chunks_exact(32).zip(dst.iter_mut()) {
            let (d, id) = q8_scale(x);
            y.d = f16::from_f32(d);
            for (q, &v) in y.qs.iter_mut().zip(x) {
                *q = trunc_i8((v * id).round()) as i8;
            }
        }
    }

    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let d = b.d.to_f32();
            for (o, &q) in y.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        super::dot::scalar::q8_0_q8_0(x, y)
    }
}

impl GgmlBlock for BlockQ8_1 {
    const TYPE: GgmlType = GgmlType::Q8_1;
    const BLCK_SIZE: usize = QK8_0;
    type VecDot = BlockQ8_1;
    const STORAGE: bool = false;

    /// ggml's `quantize_row_q8_1_ref`; importance weights do not apply.
    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (x, y) in src.chunks_exact(32).zip(dst.iter_mut()) {
            let (d, id) = q8_scale(x);
            y.d = f16::from_f32(d);
            let mut sum = 0i32;
            for j in 0..16 {
                let (a, b) = (trunc_i8((x[j] * id).round()) as i8, trunc_i8((x[j + 16] * id).round()) as i8);
                y.qs[j] = a;
                y.qs[j + 16] = b;
                sum += a as i32 + b as i32;
            }
            y.s = f16::from_f32(sum as f32 * d);
        }
    }

    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let d = b.d.to_f32();
            for (o, &q) in y.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }
    }

    /// Q8_1 is an activation type; its self dot product is the plain
    /// integer dot product scaled by both `d`.
    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_1]) -> f32 {
        super::dot::scalar::q8_1_q8_1(x, y)
    }
}
