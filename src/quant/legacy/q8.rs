//! Q8_0 (8-bit symmetric, used for weights and activations) and Q8_1 (the
//! activation type of Q4_1/Q5_1, which also stores `d · Σq`).
//!
//! As activations, both are quantized the way ggml's x86 CPU backend (built
//! with AVX/AVX2, as llama.cpp ships it) does before its dot products: scale
//! `d = amax/127`, levels `round_half_even(x · (127/amax))` saturated to the
//! i8 range; Q8_1 also stores `s = d · Σq`. ggml's reference quantizer (the
//! weights' [`GgmlBlock::quantize_row`]) instead multiplies by `1/d` and
//! rounds half away from zero; results differ in rare ties.

use super::{inv, trunc_i8};
use crate::quant::blocks::{BlockQ8_0, BlockQ8_1, QK8_0};
use crate::quant::search::nearest_int;
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

/// `(amax/127, 127/amax)` of an activation block, `(0, 0)` for an all-zero
/// block.
#[inline(always)]
pub(super) fn act_scale(x: &[f32]) -> (f32, f32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    (amax / 127.0, if amax != 0.0 { 127.0 / amax } else { 0.0 })
}

/// `x·id` rounded half to even, saturated to the i8 range: exactly
/// `(x * id).round_ties_even() as i8`, with [`nearest_int`] for the usual
/// case (|x·id| ≤ 127 unless `id` overflowed). When `127/amax` overflows (a
/// nonzero block with amax below 127/f32::MAX ≈ 3.7e-37), ggml's conversion
/// turns the ±inf and NaN products into -128; here +inf gives 127 and NaN
/// 0, as the forward pass has always computed it.
#[inline(always)]
pub(super) fn act_level(x: f32, id: f32) -> i8 {
    let v = x * id;
    if v.abs() < 4_194_304.0 {
        nearest_int(v).clamp(-128, 127) as i8
    } else {
        // An integer (or ±inf, NaN) already: the saturating cast is exact.
        v as i8
    }
}

impl GgmlBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const BLCK_SIZE: usize = QK8_0;
    type VecDot = BlockQ8_0;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q8_0_q8_0);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::vnni::q8_0_q8_0);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::avx2::q8_0_q8_0);
    const GEMM_TILE_BYTES: usize = super::gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const QUANTIZE_ACTIVATIONS_AVX2: Option<crate::quant::ActivationKernel<Self>> = Some(super::act_avx2::q8_0);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q8_0);

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

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let d = b.d.to_f32();
            for (o, &q) in y.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }
    }

    /// ggml's x86 `quantize_row_q8_0` (see the module documentation).
    fn quantize_activations_scalar(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK8_0).zip(dst.iter_mut()) {
            let (d, id) = act_scale(x);
            y.d = f16::from_f32(d);
            for (q, &v) in y.qs.iter_mut().zip(x) {
                *q = act_level(v, id);
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
    #[cfg(target_arch = "x86_64")]
    const QUANTIZE_ACTIVATIONS_AVX2: Option<crate::quant::ActivationKernel<Self>> = Some(super::act_avx2::q8_1);

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

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let d = b.d.to_f32();
            for (o, &q) in y.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }
    }

    /// ggml's x86 `quantize_row_q8_1` (see the module documentation).
    fn quantize_activations_scalar(src: &[f32], dst: &mut [Self]) {
        for (x, y) in src.chunks_exact(QK8_0).zip(dst.iter_mut()) {
            let (d, id) = act_scale(x);
            y.d = f16::from_f32(d);
            let mut sum = 0i32;
            for (q, &v) in y.qs.iter_mut().zip(x) {
                *q = act_level(v, id);
                sum += *q as i32;
            }
            y.s = f16::from_f32(d * sum as f32);
        }
    }

    /// Q8_1 is an activation type; its self dot product is the plain
    /// integer dot product scaled by both `d`.
    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_1]) -> f32 {
        super::dot::scalar::q8_1_q8_1(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn act_level_is_the_saturating_cast_of_round_half_even() {
        let ids = [0.0, 1.0, 127.0 / 3.0, 3.0e38, f32::INFINITY];
        let xs = [0.0, -0.0, 0.5, 1.5, -2.5, 3.0, -127.5, 127.49, 1e-30, -1e-30, 5e6, f32::INFINITY, f32::NAN];
        for &id in &ids {
            for &x in &xs {
                let want = (x * id).round_ties_even() as i8;
                assert_eq!(act_level(x, id), want, "x {x} id {id}");
            }
        }
    }
}
