//! IQ3_XXS: super-blocks of 256 values in 8 sub-blocks of 32; per
//! sub-block 8 indices into [`IQ3XXS_GRID`] (4 magnitudes each), four
//! 7-bit sign indices into [`KSIGNS`] (the 8th sign makes the count even)
//! and a 4-bit scale `ls`: value = `d·(0.5 + ls)·0.5·level·sign`.

use super::iq3::quantize_xxs;
use super::iq3_tables::{IQ3XXS_GRID, KSIGNS};
use crate::quant::blocks::{BlockIQ3XXS, BlockQ8K, QK_K};
use crate::quant::{GgmlBlock, GgmlType};

/// The scales-and-signs word of sub-block `ib` (0..8).
#[inline(always)]
pub(crate) fn aux(b: &BlockIQ3XXS, ib: usize) -> u32 {
    u32::from_le_bytes(b.qs[64 + 4 * ib..68 + 4 * ib].try_into().unwrap_or([0; 4]))
}

/// The 4 sign bytes of sub-block `ib` (bit j of byte l: value 8l+j is
/// negative), as one little-endian word.
#[inline(always)]
pub(crate) fn signs(b: &BlockIQ3XXS, ib: usize) -> u32 {
    let a = aux(b, ib);
    u32::from_le_bytes(std::array::from_fn(|l| KSIGNS[((a >> (7 * l)) & 127) as usize]))
}

/// The grid entry `k` (0..8) of sub-block `ib`: 4 magnitudes.
#[inline(always)]
pub(crate) fn entry(b: &BlockIQ3XXS, ib: usize, k: usize) -> u32 {
    IQ3XXS_GRID[index(b, ib, k)]
}

/// The grid index of entry `k` (0..8) of sub-block `ib`.
#[inline(always)]
pub(crate) fn index(b: &BlockIQ3XXS, ib: usize, k: usize) -> usize {
    b.qs[8 * ib + k] as usize
}

/// The 32 signed levels of sub-block `ib` and its odd scale `2·ls + 1`.
#[inline(always)]
pub(crate) fn sub_block(b: &BlockIQ3XXS, ib: usize) -> ([i8; 32], i32) {
    let s = signs(b, ib);
    let mut v = [0i8; 32];
    for k in 0..8 {
        let g = entry(b, ib, k).to_le_bytes();
        for j in 0..4 {
            let i = 4 * k + j;
            v[i] = if (s >> i) & 1 == 1 { -(g[j] as i8) } else { g[j] as i8 };
        }
    }
    (v, 2 * (aux(b, ib) >> 28) as i32 + 1)
}

impl GgmlBlock for BlockIQ3XXS {
    const TYPE: GgmlType = GgmlType::IQ3_XXS;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq3xxs_q8k);
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_VNNI: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::vnni::iq3xxs_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq3xxs);
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq3xxs_batch);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq3xxs_batch);

    /// ggml's `quantize_iq3_xxs` (what `ggml_quantize_chunk` runs, with or
    /// without importance weights; ggml needs none for this type).
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            quantize_xxs(x, imatrix.map(|w| &w[QK_K * i..QK_K * (i + 1)]), y);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for ib in 0..8 {
                let db = d * (0.5 + (aux(b, ib) >> 28) as f32) * 0.5;
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
        super::dot::scalar::iq3xxs_q8k(x, y)
    }
}
