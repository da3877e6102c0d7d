//! Q6_K: 6-bit values (4 low bits in `ql`, 2 high bits in `qh`) in 16
//! sub-blocks of 16 with signed 8-bit scales.

use crate::quant::blocks::{BlockQ6K, BlockQ8K, QK_K};
use crate::quant::search::{make_qx_quants, nearest_int, GROUP_MAX_EPS};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

/// Signed 6-bit level (-32..31) of value `i`.
#[inline(always)]
pub(crate) fn get_q(b: &BlockQ6K, i: usize) -> i32 {
    let (half, r) = (i / 128, i % 128);
    let (quarter, k) = (r / 32, r % 32);
    let ql = b.ql[64 * half + 32 * (quarter & 1) + k];
    let low = if quarter < 2 { ql & 0x0F } else { ql >> 4 };
    let high = (b.qh[32 * half + k] >> (2 * quarter)) & 3;
    (low | (high << 4)) as i32 - 32
}

fn quantize_block(x: &[f32], qw: Option<&[f32]>, y: &mut BlockQ6K) {
    let mut l = [0i8; 256];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let w = qw.map(|q| &q[16 * j..16 * j + 16]);
        let s = make_qx_quants(32, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16], 1, w);
        scales[j] = s;
        if s.abs() > max_abs {
            max_abs = s.abs();
            max_scale = s;
        }
    }
    if max_abs < GROUP_MAX_EPS {
        *y = bytemuck::Zeroable::zeroed();
        return;
    }
    let iscale = -128.0 / max_scale;
    y.d = f16::from_f32(1.0 / iscale);
    for j in 0..16 {
        y.scales[j] = nearest_int(iscale * scales[j]).min(127) as i8;
    }
    for j in 0..16 {
        let d = y.d.to_f32() * y.scales[j] as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    for half in 0..2 {
        let lv = &l[128 * half..128 * half + 128];
        for k in 0..32 {
            let (q1, q2, q3, q4) = (lv[k] as u8, lv[k + 32] as u8, lv[k + 64] as u8, lv[k + 96] as u8);
            y.ql[64 * half + k] = (q1 & 0x0F) | ((q3 & 0x0F) << 4);
            y.ql[64 * half + 32 + k] = (q2 & 0x0F) | ((q4 & 0x0F) << 4);
            y.qh[32 * half + k] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
}

impl GgmlBlock for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q6k_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::q6k_q8k);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::q6k_batch);
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q6k_batch);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q6k);

    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            quantize_block(x, imatrix.map(|q| &q[QK_K * i..QK_K * (i + 1)]), y);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for (i, o) in y.iter_mut().enumerate() {
                *o = d * b.scales[i / 16] as f32 * get_q(b, i) as f32;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::q6k_q8k(x, y)
    }
}
