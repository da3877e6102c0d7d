//! IQ1_S: super-blocks of 256 values in 8 sub-blocks of 32, each 4 groups
//! of 8 levels −1, 0, 1 from [`IQ1S_GRID`] (11-bit indices), a 3-bit scale
//! `ls` and a shift sign per sub-block: value =
//! `d·(2·ls + 1)·(level ± IQ1S_DELTA)`.
//!
//! The quantizer is ggml's `quantize_row_iq1_s_impl` as `ggml_quantize_chunk`
//! runs it (with importance weights, which ggml requires for this type), in
//! ggml's float order (libggml-base has no FMA contraction): per sub-block
//! the exhaustive search over the two boundaries splitting the sorted values
//! into the levels −1, 0, 1, both shift signs, then the levels of each group
//! of 8 off the grid replaced by their best neighbour ([`super::iq1`]).
//! Without importance weights (which ggml refuses; `quant::quantize_row`
//! does too) every weight is 1.

use super::cmax;
use super::iq1::{qsort_order, Grid, IQ1S_DELTA};
use super::iq1_tables::IQ1S_GRID;
use crate::quant::blocks::{BlockIQ1S, BlockQ8K, QK_K};
use crate::quant::search::nearest_int;
use crate::quant::{GgmlBlock, GgmlType};

/// ggml's `GROUP_MAX_EPS_IQ1_S`: sub-blocks below it are zero.
const GROUP_MAX_EPS_IQ1_S: f32 = 1e-12;
/// Values per sub-block (`IQ1S_BLOCK_SIZE`).
const BLOCK: usize = 32;

/// ggml's `quantize_row_iq1_s_impl` on one super-block, weights `qw`.
fn quantize_block(x: &[f32], qw: Option<&[f32]>, y: &mut BlockIQ1S) {
    let grid = Grid::get();
    *y = bytemuck::Zeroable::zeroed();
    let x_p = [-1.0 + IQ1S_DELTA, IQ1S_DELTA, 1.0 + IQ1S_DELTA];
    let x_m = [-1.0 - IQ1S_DELTA, -IQ1S_DELTA, 1.0 - IQ1S_DELTA];
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = 2.0 * sumx2 / QK_K as f32;
    let mut scales = [0f32; QK_K / BLOCK];
    let mut shifts = [1i8; QK_K / BLOCK];
    let mut max_scale = 0.0f32;
    for ib in 0..QK_K / BLOCK {
        let xb = &x[BLOCK * ib..BLOCK * (ib + 1)];
        let weight: [f32; BLOCK] = std::array::from_fn(|i| {
            let q = qw.map_or(1.0, |qw| qw[BLOCK * ib + i]);
            q * (sigma2 + xb[i] * xb[i]).sqrt()
        });
        let mut max = xb[0].abs();
        for &v in &xb[1..] {
            max = cmax(max, v.abs());
        }
        if max < GROUP_MAX_EPS_IQ1_S {
            continue;
        }
        let mut idx = [0u8; BLOCK];
        qsort_order(xb, &mut idx);
        let mut sumx = [0f32; BLOCK + 1];
        let mut sumw = [0f32; BLOCK + 1];
        for j in 0..BLOCK {
            let i = idx[j] as usize;
            sumx[j + 1] = sumx[j] + weight[i] * xb[i];
            sumw[j + 1] = sumw[j] + weight[i];
        }
        let mut best_score = -f32::MAX;
        let mut scale = max;
        let (mut besti1, mut besti2, mut best_shift) = (usize::MAX, usize::MAX, 0i8);
        for i1 in 0..=BLOCK {
            for i2 in i1..=BLOCK {
                for (xx, shift) in [(&x_p, 1), (&x_m, -1)] {
                    let sumqx =
                        (sumx[i1] - sumx[0]) * xx[0] + (sumx[i2] - sumx[i1]) * xx[1] + (sumx[BLOCK] - sumx[i2]) * xx[2];
                    let sumq2 = (sumw[i1] - sumw[0]) * xx[0] * xx[0]
                        + (sumw[i2] - sumw[i1]) * xx[1] * xx[1]
                        + (sumw[BLOCK] - sumw[i2]) * xx[2] * xx[2];
                    if sumq2 > 0.0 && sumqx * sumqx > best_score * sumq2 {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        (besti1, besti2, best_shift) = (i1, i2, shift);
                    }
                }
            }
        }
        if besti1 == usize::MAX {
            continue;
        }
        let mut l = [0i8; BLOCK];
        for (j, &i) in idx.iter().enumerate() {
            l[i as usize] = if j < besti1 {
                0
            } else if j < besti2 {
                1
            } else {
                2
            };
        }
        if scale < 0.0 {
            for v in &mut l {
                *v = 2 - *v;
            }
            scale = -scale;
            best_shift = -best_shift;
        }
        let xx = if best_shift == 1 { &x_p } else { &x_m };
        let mut index = [0usize; BLOCK / 8];
        let mut all_on_grid = true;
        for k in 0..BLOCK / 8 {
            let g = grid.lookup(&l[8 * k..8 * k + 8]);
            index[k] = if g >= 0 {
                g as usize
            } else {
                all_on_grid = false;
                let r = 8 * k..8 * k + 8;
                grid.best_neighbour(g, &xb[r.clone()], &weight[r.clone()], scale, xx, &mut l[r])
            };
        }
        if !all_on_grid {
            let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
            for k in 0..BLOCK / 8 {
                let pg = &grid.points[index[k]];
                for j in 0..8 {
                    let w = weight[8 * k + j];
                    let q = xx[pg[j] as usize];
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
            if sumqx > 0.0 && sumq2 > 0.0 {
                scale = sumqx / sumq2;
            }
        }
        let mut h = 0u16;
        for k in 0..BLOCK / 8 {
            y.qs[(BLOCK / 8) * ib + k] = (index[k] & 255) as u8;
            h |= ((index[k] >> 8) as u16) << (3 * k);
        }
        y.qh[ib] = h;
        scales[ib] = scale;
        shifts[ib] = best_shift;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 15.0;
    y.d = half::f16::from_f32(d * 1.125);
    let id = 1.0 / d;
    for ib in 0..QK_K / BLOCK {
        let mut l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 7) as u16;
        if shifts[ib] == -1 {
            l |= 8;
        }
        y.qh[ib] |= l << 12;
    }
}

/// The odd scale `2·ls + 1` of sub-block `ib` (0..8).
#[inline(always)]
pub(crate) fn scale(b: &BlockIQ1S, ib: usize) -> i32 {
    2 * ((b.qh[ib] >> 12) & 7) as i32 + 1
}

/// Whether sub-block `ib`'s shift is `−IQ1S_DELTA`.
#[inline(always)]
pub(crate) fn negative_shift(b: &BlockIQ1S, ib: usize) -> bool {
    b.qh[ib] & 0x8000 != 0
}

/// The grid entry of group `l` (0..4) of sub-block `ib`: 8 levels as i8.
#[inline(always)]
pub(crate) fn entry(b: &BlockIQ1S, ib: usize, l: usize) -> u64 {
    IQ1S_GRID[b.qs[4 * ib + l] as usize | (((b.qh[ib] >> (3 * l)) & 7) as usize) << 8]
}

impl GgmlBlock for BlockIQ1S {
    const TYPE: GgmlType = GgmlType::IQ1_S;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq1s_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::iq1s_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq1s);
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq1s_batch);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq1s_batch);
    const REQUIRES_IMATRIX: bool = true;

    /// ggml's `quantize_iq1_s` (what `ggml_quantize_chunk` runs, with
    /// importance weights; unit weights without).
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            quantize_block(x, imatrix.map(|w| &w[QK_K * i..QK_K * (i + 1)]), y);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for ib in 0..QK_K / 32 {
                let dl = d * scale(b, ib) as f32;
                let delta = if negative_shift(b, ib) { -IQ1S_DELTA } else { IQ1S_DELTA };
                for l in 0..4 {
                    let g = entry(b, ib, l).to_le_bytes();
                    for j in 0..8 {
                        y[32 * ib + 8 * l + j] = dl * (g[j] as i8 as f32 + delta);
                    }
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::iq1s_q8k(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_do_not_panic() {
        let x: Vec<f32> = (0..256).map(|i| if i % 2 == 0 { 3e38 } else { -2.9e38 }).collect();
        let mut b: BlockIQ1S = bytemuck::Zeroable::zeroed();
        quantize_block(&x, None, &mut b);
        quantize_block(&x, Some(&[1.0; 256]), &mut b);
        let mut x = x;
        x[3] = f32::NAN;
        x[40] = 0.0;
        quantize_block(&x, Some(&[0.0; 256]), &mut b);
        quantize_block(&[0.0; 256], Some(&[1.0; 256]), &mut b);
        assert_eq!(b, bytemuck::Zeroable::zeroed());
    }
}
