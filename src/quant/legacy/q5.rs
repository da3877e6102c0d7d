//! Q5_0 and Q5_1: 4 low bits in nibbles as Q4, the fifth bit of value `j`
//! in bit `j` of the little-endian `qh` word.

use super::q4::QKX3_LEGACY;
use super::{block_levels, block_min_max, block_signed_absmax, block_weights, inv, row_sigma2};
use crate::quant::blocks::{BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK5_0};
use crate::quant::search::{make_qkx3_quants, make_qx_quants};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

/// Pack 32 five-bit levels into `qs` nibbles and the `qh` high-bit word.
fn pack5(l: &[u8], qs: &mut [u8; 16], qh: &mut [u8; 4]) {
    let mut h = 0u32;
    for j in 0..16 {
        let (a, b) = (l[j], l[j + 16]);
        qs[j] = (a & 0x0F) | ((b & 0x0F) << 4);
        h |= (((a & 0x10) >> 4) as u32) << j;
        h |= (((b & 0x10) >> 4) as u32) << (j + 16);
    }
    *qh = h.to_le_bytes();
}

/// Unpack the 32 five-bit levels (0..32) of a block.
#[inline]
pub(crate) fn unpack5(qs: &[u8; 16], qh: &[u8; 4]) -> [u8; 32] {
    let h = u32::from_le_bytes(*qh);
    let mut out = [0u8; 32];
    for j in 0..16 {
        out[j] = (qs[j] & 0x0F) | ((((h >> j) & 1) as u8) << 4);
        out[j + 16] = (qs[j] >> 4) | ((((h >> (j + 16)) & 1) as u8) << 4);
    }
    out
}

impl GgmlBlock for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const BLCK_SIZE: usize = QK5_0;
    type VecDot = BlockQ8_0;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q5_0_q8_0);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::vnni::q5_0_q8_0);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::avx2::q5_0_q8_0);
    const GEMM_TILE_BYTES: usize = super::gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q5_0);

    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        let Some(qw) = imatrix else {
            for (x, y) in src.chunks_exact(32).zip(dst.iter_mut()) {
                let d = block_signed_absmax(x) / -16.0;
                let id = inv(d);
                y.d = f16::from_f32(d);
                pack5(&block_levels(x, 0.0, id, 16.5, Some(31)), &mut y.qs, &mut y.qh);
            }
            return;
        };
        let sigma2 = row_sigma2(src);
        let (mut w, mut li) = ([0f32; 32], [0i8; 32]);
        for ((x, qw), y) in src.chunks_exact(32).zip(qw.chunks_exact(32)).zip(dst.iter_mut()) {
            block_weights(x, qw, sigma2, &mut w);
            let d = make_qx_quants(16, x, &mut li, 1, Some(&w));
            y.d = f16::from_f32(d);
            pack5(bytemuck::cast_slice(&li), &mut y.qs, &mut y.qh);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let d = b.d.to_f32();
            for (o, q) in y.iter_mut().zip(unpack5(&b.qs, &b.qh)) {
                *o = (q as i32 - 16) as f32 * d;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        super::dot::scalar::q5_0_q8_0(x, y)
    }
}

impl GgmlBlock for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const BLCK_SIZE: usize = QK5_0;
    type VecDot = BlockQ8_1;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q5_1_q8_1);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::vnni::q5_1_q8_1);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::avx2::q5_1_q8_1);
    const GEMM_TILE_BYTES: usize = super::gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q5_1);

    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        let mut l = [0u8; 32];
        let Some(qw) = imatrix else {
            for (x, y) in src.chunks_exact(32).zip(dst.iter_mut()) {
                let (min, max) = block_min_max(x);
                let d = (max - min) / 31.0;
                let id = inv(d);
                y.d = f16::from_f32(d);
                y.m = f16::from_f32(min);
                // ggml converts straight to uint8_t here (no clamp to 31).
                pack5(&block_levels(x, min, id, 0.5, None), &mut y.qs, &mut y.qh);
            }
            return;
        };
        let sigma2 = row_sigma2(src);
        let (mut w, mut aux) = ([0f32; 32], [0u8; 32]);
        for ((x, qw), y) in src.chunks_exact(32).zip(qw.chunks_exact(32)).zip(dst.iter_mut()) {
            block_weights(x, qw, sigma2, &mut w);
            let (d, min) = make_qkx3_quants(31, x, Some(&w), &mut l, &mut aux, QKX3_LEGACY);
            y.d = f16::from_f32(d);
            y.m = f16::from_f32(-min);
            pack5(&l, &mut y.qs, &mut y.qh);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let (d, m) = (b.d.to_f32(), b.m.to_f32());
            for (o, q) in y.iter_mut().zip(unpack5(&b.qs, &b.qh)) {
                *o = q as f32 * d + m;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_1]) -> f32 {
        super::dot::scalar::q5_1_q8_1(x, y)
    }
}
