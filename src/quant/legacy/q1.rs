//! Q1_0 and Q2_0: ggml's 1- and 2-bit types with one f16 scale per block
//! and Q8_0 activations (four Q8_0 blocks per Q1_0 block of 128, two per
//! Q2_0 block of 64).
//!
//! - Q1_0 keeps only each value's sign: `±d` with `d` the block's mean
//!   magnitude.
//! - Q2_0 stores `round(x/d) + 1` clamped to 0..3 for the levels
//!   `−d, 0, d, 2d`, with `d` the block's largest magnitude.
//!
//! Both quantizers are ggml's reference ones (`quantize_row_q{1,2}_0_ref`);
//! ggml ignores importance weights for both, and so does quantmix.

use super::c_float_to_int;
use crate::quant::blocks::{BlockQ1_0, BlockQ2_0, BlockQ8_0, QK1_0, QK2_0};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

impl GgmlBlock for BlockQ1_0 {
    const TYPE: GgmlType = GgmlType::Q1_0;
    const BLCK_SIZE: usize = QK1_0;
    type VecDot = BlockQ8_0;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q1_0_q8_0);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q1_0);

    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (x, y) in src.chunks_exact(QK1_0).zip(dst.iter_mut()) {
            let mut sum_abs = 0.0f32;
            for &v in x {
                sum_abs += v.abs();
            }
            y.d = f16::from_f32(sum_abs / QK1_0 as f32);
            y.qs = [0; QK1_0 / 8];
            for (j, &v) in x.iter().enumerate() {
                if v >= 0.0 {
                    y.qs[j / 8] |= 1 << (j % 8);
                }
            }
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK1_0)) {
            let d = b.d.to_f32();
            for (j, v) in y.iter_mut().enumerate() {
                *v = if (b.qs[j / 8] >> (j % 8)) & 1 != 0 { d } else { -d };
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        super::dot::scalar::q1_0_q8_0(x, y)
    }
}

impl GgmlBlock for BlockQ2_0 {
    const TYPE: GgmlType = GgmlType::Q2_0;
    const BLCK_SIZE: usize = QK2_0;
    type VecDot = BlockQ8_0;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q2_0_q8_0);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q2_0);

    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (x, y) in src.chunks_exact(QK2_0).zip(dst.iter_mut()) {
            let mut amax = 0.0f32;
            for &v in x {
                if v.abs() > amax {
                    amax = v.abs();
                }
            }
            let id = if amax > 0.0 { 1.0 / amax } else { 0.0 };
            y.d = f16::from_f32(amax);
            y.qs = [0; QK2_0 / 4];
            for (j, &v) in x.iter().enumerate() {
                // C's `(int)roundf(w·id) + 1`, clamped to 0..3 (an infinite `id`
                // of a subnormal block gives C's integer indefinite, so code 0).
                let q = c_float_to_int((v * id).round()).wrapping_add(1).clamp(0, 3) as u8;
                y.qs[j / 4] |= q << (2 * (j % 4));
            }
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK2_0)) {
            let d = b.d.to_f32();
            for (j, v) in y.iter_mut().enumerate() {
                *v = (code2(b, j) - 1) as f32 * d;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        super::dot::scalar::q2_0_q8_0(x, y)
    }
}

/// The 2-bit code (0..3) of value `j` of a Q2_0 block.
#[inline]
pub(crate) fn code2(b: &BlockQ2_0, j: usize) -> i32 {
    ((b.qs[j / 4] >> (2 * (j % 4))) & 3) as i32
}
