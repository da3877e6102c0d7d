//! Q3_K: 3-bit values (2 low bits in `qs`, the high bit in `hmask`) in 16
//! sub-blocks of 16 with signed 6-bit scales packed into 12 bytes.

use super::{pack_2bit, sum_sq, unpack_2bit};
use crate::quant::blocks::{BlockQ3K, BlockQ8K, QK_K};
use crate::quant::search::{make_q3_quants, make_qx_quants, nearest_int};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

/// Store the 6-bit (biased by 32) scale `l` of sub-block `j`, in increasing
/// `j` order into zeroed `scales`.
fn set_scale(j: usize, l: u8, scales: &mut [u8; 12]) {
    if j < 8 {
        scales[j] = l & 0x0F;
    } else {
        scales[j - 8] |= (l & 0x0F) << 4;
    }
    scales[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
}

/// Signed scale (-32..31) of sub-block `j`.
#[inline(always)]
pub(crate) fn get_scale(j: usize, scales: &[u8; 12]) -> i32 {
    let low = if j < 8 { scales[j] & 0x0F } else { scales[j - 8] >> 4 };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32 - 32
}

/// Signed 3-bit level (-4..3) of value `i`.
#[inline(always)]
pub(crate) fn get_q(b: &BlockQ3K, i: usize) -> i32 {
    let r = i % 128;
    let bit = (i / 128) * 4 + r / 32;
    let high = (b.hmask[r % 32] >> bit) & 1;
    unpack_2bit(&b.qs, i) as i32 - if high != 0 { 0 } else { 4 }
}

/// Final levels from the stored scales, high bits to `hmask`, packing.
fn finish(x: &[f32], y: &mut BlockQ3K, l: &mut [i8; 256]) {
    let dall = y.d.to_f32();
    for j in 0..16 {
        let d = dall * get_scale(j, &y.scales) as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-4, 3) + 4) as i8;
        }
    }
    y.hmask = [0; 32];
    let mut lu = [0u8; 256];
    for j in 0..QK_K {
        let mut v = l[j] as u8;
        if v > 3 {
            y.hmask[j % 32] |= 1 << (j / 32);
            v -= 4;
        }
        lu[j] = v;
    }
    pack_2bit(&lu, &mut y.qs);
}

fn quantize_block_ref(x: &[f32], y: &mut BlockQ3K) {
    let mut l = [0i8; 256];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for j in 0..16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16], true);
        let s = scales[j].abs();
        if s > amax {
            amax = s;
            max_scale = scales[j];
        }
    }
    y.scales = [0; 12];
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for j in 0..16 {
            // ggml narrows to int8_t before clamping.
            let q = (nearest_int(iscale * scales[j]) as i8 as i32).clamp(-32, 31) + 32;
            set_scale(j, q as u8, &mut y.scales);
        }
        y.d = f16::from_f32(1.0 / iscale);
    } else {
        y.d = f16::from_f32(0.0);
    }
    finish(x, y, &mut l);
}

fn quantize_block_imatrix(x: &[f32], qw: &[f32], y: &mut BlockQ3K) {
    let mut l = [0i8; 256];
    let (mut scales, mut sw, mut w) = ([0f32; 16], [0f32; 16], [0f32; 16]);
    let sigma2 = 2.0 * sum_sq(&x[..QK_K]) / QK_K as f32;
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        for k in 0..16 {
            w[k] = qw[16 * j + k] * (sigma2 + xs[k] * xs[k]).sqrt();
        }
        let mut sumw = 0.0f32;
        for &wk in &w {
            sumw += wk;
        }
        sw[j] = sumw;
        scales[j] = make_qx_quants(4, xs, &mut l[16 * j..16 * j + 16], 1, Some(&w));
    }
    y.scales = [0; 12];
    let mut ls = [0i8; 16];
    let d_block = make_qx_quants(32, &scales, &mut ls, 1, Some(&sw));
    for j in 0..16 {
        set_scale(j, ls[j] as u8, &mut y.scales);
    }
    y.d = f16::from_f32(d_block);
    finish(x, y, &mut l);
}

impl GgmlBlock for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q3k_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::q3k_q8k);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::q3k_batch);
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q3k_batch);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q3k);

    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            match imatrix {
                None => quantize_block_ref(x, y),
                Some(qw) => quantize_block_imatrix(x, &qw[QK_K * i..QK_K * (i + 1)], y),
            }
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for (i, o) in y.iter_mut().enumerate() {
                let dl = d * get_scale(i / 16, &b.scales) as f32;
                *o = dl * get_q(b, i) as f32;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::q3k_q8k(x, y)
    }
}
