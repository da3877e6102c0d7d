//! IQ2_S: super-blocks of 256 values in 32 groups of 8; per group a 10-bit
//! index into [`IQ2S_GRID`] (8 magnitudes of 3 levels) and 8 sign bits, and
//! a 4-bit scale `ls` per 16 values: value = `d·(0.5 + ls)·0.25·level·sign`.
//!
//! The quantizer is ggml's `quantize_row_iq2_s_impl` as `ggml_quantize_chunk`
//! runs it, with and without importance weights, in ggml's float order
//! (libggml-base has no FMA contraction). Its view of a grid point is the 8
//! level indices `l` (0..3, the rank of each byte among the table's 3
//! values), `2l+1` in the search; a point off the grid is replaced by the
//! best of its nearest grid points (ggml's `iq2xs_init_impl` with
//! `nwant = 1`: every grid point at the smallest squared distance, by
//! index). Where ggml aborts (every neighbour at an infinite or NaN
//! distance) the first neighbour is taken.

use super::cmax;
use super::iq2::{search16, Grid};
use super::iq2_tables::IQ2S_GRID;
use crate::quant::blocks::{BlockIQ2S, BlockQ8K, QK_K};
use crate::quant::search::nearest_int;
use crate::quant::{GgmlBlock, GgmlType};

/// ggml's `GROUP_MAX_EPS_IQ2_S`: groups of 16 below it are zero.
const GROUP_MAX_EPS_IQ2_S: f32 = 1e-8;

/// ggml's `quantize_row_iq2_s_impl` on one super-block.
fn quantize_block(x: &[f32], qw: Option<&[f32]>, y: &mut BlockIQ2S) {
    let grid = Grid::iq2s();
    *y = bytemuck::Zeroable::zeroed();
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = 2.0 * sumx2 / QK_K as f32;
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    for ib in 0..16 {
        let xb = &x[16 * ib..16 * ib + 16];
        let weight: [f32; 16] = std::array::from_fn(|i| match qw {
            Some(qw) => qw[16 * ib + i] * (sigma2 + xb[i] * xb[i]).sqrt(),
            None => 0.25 * sigma2 + xb[i] * xb[i],
        });
        let waux: [f32; 16] = std::array::from_fn(|i| weight[i].sqrt());
        let mut xval = [0f32; 16];
        let mut signs = [0u8; 2];
        for k in 0..2 {
            for i in 0..8 {
                let v = xb[8 * k + i];
                if v >= 0.0 {
                    xval[8 * k + i] = v;
                } else {
                    xval[8 * k + i] = -v;
                    signs[k] |= 1 << i;
                }
            }
        }
        let mut max = xval[0];
        for &v in &xval[1..] {
            max = cmax(max, v);
        }
        if max < GROUP_MAX_EPS_IQ2_S {
            scales[ib] = 0.0;
            continue;
        }
        let (mut scale, l) = search16(grid, &xval, &weight, &waux, max);
        if scale < 0.0 {
            scale = -scale;
            signs = signs.map(|s| !s);
        }
        for k in 0..2 {
            // Every level set is a grid point here (ggml aborts otherwise).
            let g = grid.index_of(&l[8 * k..8 * k + 8]);
            let i8 = 2 * ib + k;
            y.qs[i8] = (g & 255) as u8;
            y.qh[i8 / 4] |= ((g >> 8) as u8) << (2 * (i8 % 4));
            y.qs[32 + i8] = signs[k];
        }
        scales[ib] = scale;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    y.d = half::f16::from_f32(d * 0.9875);
    let id = 1.0 / d;
    for ib in 0..16 {
        let l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 15) as u8;
        y.scales[ib / 2] |= l << (4 * (ib % 2));
    }
}

/// The odd scale `2·ls + 1` of the 16 values `ib16` (0..16).
#[inline(always)]
pub(crate) fn scale(b: &BlockIQ2S, ib16: usize) -> i32 {
    2 * ((b.scales[ib16 / 2] >> (4 * (ib16 % 2))) & 0x0F) as i32 + 1
}

/// The grid entry of group `g` (0..32): 8 magnitudes.
#[inline(always)]
pub(crate) fn entry(b: &BlockIQ2S, g: usize) -> u64 {
    IQ2S_GRID[index(b, g)]
}

/// The grid index of group `g` (0..32).
#[inline(always)]
pub(crate) fn index(b: &BlockIQ2S, g: usize) -> usize {
    b.qs[g] as usize | (((b.qh[g / 4] >> (2 * (g % 4))) & 3) as usize) << 8
}

/// The sign bytes of the 32 values `ib32` (0..8) as one little-endian word.
#[inline(always)]
pub(crate) fn signs(b: &BlockIQ2S, ib32: usize) -> u32 {
    u32::from_le_bytes(b.qs[32 + 4 * ib32..36 + 4 * ib32].try_into().unwrap_or([0; 4]))
}

/// The 32 signed levels of values `32·ib32..32·ib32 + 32`.
#[inline(always)]
pub(crate) fn values(b: &BlockIQ2S, ib32: usize) -> [i8; 32] {
    super::iq2::signed_levels(|l| entry(b, 4 * ib32 + l), signs(b, ib32))
}

impl GgmlBlock for BlockIQ2S {
    const TYPE: GgmlType = GgmlType::IQ2_S;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq2s_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::iq2s_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq2s);
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq2s_batch);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq2s_batch);

    /// ggml's `quantize_iq2_s` (what `ggml_quantize_chunk` runs, with or
    /// without importance weights; ggml needs none for this type).
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            quantize_block(x, imatrix.map(|w| &w[QK_K * i..QK_K * (i + 1)]), y);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for ib32 in 0..8 {
                let s = signs(b, ib32);
                for l in 0..4 {
                    let ls = (b.scales[ib32] >> (4 * (l / 2))) & 0x0F;
                    let dl = d * (0.5 + ls as f32) * 0.25;
                    let g = entry(b, 4 * ib32 + l).to_le_bytes();
                    for j in 0..8 {
                        let i = 8 * l + j;
                        let v = dl * g[j] as f32;
                        y[32 * ib32 + i] = if (s >> i) & 1 == 1 { -v } else { v };
                    }
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::iq2s_q8k(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_do_not_panic() {
        let x: Vec<f32> = (0..256).map(|i| if i % 2 == 0 { 3e38 } else { -2.9e38 }).collect();
        let mut b: BlockIQ2S = bytemuck::Zeroable::zeroed();
        quantize_block(&x, None, &mut b);
        quantize_block(&x, Some(&[1.0; 256]), &mut b);
    }
}
