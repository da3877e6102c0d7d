//! IQ2_XXS: super-blocks of 256 values in 8 sub-blocks of 32, each in 4
//! groups of 8 magnitudes on ggml's 256-point grid ([`IQ2XXS_GRID`]) with a
//! 7-bit sign code per group (the eighth sign implied by parity) and a
//! 4-bit scale `ls` per sub-block: value = `d·(0.5 + ls)·0.25·level·sign`.
//!
//! The quantizer is ggml's `quantize_row_iq2_xxs_impl` as
//! `ggml_quantize_chunk` runs it, in ggml's float order; ggml makes this
//! type only with importance weights ([`GgmlBlock::REQUIRES_IMATRIX`]).
//! Where ggml aborts (a level set whose every neighbour is at an infinite
//! or NaN distance) the first neighbour is taken.

use super::cmax;
use super::iq2::{ksigns, signed_levels, signs_even, sums, Grid, KMAXQ};
use super::iq2_tables::IQ2XXS_GRID;
use crate::quant::blocks::{BlockIQ2XXS, BlockQ8K, QK_K};
use crate::quant::search::{make_qp_quants, nearest_int, GROUP_MAX_EPS};
use crate::quant::{GgmlBlock, GgmlType};

/// The two words of sub-block `ib32` (0..8): grid indices, then sign
/// codes and scale.
#[inline(always)]
fn words(b: &BlockIQ2XXS, ib32: usize) -> (u32, u32) {
    let w = |k: usize| u32::from_le_bytes(b.qs[4 * k..4 * k + 4].try_into().unwrap_or([0; 4]));
    (w(2 * ib32), w(2 * ib32 + 1))
}

/// The odd scale `2·ls + 1` of sub-block `ib32`.
#[inline(always)]
pub(crate) fn scale(b: &BlockIQ2XXS, ib32: usize) -> i32 {
    2 * (words(b, ib32).1 >> 28) as i32 + 1
}

/// The grid entry of group `l` (0..4) of sub-block `ib32`: 8 magnitudes.
#[inline(always)]
pub(crate) fn entry(b: &BlockIQ2XXS, ib32: usize, l: usize) -> u64 {
    IQ2XXS_GRID[index(b, ib32, l)]
}

/// The grid index of group `l` (0..4) of sub-block `ib32`.
#[inline(always)]
pub(crate) fn index(b: &BlockIQ2XXS, ib32: usize, l: usize) -> usize {
    b.qs[8 * ib32 + l] as usize
}

/// The 32 sign bits of sub-block `ib32`.
#[inline(always)]
pub(crate) fn signs(b: &BlockIQ2XXS, ib32: usize) -> u32 {
    let s = words(b, ib32).1;
    ksigns(s) | ksigns(s >> 7) << 8 | ksigns(s >> 14) << 16 | ksigns(s >> 21) << 24
}

/// The 32 signed levels of sub-block `ib32`.
#[inline(always)]
pub(crate) fn values(b: &BlockIQ2XXS, ib32: usize) -> [i8; 32] {
    signed_levels(|l| entry(b, ib32, l), signs(b, ib32))
}

/// ggml's `quantize_row_iq2_xxs_impl` on one super-block with importance
/// weights `qw`.
fn quantize_block(x: &[f32], qw: &[f32], y: &mut BlockIQ2XXS) {
    let grid = Grid::iq2xxs();
    *y = bytemuck::Zeroable::zeroed();
    let mut q2 = [0u32; 16];
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = sumx2 / QK_K as f32;
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        let qw = &qw[32 * ib..32 * ib + 32];
        let weight: [f32; 32] = std::array::from_fn(|i| qw[i] * (sigma2 + xb[i] * xb[i]).sqrt());
        let waux: [f32; 32] = std::array::from_fn(|i| weight[i].sqrt());
        let mut xval = [0f32; 32];
        let mut block_signs = [0u8; 4];
        for k in 0..4 {
            let r = 8 * k..8 * k + 8;
            block_signs[k] = signs_even(&xb[r.clone()], &weight[r.clone()], &mut xval[r]);
        }
        let mut max = xval[0];
        for &v in &xval[1..] {
            max = cmax(max, v);
        }
        if max < GROUP_MAX_EPS {
            continue;
        }
        let mut lq = [0u8; 32];
        let mut scale = make_qp_quants(KMAXQ + 1, &xval, &mut lq, &weight);
        let eff_max = scale * KMAXQ as f32;
        if eff_max <= 0.0 {
            continue;
        }
        let mut l = [0i8; 32];
        let mut laux = [0i8; 32];
        let mut best = 0.0f32;
        for is in -6..=6 {
            let id = ((2 * KMAXQ - 1) as f32 + is as f32 * 0.1) / eff_max;
            let this_scale = 1.0 / id;
            for k in 0..4 {
                for i in 0..8 {
                    laux[8 * k + i] = nearest_int(0.5 * (id * xval[8 * k + i] - 1.0)).clamp(0, KMAXQ - 1) as i8;
                }
                let g = grid.lookup(&laux[8 * k..8 * k + 8]);
                if g < 0 {
                    let (xv, wa) = (&xval[8 * k..8 * k + 8], &waux[8 * k..8 * k + 8]);
                    grid.best_neighbour(g, xv, wa, this_scale, &mut laux[8 * k..8 * k + 8]);
                }
            }
            let (sumqx, sumq2) = sums(&weight, &xval, &laux);
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                scale = sumqx / sumq2;
                best = scale * sumqx;
                l = laux;
            }
        }
        if scale > 0.0 {
            let id = 1.0 / scale;
            for k in 0..4 {
                let mut lk = [0i8; 8];
                for i in 0..8 {
                    lk[i] = nearest_int(0.5 * (id * xval[8 * k + i] - 1.0)).clamp(0, KMAXQ - 1) as i8;
                }
                let g = grid.lookup(&lk);
                let index = if g < 0 {
                    let (xv, wa) = (&xval[8 * k..8 * k + 8], &waux[8 * k..8 * k + 8]);
                    grid.best_neighbour(g, xv, wa, scale, &mut lk)
                } else {
                    g as usize
                };
                grid.levels(index, &mut l[8 * k..8 * k + 8]);
            }
            let (sumqx, sumq2) = sums(&weight, &xval, &l);
            if sumq2 > 0.0 {
                scale = sumqx / sumq2;
            }
        }
        if scale < 0.0 {
            scale = -scale;
            block_signs = block_signs.map(|s| !s & 127);
        }
        for k in 0..4 {
            // Every level set is a grid point here (ggml aborts otherwise).
            let g = grid.index_of(&l[8 * k..8 * k + 8]) as u32;
            q2[2 * ib] |= g << (8 * k);
            q2[2 * ib + 1] |= (block_signs[k] as u32) << (7 * k);
        }
        scales[ib] = scale;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    y.d = half::f16::from_f32(d);
    let id = 1.0 / d;
    for ib in 0..8 {
        let l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 15) as u32;
        q2[2 * ib + 1] |= l << 28;
    }
    for (i, w) in q2.iter().enumerate() {
        y.qs[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
}

impl GgmlBlock for BlockIQ2XXS {
    const TYPE: GgmlType = GgmlType::IQ2_XXS;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    const REQUIRES_IMATRIX: bool = true;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq2xxs_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::iq2xxs_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq2xxs);
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq2xxs_batch);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq2xxs_batch);

    /// ggml's `quantize_iq2_xxs`. ggml needs importance weights for this
    /// type, and the public quantizers refuse it without them; called
    /// without, this weighs every value equally.
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        let ones = [1.0f32; QK_K];
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            quantize_block(x, imatrix.map_or(&ones[..], |w| &w[QK_K * i..QK_K * (i + 1)]), y);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for ib32 in 0..8 {
                let (_, aux) = words(b, ib32);
                let db = d * (0.5 + (aux >> 28) as f32) * 0.25;
                let s = signs(b, ib32);
                for l in 0..4 {
                    let g = entry(b, ib32, l).to_le_bytes();
                    for j in 0..8 {
                        let i = 8 * l + j;
                        let sign = if (s >> i) & 1 == 1 { -1.0 } else { 1.0 };
                        y[32 * ib32 + i] = db * g[j] as f32 * sign;
                    }
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::iq2xxs_q8k(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_zero_values_do_not_panic() {
        let x: Vec<f32> = (0..256).map(|i| if i % 2 == 0 { 3e38 } else { -2.9e38 }).collect();
        let mut b: BlockIQ2XXS = bytemuck::Zeroable::zeroed();
        quantize_block(&x, &[1.0; 256], &mut b);
        quantize_block(&[0.0; 256], &[1.0; 256], &mut b);
        assert_eq!(b, bytemuck::Zeroable::zeroed());
        quantize_block(&[f32::NAN; 256], &[0.0; 256], &mut b);
    }
}
