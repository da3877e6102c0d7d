//! Q5_K: as Q4_K with a fifth bit per value in `qh` (bit `2c` for the low
//! half, `2c+1` for the high half of 64-value chunk `c`).

use super::get_scale_min_k4;
use super::q4k::{requantize, scales_imatrix, scales_ref};
use crate::quant::blocks::{BlockQ5K, BlockQ8K, QK_K};
use crate::quant::search::QkxParams;
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

const Q5K_REF_SEARCH: QkxParams = QkxParams { rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: false };

impl GgmlBlock for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q5k_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::q5k_q8k);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::q5k_batch);
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q5k_batch);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q5k);

    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        let mut l = [0u8; 256];
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            let (d, dmin, scales) = match imatrix {
                None => scales_ref(x, 31, Q5K_REF_SEARCH, &mut l),
                Some(qw) => scales_imatrix(x, &qw[QK_K * i..QK_K * (i + 1)], 31, true, &mut l),
            };
            y.scales = scales;
            y.d = f16::from_f32(d);
            y.dmin = f16::from_f32(dmin);
            requantize(x, y.d, y.dmin, &y.scales, 31, &mut l);
            y.qh = [0; 32];
            for c in 0..4 {
                let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
                for k in 0..32 {
                    let (mut a, mut b) = (l[64 * c + k], l[64 * c + 32 + k]);
                    if a > 15 {
                        a -= 16;
                        y.qh[k] |= m1;
                    }
                    if b > 15 {
                        b -= 16;
                        y.qh[k] |= m2;
                    }
                    y.qs[32 * c + k] = a | (b << 4);
                }
            }
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
            for c in 0..4 {
                let (s1, m1) = get_scale_min_k4(2 * c, &b.scales);
                let (s2, m2) = get_scale_min_k4(2 * c + 1, &b.scales);
                let (d1, m1) = (d * s1 as f32, min * m1 as f32);
                let (d2, m2) = (d * s2 as f32, min * m2 as f32);
                let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
                let q = &b.qs[32 * c..32 * c + 32];
                for k in 0..32 {
                    let h1 = if b.qh[k] & u1 != 0 { 16 } else { 0 };
                    let h2 = if b.qh[k] & u2 != 0 { 16 } else { 0 };
                    y[64 * c + k] = d1 * ((q[k] & 0x0F) + h1) as f32 - m1;
                    y[64 * c + 32 + k] = d2 * ((q[k] >> 4) + h2) as f32 - m2;
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::q5k_q8k(x, y)
    }
}
