//! Q4_K: 4-bit values in 8 sub-blocks of 32, each with a 6-bit scale and a
//! 6-bit min (packed by [`super::set_scale_min_k4`]).

use super::{get_scale_min_k4, set_scale_min_k4, sum_sq};
use crate::quant::blocks::{BlockQ4K, BlockQ8K, QK_K};
use crate::quant::search::{make_qkx2_quants, make_qkx3_quants, make_qp_quants, nearest_int, QkxParams};
use crate::quant::{GgmlBlock, GgmlType};
use half::f16;

/// The search of the reference quantizers of Q4_K (Q5_K uses other bounds).
pub(crate) const Q4K_REF_SEARCH: QkxParams = QkxParams { rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
/// The search of the weighted Q4_K and Q5_K quantizers.
pub(crate) const KX_IMATRIX_SEARCH: QkxParams = QkxParams { rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false };

/// Sub-block scales and mins of Q4_K/Q5_K without importance weights:
/// weights `sqrt(mean x²) + |x|` per sub-block, the given search, then
/// 6-bit quantization of scales and mins against their maxima.
/// Returns `(d, dmin, packed scales)`; `l` receives the search's levels.
pub(crate) fn scales_ref(x: &[f32], nmax: i32, search: QkxParams, l: &mut [u8; 256]) -> (f32, f32, [u8; 12]) {
    let (mut aux, mut w) = ([0u8; 32], [0f32; 32]);
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let av_x = (sum_sq(xs) / 32.0).sqrt();
        for (wi, v) in w.iter_mut().zip(xs) {
            *wi = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(nmax, xs, &w, &mut l[32 * j..32 * j + 32], &mut aux, search);
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        set_scale_min_k4(j, ls, lm, &mut packed);
    }
    (max_scale / 63.0, max_min / 63.0, packed)
}

/// Sub-block scales and mins of Q4_K/Q5_K with importance weights
/// `qw · sqrt(σ² + x²)` (σ² = 2·mean x² of the super-block), scales and
/// mins quantized by `make_qp_quants` weighted by each sub-block's total
/// weight. `cap_levels`: clamp the 6-bit levels to 63 before packing (ggml's
/// Q5_K does, its Q4_K packs them as they are; they differ only when a
/// level wrapped below zero, i.e. for a negative sub-block scale).
pub(crate) fn scales_imatrix(
    x: &[f32],
    qw: &[f32],
    nmax: i32,
    cap_levels: bool,
    l: &mut [u8; 256],
) -> (f32, f32, [u8; 12]) {
    let (mut aux, mut w) = ([0u8; 32], [0f32; 32]);
    let (mut scales, mut mins, mut sw) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    let sigma2 = 2.0 * sum_sq(&x[..QK_K]) / QK_K as f32;
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        for k in 0..32 {
            w[k] = qw[32 * j + k] * (sigma2 + xs[k] * xs[k]).sqrt();
        }
        let mut sumw = 0.0f32;
        for &wk in &w {
            sumw += wk;
        }
        sw[j] = sumw;
        let (s, m) = make_qkx3_quants(nmax, xs, Some(&w), &mut l[32 * j..32 * j + 32], &mut aux, KX_IMATRIX_SEARCH);
        scales[j] = s;
        mins[j] = m;
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let (a, b) = if cap_levels { (ls[j].min(63), lm[j].min(63)) } else { (ls[j], lm[j]) };
        set_scale_min_k4(j, a, b, &mut packed);
    }
    (d_block, m_block, packed)
}

/// Final levels `round((x + m)/d)` in `0..=nmax` from the stored scales;
/// sub-blocks with a zero scale keep the search's levels.
pub(crate) fn requantize(x: &[f32], d: f16, dmin: f16, scales: &[u8; 12], nmax: i32, l: &mut [u8; 256]) {
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, scales);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
}

impl GgmlBlock for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q4k_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::q4k_q8k);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::q4k);
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::q4k_batch);
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::q4k_batch);

    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        let mut l = [0u8; 256];
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            let (d, dmin, scales) = match imatrix {
                None => scales_ref(x, 15, Q4K_REF_SEARCH, &mut l),
                Some(qw) => scales_imatrix(x, &qw[QK_K * i..QK_K * (i + 1)], 15, false, &mut l),
            };
            y.scales = scales;
            y.d = f16::from_f32(d);
            y.dmin = f16::from_f32(dmin);
            requantize(x, y.d, y.dmin, &y.scales, 15, &mut l);
            for c in 0..4 {
                for k in 0..32 {
                    y.qs[32 * c + k] = l[64 * c + k] | (l[64 * c + 32 + k] << 4);
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
                let q = &b.qs[32 * c..32 * c + 32];
                for k in 0..32 {
                    y[64 * c + k] = d1 * (q[k] & 0x0F) as f32 - m1;
                    y[64 * c + 32 + k] = d2 * (q[k] >> 4) as f32 - m2;
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::q4k_q8k(x, y)
    }
}
