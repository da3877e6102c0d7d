//! TQ1_0: a super-block of 256 trits. `qs[0..32]` hold values `m + 32n`
//! (byte `m`, trit `n` = 0..5), `qs[32..48]` values `160 + m + 16n`, and
//! `qh[0..4]` values `240 + j + 4n` (four trits each, the fifth place 0).
//! Each byte is `ceil(t·256 / 243)` of its base-3 number `t` (first trit
//! most significant), so trit `n` is the top of `3·(byte·3^n mod 256)`.

use super::{lround_plus_one, scale_and_inverse, trit};
use crate::quant::blocks::{BlockQ8K, BlockTQ1_0, QK_K};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

/// The element index of trit `n` of each byte: `(qs range, stride)`.
/// Bytes `qs[0..32]` cover values `m + 32n`, `qs[32..48]` values
/// `160 + (m − 32) + 16n`; `qh[j]` values `240 + j + 4n`.
#[inline]
pub(crate) fn qs_index(byte: usize, n: usize) -> usize {
    if byte < 32 {
        byte + 32 * n
    } else {
        160 + (byte - 32) + 16 * n
    }
}

/// A base-3 number of trits as ggml packs it: `ceil(t·256/243)` in a byte.
#[inline]
fn pack(t: u8) -> u8 {
    (t as u16 * 256).div_ceil(243) as u8
}

impl GgmlBlock for BlockTQ1_0 {
    const TYPE: GgmlType = GgmlType::TQ1_0;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::tq1_0_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::tq1_0);

    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (x, y) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let (d, id) = scale_and_inverse(x);
            y.d = f16::from_f32(d);
            for byte in 0..48 {
                let mut q = 0u8;
                for n in 0..5 {
                    let xi = lround_plus_one(x[qs_index(byte, n)] * id);
                    q = (q as i32 * 3 + xi) as u8;
                }
                y.qs[byte] = pack(q);
            }
            for j in 0..4 {
                let mut q = 0u8;
                for n in 0..4 {
                    let xi = lround_plus_one(x[240 + j + 4 * n] * id);
                    q = (q as i32 * 3 + xi) as u8;
                }
                y.qh[j] = pack(q.wrapping_mul(3));
            }
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for (byte, &q) in b.qs.iter().enumerate() {
                for n in 0..5 {
                    y[qs_index(byte, n)] = (trit(q, n) - 1) as f32 * d;
                }
            }
            for (j, &q) in b.qh.iter().enumerate() {
                for n in 0..4 {
                    y[240 + j + 4 * n] = (trit(q, n) - 1) as f32 * d;
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::tq1_0_q8k(x, y)
    }
}
