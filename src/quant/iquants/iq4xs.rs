//! IQ4_XS: super-blocks of 256 values in 8 sub-blocks of 32; an f16
//! super-block scale, a 6-bit scale per sub-block stored offset by 32, and
//! 4-bit indices into [`KVALUES_IQ4NL`] packed per sub-block as IQ4_NL's.

use super::{quantize_superblock, Iq4Out, KVALUES_IQ4NL};
use crate::quant::blocks::{BlockIQ4XS, BlockQ8K, QK_K};
use crate::quant::{GgmlBlock, GgmlType};

/// The signed scale (−32..=31) of sub-block `ib` (0..8).
#[inline(always)]
pub(crate) fn sub_scale(b: &BlockIQ4XS, ib: usize) -> i32 {
    let lo = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    let hi = ((b.scales_h >> (2 * ib)) & 3) as u8;
    (lo | (hi << 4)) as i32 - 32
}

impl GgmlBlock for BlockIQ4XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq4xs_q8k);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq4xs);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::vnni::gemm::<Self>);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(crate::quant::i8gemm::avx2::gemm::<Self>);
    const GEMM_TILE_TOKENS: usize = crate::quant::i8gemm::TILE_TOKENS;
    const GEMM_TILE_BYTES: usize = crate::quant::i8gemm::TILE_BYTES;
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq4xs_batch);
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq4xs_batch);

    /// ggml's `quantize_iq4_xs` (what `ggml_quantize_chunk` runs, with or
    /// without importance weights).
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK_K).zip(dst.iter_mut()).enumerate() {
            let qw = imatrix.map(|w| &w[QK_K * i..QK_K * (i + 1)]);
            let out = Iq4Out { d: &mut y.d, qs: &mut y.qs, scales: Some((&mut y.scales_h, &mut y.scales_l)) };
            quantize_superblock(x, qw, out);
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for ib in 0..8 {
                let dl = d * sub_scale(b, ib) as f32;
                let (qs, y) = (&b.qs[16 * ib..16 * ib + 16], &mut y[32 * ib..32 * ib + 32]);
                for j in 0..16 {
                    y[j] = dl * KVALUES_IQ4NL[(qs[j] & 0x0F) as usize] as f32;
                    y[j + 16] = dl * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
                }
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8K]) -> f32 {
        super::dot::scalar::iq4xs_q8k(x, y)
    }
}
