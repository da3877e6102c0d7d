//! TQ2_0: a super-block of 256 values as 2-bit codes `trit + 1`; byte `m`
//! of the 32-byte group `g` holds values `128g + m + 32l` in bits `2l`.

use super::{lround_plus_one, scale_and_inverse};
use crate::quant::blocks::{BlockQ8K, BlockTQ2_0, QK_K};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

/// The 2-bit code (0..3; 3 does not occur in ggml's output) of value `i`.
#[inline]
pub(crate) fn code(b: &BlockTQ2_0, i: usize) -> i32 {
    let (g, r) = (i / 128, i % 128);
    ((b.qs[32 * g + r % 32] >> (2 * (r / 32))) & 3) as i32
}

impl GgmlBlock for BlockTQ2_0 {
    const TYPE: GgmlType = GgmlType::TQ2_0;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::tq2_0_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::tq2_0);

    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let (d, id) = scale_and_inverse(x);
            y.d = f16::from_f32(d);
            for g in 0..2 {
                for m in 0..32 {
                    let mut q = 0u8;
                    for l in 0..4 {
                        let xi = lround_plus_one(x[128 * g + m + 32 * l] * id);
                        q = q.wrapping_add(((xi & 3) << (2 * l)) as u8);
                    }
                    y.qs[32 * g + m] = q;
                }
            }
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for (i, v) in y.iter_mut().enumerate() {
                *v = (code(b, i) - 1) as f32 * d;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::tq2_0_q8k(x, y)
    }
}
