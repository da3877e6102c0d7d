//! IQ1_M: super-blocks of 256 values in 32 groups of 8 levels −1, 0, 1
//! from [`IQ1S_GRID`] (11-bit indices), a shift sign per group, a 3-bit
//! scale `ls` per 16 values and an f16 super-block scale spread over the
//! top nibbles of the scales: value = `d·(2·ls + 1)·(level ± IQ1M_DELTA)`.
//!
//! The quantizer is ggml's `quantize_row_iq1_m_impl` as `ggml_quantize_chunk`
//! runs it, with and without importance weights (ggml needs none for this
//! type: without, each value weighs `x²`), in ggml's float order: per 16
//! values the exhaustive search over the two boundaries splitting the
//! sorted values into the levels −1, 0, 1 and the four shift-sign pairs of
//! its two groups (ggml's per-half prefix sums), the groups off the grid
//! replaced by their best neighbour ([`super::iq1`]), then the super-block
//! scale refitted to the quantized values.

use super::cmax;
use super::iq1::{qsort_order, Grid, IQ1M_DELTA, IQ1S_DELTA};
use super::iq1_tables::IQ1S_GRID;
use crate::quant::blocks::{BlockIQ1M, BlockQ8K, QK_K};
use crate::quant::search::nearest_int;
use crate::quant::{GgmlBlock, GgmlType};

/// ggml's `GROUP_MAX_EPS_IQ1_M`: groups of 16 below it are zero.
const GROUP_MAX_EPS_IQ1_M: f32 = 1e-7;
/// Values per scale (`IQ1M_BLOCK_SIZE`).
const BLOCK: usize = 16;
/// The `qh` bits of each shift-sign pair (`masks`).
const MASKS: [u8; 4] = [0x00, 0x80, 0x08, 0x88];

/// The weights of the 16 values `xb`.
fn weights(xb: &[f32], qw: Option<&[f32]>, sigma2: f32) -> [f32; BLOCK] {
    std::array::from_fn(|i| match qw {
        Some(qw) => qw[i] * (sigma2 + xb[i] * xb[i]).sqrt(),
        None => xb[i] * xb[i],
    })
}

/// ggml's `quantize_row_iq1_m_impl` on one super-block.
fn quantize_block(x: &[f32], qw: Option<&[f32]>, y: &mut BlockIQ1M) {
    let grid = Grid::get();
    *y = bytemuck::Zeroable::zeroed();
    let x_p = [-1.0 + IQ1M_DELTA, IQ1M_DELTA, 1.0 + IQ1M_DELTA];
    let x_m = [-1.0 - IQ1M_DELTA, -IQ1M_DELTA, 1.0 - IQ1M_DELTA];
    // The levels of group `k` (0, 1) under shift pair `k4`.
    let xx_of = |k4: u8, k: usize| if (k == 0 && k4 < 2) || (k == 1 && k4 & 1 == 0) { &x_p } else { &x_m };
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = 2.0 * sumx2 / QK_K as f32;
    let mut scales = [0f32; QK_K / BLOCK];
    let mut shifts = [0u8; QK_K / BLOCK];
    let mut max_scale = 0.0f32;
    let qw_of = |ib: usize| qw.map(|w| &w[BLOCK * ib..BLOCK * (ib + 1)]);
    for ib in 0..QK_K / BLOCK {
        let xb = &x[BLOCK * ib..BLOCK * (ib + 1)];
        let weight = weights(xb, qw_of(ib), sigma2);
        let mut max = xb[0].abs();
        for &v in &xb[1..] {
            max = cmax(max, v.abs());
        }
        if max < GROUP_MAX_EPS_IQ1_M {
            continue;
        }
        let mut idx = [0u8; BLOCK];
        qsort_order(xb, &mut idx);
        let mut best_score = -f32::MAX;
        let mut scale = max;
        let (mut besti1, mut besti2, mut best_k) = (usize::MAX, usize::MAX, 0u8);
        let mut px = [[0f32; BLOCK + 1]; 2];
        let mut pw = [[0f32; BLOCK + 1]; 2];
        for j in 0..BLOCK {
            let i = idx[j] as usize;
            let h = usize::from(i >= BLOCK / 2);
            px[h][j + 1] = px[h][j] + weight[i] * xb[i];
            px[1 - h][j + 1] = px[1 - h][j];
            pw[h][j + 1] = pw[h][j] + weight[i];
            pw[1 - h][j + 1] = pw[1 - h][j];
        }
        let txs = [px[0][BLOCK], px[1][BLOCK]];
        let tws = [pw[0][BLOCK], pw[1][BLOCK]];
        let (p2, m2) = (x_p[2], x_m[2]);
        let cp1 = x_p[0] * x_p[0] - x_p[1] * x_p[1];
        let cp2 = x_p[1] * x_p[1] - x_p[2] * x_p[2];
        let cm1 = x_m[0] * x_m[0] - x_m[1] * x_m[1];
        let cm2 = x_m[1] * x_m[1] - x_m[2] * x_m[2];
        for i1 in 0..=BLOCK {
            for i2 in i1..=BLOCK {
                let (mut qx_p, mut qx_m, mut q2_p, mut q2_m) = ([0f32; 2], [0f32; 2], [0f32; 2], [0f32; 2]);
                for h in 0..2 {
                    let sx = px[h][i1] + px[h][i2];
                    qx_p[h] = txs[h] * p2 - sx;
                    qx_m[h] = txs[h] * m2 - sx;
                    q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                    q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                }
                let sumqx = [qx_p[0] + qx_p[1], qx_p[0] + qx_m[1], qx_m[0] + qx_p[1], qx_m[0] + qx_m[1]];
                let sumq2 = [q2_p[0] + q2_p[1], q2_p[0] + q2_m[1], q2_m[0] + q2_p[1], q2_m[0] + q2_m[1]];
                for k in 0..4 {
                    if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best_score * sumq2[k] {
                        scale = sumqx[k] / sumq2[k];
                        best_score = scale * sumqx[k];
                        (besti1, besti2, best_k) = (i1, i2, k as u8);
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
            best_k = 3 - best_k;
        }
        let mut index = [0usize; 2];
        let mut all_on_grid = true;
        for k in 0..2 {
            let g = grid.lookup(&l[8 * k..8 * k + 8]);
            index[k] = if g >= 0 {
                g as usize
            } else {
                all_on_grid = false;
                let r = 8 * k..8 * k + 8;
                grid.best_neighbour(g, &xb[r.clone()], &weight[r.clone()], scale, xx_of(best_k, k), &mut l[r])
            };
        }
        if !all_on_grid {
            let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
            for k in 0..2 {
                let xx = xx_of(best_k, k);
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
        y.qs[2 * ib] = (index[0] & 255) as u8;
        y.qs[2 * ib + 1] = (index[1] & 255) as u8;
        y.qh[ib] = ((index[0] >> 8) | ((index[1] >> 8) << 4)) as u8;
        scales[ib] = scale;
        shifts[ib] = best_k;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let mut sc = [0u16; 4];
    let mut d = max_scale / 15.0;
    let id = 1.0 / d;
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for ib in 0..QK_K / BLOCK {
        let l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 7);
        sc[ib / 4] |= (l as u16) << (3 * (ib % 4));
        y.qh[ib] |= MASKS[shifts[ib] as usize];
        let xb = &x[BLOCK * ib..BLOCK * (ib + 1)];
        let weight = weights(xb, qw_of(ib), sigma2);
        for k in 0..2 {
            let xx = xx_of(shifts[ib], k);
            let g = y.qs[2 * ib + k] as usize | (((y.qh[ib] as usize) << (8 - 4 * k)) & 0x700);
            let pg = &grid.points[g];
            for j in 0..8 {
                let w = weight[8 * k + j];
                let q = xx[pg[j] as usize] * (2 * l + 1) as f32;
                sumqx += w * q * xb[8 * k + j];
                sumq2 += w * q * q;
            }
        }
    }
    if sumq2 > 0.0 {
        d = sumqx / sumq2;
    }
    let s = half::f16::from_f32(d * 1.1125).to_bits();
    sc[0] |= (s & 0x000f) << 12;
    sc[1] |= (s & 0x00f0) << 8;
    sc[2] |= (s & 0x0f00) << 4;
    sc[3] |= s & 0xf000;
    for (i, v) in sc.iter().enumerate() {
        y.scales[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
    }
}

/// The 4 scale words (little-endian u16).
#[inline(always)]
pub(crate) fn scale_words(b: &BlockIQ1M) -> [u16; 4] {
    std::array::from_fn(|i| u16::from_le_bytes([b.scales[2 * i], b.scales[2 * i + 1]]))
}

/// The f16 super-block scale.
#[inline(always)]
pub(crate) fn super_scale(sc: &[u16; 4]) -> half::f16 {
    half::f16::from_bits((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000))
}

/// The odd scale `2·ls + 1` of the 16 values `ib16` (0..16).
#[inline(always)]
pub(crate) fn scale(sc: &[u16; 4], ib16: usize) -> i32 {
    2 * ((sc[ib16 / 4] >> (3 * (ib16 % 4))) & 7) as i32 + 1
}

/// The grid entry of group `g` (0..32): 8 levels as i8.
#[inline(always)]
pub(crate) fn entry(b: &BlockIQ1M, g: usize) -> u64 {
    IQ1S_GRID[b.qs[g] as usize | (((b.qh[g / 2] as usize) << (8 - 4 * (g % 2))) & 0x700)]
}

/// Whether group `g`'s shift is `−IQ1M_DELTA`.
#[inline(always)]
pub(crate) fn negative_shift(b: &BlockIQ1M, g: usize) -> bool {
    b.qh[g / 2] & (0x08 << (4 * (g % 2))) != 0
}

impl GgmlBlock for BlockIQ1M {
    const TYPE: GgmlType = GgmlType::IQ1_M;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq1m_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::iq1m_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq1m);
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq1m_batch);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq1m_batch);

    /// ggml's `quantize_iq1_m` (what `ggml_quantize_chunk` runs, with or
    /// without importance weights).
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            quantize_block(x, imatrix.map(|w| &w[QK_K * i..QK_K * (i + 1)]), y);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let sc = scale_words(b);
            let d = super_scale(&sc).to_f32();
            for g in 0..QK_K / 8 {
                // ggml: `dl1`/`dl2 = d·(2·ls + 1)` per 16 values.
                let dl = d * scale(&sc, g / 2) as f32;
                let delta = if negative_shift(b, g) { -IQ1S_DELTA } else { IQ1S_DELTA };
                let e = entry(b, g).to_le_bytes();
                for j in 0..8 {
                    y[8 * g + j] = dl * (e[j] as i8 as f32 + delta);
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::iq1m_q8k(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_values_do_not_panic() {
        let x: Vec<f32> = (0..256).map(|i| if i % 2 == 0 { 3e38 } else { -2.9e38 }).collect();
        let mut b: BlockIQ1M = bytemuck::Zeroable::zeroed();
        quantize_block(&x, None, &mut b);
        quantize_block(&x, Some(&[1.0; 256]), &mut b);
        let mut x = x;
        x[3] = f32::NAN;
        x[40] = 0.0;
        quantize_block(&x, Some(&[0.0; 256]), &mut b);
        quantize_block(&x, None, &mut b);
        quantize_block(&[0.0; 256], None, &mut b);
        assert_eq!(b, bytemuck::Zeroable::zeroed());
    }
}
