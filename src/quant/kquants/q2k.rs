//! Q2_K: 2-bit values in 16 sub-blocks of 16, each with a 4-bit scale and
//! a 4-bit min, both scaled by the super-block's f16 `d` and `dmin`.

use super::{pack_2bit, sum_sq, unpack_2bit};
use crate::quant::blocks::{BlockQ2K, BlockQ8K, QK_K};
use crate::quant::search::{make_qkx2_quants, make_qkx3_quants, make_qp_quants, nearest_int, QkxParams};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

const REF_SEARCH: QkxParams = QkxParams { rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: true };
const IMATRIX_SEARCH: QkxParams = QkxParams { rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };

/// Final levels from the stored scales: `round((x + m) / d)` in 0..=3;
/// sub-blocks whose scale is zero keep the search's levels.
fn requantize(x: &[f32], y: &BlockQ2K, l: &mut [u8; 256]) {
    let (dall, dmin) = (y.d.to_f32(), y.dmin.to_f32());
    for j in 0..16 {
        let d = dall * (y.scales[j] & 0x0F) as f32;
        if d == 0.0 {
            continue;
        }
        let m = dmin * (y.scales[j] >> 4) as f32;
        for ii in 0..16 {
            l[16 * j + ii] = nearest_int((x[16 * j + ii] + m) / d).clamp(0, 3) as u8;
        }
    }
}

fn quantize_block_ref(x: &[f32], y: &mut BlockQ2K) {
    let (mut l, mut aux, mut w) = ([0u8; 256], [0u8; 16], [0f32; 16]);
    let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        for (wi, v) in w.iter_mut().zip(xs) {
            *wi = v.abs();
        }
        let (s, m) = make_qkx2_quants(3, xs, &w, &mut l[16 * j..16 * j + 16], &mut aux, REF_SEARCH);
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for j in 0..16 {
            y.scales[j] = nearest_int(iscale * scales[j]) as u8;
        }
        y.d = f16::from_f32(max_scale / 15.0);
    } else {
        y.scales = [0; 16];
        y.d = f16::from_f32(0.0);
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for j in 0..16 {
            y.scales[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        y.dmin = f16::from_f32(max_min / 15.0);
    } else {
        y.dmin = f16::from_f32(0.0);
    }
    requantize(x, y, &mut l);
    pack_2bit(&l, &mut y.qs);
}

fn quantize_block_imatrix(x: &[f32], qw: &[f32], y: &mut BlockQ2K) {
    let (mut l, mut aux, mut w) = ([0u8; 256], [0u8; 16], [0f32; 16]);
    let (mut scales, mut mins, mut sw) = ([0f32; 16], [0f32; 16], [0f32; 16]);
    let sigma2 = sum_sq(&x[..QK_K]) / QK_K as f32;
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        for k in 0..16 {
            w[k] = qw[16 * j + k] * (sigma2 + xs[k] * xs[k]).sqrt();
        }
        for &wk in &w {
            sw[j] += wk;
        }
        let (s, m) = make_qkx3_quants(3, xs, Some(&w), &mut l[16 * j..16 * j + 16], &mut aux, IMATRIX_SEARCH);
        scales[j] = s;
        mins[j] = m;
    }
    let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
    let dm = make_qp_quants(15, &scales, &mut ls, &sw);
    let mm = make_qp_quants(15, &mins, &mut lm, &sw);
    y.d = f16::from_f32(dm);
    y.dmin = f16::from_f32(mm);
    for j in 0..16 {
        y.scales[j] = ls[j] | (lm[j] << 4);
    }
    requantize(x, y, &mut l);
    pack_2bit(&l, &mut y.qs);
}

impl GgmlBlock for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q2k_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::q2k_q8k);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::q2k_batch);
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q2k_batch);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q2k);

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
            let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
            for (i, o) in y.iter_mut().enumerate() {
                let sc = b.scales[i / 16];
                let (dl, ml) = (d * (sc & 0x0F) as f32, min * (sc >> 4) as f32);
                *o = dl * unpack_2bit(&b.qs, i) as f32 - ml;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::q2k_q8k(x, y)
    }
}
