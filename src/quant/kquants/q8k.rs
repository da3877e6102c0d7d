//! Q8_K, the activation type of the k-quants: 256 int8 values, an f32
//! scale and the sums of each group of 16 values (used by the dot products
//! of the types with a minimum).

use crate::quant::blocks::{BlockQ8K, QK_K};
use crate::quant::search::nearest_int;
use crate::quant::{GgmlBlock, GgmlType};

impl GgmlBlock for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    const STORAGE: bool = false;
    #[cfg(target_arch = "x86_64")]
    const QUANTIZE_ACTIVATIONS_AVX2: Option<crate::quant::ActivationKernel<Self>> = Some(super::act_avx2::q8k);

    /// ggml's `quantize_row_q8_K_ref` (scale `max/-127` of the signed
    /// value with the largest magnitude); importance weights do not apply.
    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let (mut max, mut amax) = (0.0f32, 0.0f32);
            for &v in x {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                y.d = 0.0;
                y.qs = [0; QK_K];
                y.bsums = [0; QK_K / 16];
                continue;
            }
            let iscale = -127.0 / max;
            for (q, &v) in y.qs.iter_mut().zip(x) {
                *q = nearest_int(iscale * v).min(127) as i8;
            }
            for (j, s) in y.bsums.iter_mut().enumerate() {
                *s = y.qs[16 * j..16 * j + 16].iter().map(|&q| q as i16).sum();
            }
            y.d = 1.0 / iscale;
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            for (o, &q) in y.iter_mut().zip(&b.qs) {
                *o = b.d * q as f32;
            }
        }
    }

    /// Q8_K is an activation type; its self dot product is the plain
    /// integer dot product scaled by both `d`.
    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::q8k_q8k(x, y)
    }
}
