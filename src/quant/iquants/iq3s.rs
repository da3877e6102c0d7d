//! IQ3_S: super-blocks of 256 values in 8 sub-blocks of 32; per sub-block
//! 8 9-bit indices into [`IQ3S_GRID`] (4 odd magnitudes each; low 8 bits in
//! `qs`, the 9th in `qh`), 32 sign bits and a 4-bit scale `ls` (two per
//! byte): value = `d·(1 + 2·ls)·level·sign`.

use super::iq3::quantize_s;
use super::iq3_tables::IQ3S_GRID;
use crate::quant::blocks::{BlockIQ3S, BlockQ8K, QK_K};
use crate::quant::{GgmlBlock, GgmlType};

/// The odd scale `1 + 2·ls` of sub-block `ib` (0..8).
#[inline(always)]
pub(crate) fn scale(b: &BlockIQ3S, ib: usize) -> i32 {
    1 + 2 * ((b.scales[ib / 2] >> (4 * (ib % 2))) & 0x0F) as i32
}

/// The 4 sign bytes of sub-block `ib` as one little-endian word.
#[inline(always)]
pub(crate) fn signs(b: &BlockIQ3S, ib: usize) -> u32 {
    u32::from_le_bytes(b.signs[4 * ib..4 * ib + 4].try_into().unwrap_or([0; 4]))
}

/// The grid entry `k` (0..8) of sub-block `ib`: 4 magnitudes.
#[inline(always)]
pub(crate) fn entry(b: &BlockIQ3S, ib: usize, k: usize) -> u32 {
    IQ3S_GRID[index(b, ib, k)]
}

/// The grid index of entry `k` (0..8) of sub-block `ib`.
#[inline(always)]
pub(crate) fn index(b: &BlockIQ3S, ib: usize, k: usize) -> usize {
    b.qs[8 * ib + k] as usize | (((b.qh[ib] >> k) & 1) as usize) << 8
}

/// The 32 signed levels of sub-block `ib` and its odd scale.
#[inline(always)]
pub(crate) fn sub_block(b: &BlockIQ3S, ib: usize) -> ([i8; 32], i32) {
    let s = signs(b, ib);
    let mut v = [0i8; 32];
    for k in 0..8 {
        let g = entry(b, ib, k).to_le_bytes();
        for j in 0..4 {
            let i = 4 * k + j;
            v[i] = if (s >> i) & 1 == 1 { -(g[j] as i8) } else { g[j] as i8 };
        }
    }
    (v, scale(b, ib))
}

impl GgmlBlock for BlockIQ3S {
    const TYPE: GgmlType = GgmlType::IQ3_S;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq3s_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::iq3s_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq3s);
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq3s_batch);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq3s_batch);

    /// ggml's `quantize_iq3_s` (what `ggml_quantize_chunk` runs, with or
    /// without importance weights; ggml needs none for this type).
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            quantize_s(x, imatrix.map(|w| &w[QK_K * i..QK_K * (i + 1)]), y);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for ib in 0..8 {
                let db = d * scale(b, ib) as f32;
                let s = signs(b, ib);
                for k in 0..8 {
                    let g = entry(b, ib, k).to_le_bytes();
                    for j in 0..4 {
                        let i = 4 * k + j;
                        let v = db * g[j] as f32;
                        y[32 * ib + i] = if (s >> i) & 1 == 1 { -v } else { v };
                    }
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::iq3s_q8k(x, y)
    }
}
