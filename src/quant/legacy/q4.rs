//! Q4_0 and Q4_1: 4-bit values, low nibbles hold values 0..16 of a block,
//! high nibbles values 16..32.

use super::{block_levels, block_min_max, block_signed_absmax, block_weights, inv, row_sigma2};
use crate::quant::blocks::{BlockQ4_0, BlockQ4_1, BlockQ8_0, BlockQ8_1, QK4_0};
use crate::quant::search::{make_qkx3_quants, make_qx_quants, QkxParams};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

/// The search ggml's weighted Q4_1/Q5_1 quantizers run.
pub(crate) const QKX3_LEGACY: QkxParams = QkxParams { rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };

fn pack_nibbles(l: &[u8], qs: &mut [u8; 16]) {
    for j in 0..16 {
        qs[j] = l[j] | (l[j + 16] << 4);
    }
}

impl GgmlBlock for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const BLCK_SIZE: usize = QK4_0;
    type VecDot = BlockQ8_0;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q4_0_q8_0);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::vnni::q4_0_q8_0);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::avx2::q4_0_q8_0);
    const GEMM_TILE_BYTES: usize = super::gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q4_0);

    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        let Some(qw) = imatrix else {
            for (x, y) in src.chunks_exact(32).zip(dst.iter_mut()) {
                let d = block_signed_absmax(x) / -8.0;
                let id = inv(d);
                y.d = f16::from_f32(d);
                pack_nibbles(&block_levels(x, 0.0, id, 8.5, Some(15)), &mut y.qs);
            }
            return;
        };
        let sigma2 = row_sigma2(src);
        let (mut w, mut l) = ([0f32; 32], [0i8; 32]);
        for ((x, qw), y) in src.chunks_exact(32).zip(qw.chunks_exact(32)).zip(dst.iter_mut()) {
            block_weights(x, qw, sigma2, &mut w);
            let d = make_qx_quants(8, x, &mut l, 1, Some(&w));
            y.d = f16::from_f32(d);
            pack_nibbles(bytemuck::cast_slice(&l), &mut y.qs);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let d = b.d.to_f32();
            for j in 0..16 {
                y[j] = ((b.qs[j] & 0x0F) as i32 - 8) as f32 * d;
                y[j + 16] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        super::dot::scalar::q4_0_q8_0(x, y)
    }
}

impl GgmlBlock for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const BLCK_SIZE: usize = QK4_0;
    type VecDot = BlockQ8_1;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q4_1_q8_1);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::vnni::q4_1_q8_1);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::avx2::q4_1_q8_1);
    const GEMM_TILE_BYTES: usize = super::gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q4_1);

    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        let Some(qw) = imatrix else {
            for (x, y) in src.chunks_exact(32).zip(dst.iter_mut()) {
                let (min, max) = block_min_max(x);
                let d = (max - min) / 15.0;
                let id = inv(d);
                y.d = f16::from_f32(d);
                y.m = f16::from_f32(min);
                pack_nibbles(&block_levels(x, min, id, 0.5, Some(15)), &mut y.qs);
            }
            return;
        };
        let sigma2 = row_sigma2(src);
        let (mut w, mut l, mut aux) = ([0f32; 32], [0u8; 32], [0u8; 32]);
        for ((x, qw), y) in src.chunks_exact(32).zip(qw.chunks_exact(32)).zip(dst.iter_mut()) {
            block_weights(x, qw, sigma2, &mut w);
            let (d, min) = make_qkx3_quants(15, x, Some(&w), &mut l, &mut aux, QKX3_LEGACY);
            y.d = f16::from_f32(d);
            y.m = f16::from_f32(-min);
            pack_nibbles(&l, &mut y.qs);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(32)) {
            let (d, m) = (b.d.to_f32(), b.m.to_f32());
            for j in 0..16 {
                y[j] = (b.qs[j] & 0x0F) as f32 * d + m;
                y[j + 16] = (b.qs[j] >> 4) as f32 * d + m;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_1]) -> f32 {
        super::dot::scalar::q4_1_q8_1(x, y)
    }
}
