//! IQ2_XS: super-blocks of 256 values in 32 groups of 8; per group a 9-bit
//! index into ggml's 512-point grid ([`IQ2XS_GRID`]) and a 7-bit sign code
//! (the eighth sign implied by parity), and a 4-bit scale `ls` per 16
//! values: value = `d·(0.5 + ls)·0.25·level·sign`.
//!
//! The quantizer is ggml's `quantize_row_iq2_xs_impl` as
//! `ggml_quantize_chunk` runs it, in ggml's float order; ggml makes this
//! type only with importance weights ([`GgmlBlock::REQUIRES_IMATRIX`]).
//! Where ggml aborts (a level set whose every neighbour is at an infinite
//! or NaN distance) the first neighbour is taken.

use super::cmax;
use super::iq2::{ksigns, search16, signed_levels, signs_even, Grid};
use super::iq2_tables::IQ2XS_GRID;
use crate::quant::blocks::{BlockIQ2XS, BlockQ8K, QK_K};
use crate::quant::search::{nearest_int, GROUP_MAX_EPS};
use crate::quant::{GgmlBlock, GgmlType};

/// The 16-bit code of group `g` (0..32): grid index and sign code.
#[inline(always)]
fn code(b: &BlockIQ2XS, g: usize) -> u32 {
    u16::from_le_bytes([b.qs[2 * g], b.qs[2 * g + 1]]) as u32
}

/// The odd scale `2·ls + 1` of the 16 values `ib16` (0..16).
#[inline(always)]
pub(crate) fn scale(b: &BlockIQ2XS, ib16: usize) -> i32 {
    2 * ((b.scales[ib16 / 2] >> (4 * (ib16 % 2))) & 0x0F) as i32 + 1
}

/// The grid entry of group `g` (0..32): 8 magnitudes.
#[inline(always)]
pub(crate) fn entry(b: &BlockIQ2XS, g: usize) -> u64 {
    IQ2XS_GRID[index(b, g)]
}

/// The grid index of group `g` (0..32).
#[inline(always)]
pub(crate) fn index(b: &BlockIQ2XS, g: usize) -> usize {
    (code(b, g) & 511) as usize
}

/// The 32 sign bits of the values `32·ib32..32·ib32 + 32`.
#[inline(always)]
pub(crate) fn signs(b: &BlockIQ2XS, ib32: usize) -> u32 {
    let g = 4 * ib32;
    ksigns(code(b, g) >> 9)
        | ksigns(code(b, g + 1) >> 9) << 8
        | ksigns(code(b, g + 2) >> 9) << 16
        | ksigns(code(b, g + 3) >> 9) << 24
}

/// The 32 signed levels of values `32·ib32..32·ib32 + 32`.
#[inline(always)]
pub(crate) fn values(b: &BlockIQ2XS, ib32: usize) -> [i8; 32] {
    signed_levels(|l| entry(b, 4 * ib32 + l), signs(b, ib32))
}

/// ggml's `quantize_row_iq2_xs_impl` on one super-block with importance
/// weights `qw`.
fn quantize_block(x: &[f32], qw: &[f32], y: &mut BlockIQ2XS) {
    let grid = Grid::iq2xs();
    *y = bytemuck::Zeroable::zeroed();
    let mut q2 = [0u16; 32];
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = sumx2 / QK_K as f32;
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    for ib in 0..16 {
        let xb = &x[16 * ib..16 * ib + 16];
        let qw = &qw[16 * ib..16 * ib + 16];
        let weight: [f32; 16] = std::array::from_fn(|i| qw[i] * (sigma2 + xb[i] * xb[i]).sqrt());
        let waux: [f32; 16] = std::array::from_fn(|i| weight[i].sqrt());
        let mut xval = [0f32; 16];
        let mut block_signs = [0u8; 2];
        for k in 0..2 {
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
        let (mut scale, l) = search16(grid, &xval, &weight, &waux, max);
        if scale < 0.0 {
            scale = -scale;
            block_signs = block_signs.map(|s| !s & 127);
        }
        for k in 0..2 {
            // Every level set is a grid point here (ggml aborts otherwise).
            let g = grid.index_of(&l[8 * k..8 * k + 8]) as u16;
            q2[2 * ib + k] = g | ((block_signs[k] as u16) << 9);
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
    for ib in 0..16 {
        let l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 15) as u8;
        y.scales[ib / 2] |= l << (4 * (ib % 2));
    }
    for (i, w) in q2.iter().enumerate() {
        y.qs[2 * i..2 * i + 2].copy_from_slice(&w.to_le_bytes());
    }
}

impl GgmlBlock for BlockIQ2XS {
    const TYPE: GgmlType = GgmlType::IQ2_XS;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    const REQUIRES_IMATRIX: bool = true;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq2xs_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::iq2xs_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq2xs);
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq2xs_batch);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq2xs_batch);

    /// ggml's `quantize_iq2_xs`. ggml needs importance weights for this
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
                let db = |h: usize| d * (0.5 + ((b.scales[ib32] >> (4 * h)) & 0x0F) as f32) * 0.25;
                let s = signs(b, ib32);
                for l in 0..4 {
                    let dl = db(l / 2);
                    let g = entry(b, 4 * ib32 + l).to_le_bytes();
                    for j in 0..8 {
                        let i = 8 * l + j;
                        let sign = if (s >> i) & 1 == 1 { -1.0 } else { 1.0 };
                        y[32 * ib32 + i] = dl * g[j] as f32 * sign;
                    }
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::iq2xs_q8k(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_zero_values_do_not_panic() {
        let x: Vec<f32> = (0..256).map(|i| if i % 2 == 0 { 3e38 } else { -2.9e38 }).collect();
        let mut b: BlockIQ2XS = bytemuck::Zeroable::zeroed();
        quantize_block(&x, &[1.0; 256], &mut b);
        quantize_block(&[0.0; 256], &[1.0; 256], &mut b);
        assert_eq!(b, bytemuck::Zeroable::zeroed());
        quantize_block(&[f32::NAN; 256], &[0.0; 256], &mut b);
    }
}
