//! IQ4_NL: blocks of 32 values, one f16 scale, 4-bit indices into
//! [`KVALUES_IQ4NL`] (low nibbles values 0..16, high nibbles 16..32).

use super::{quantize_superblock, Iq4Out, KVALUES_IQ4NL};
use crate::quant::blocks::{BlockIQ4NL, BlockQ8_0, QK4_NL};
use crate::quant::{GgmlBlock, GgmlType};

impl GgmlBlock for BlockIQ4NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    const BLCK_SIZE: usize = QK4_NL;
    type VecDot = BlockQ8_0;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq4nl_q8_0);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(super::dequant_avx2::iq4nl);
    #[cfg(target_arch = "x86_64")]
    const GEMM_VNNI: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::vnni::iq4nl_q8_0);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX2: Option<crate::quant::GemmKernel<Self>> = Some(super::gemm::avx2::iq4nl_q8_0);
    const GEMM_TILE_BYTES: usize = crate::quant::legacy::gemm::TILE_BYTES;
    const BATCH_DOT: Option<crate::quant::BatchDotFn<Self>> = Some(super::dot::scalar::iq4nl_batch);
    #[cfg(target_arch = "x86_64")]
    const BATCH_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(super::dot::avx2::iq4nl_batch);
    const BATCH_FROM: usize = 2;

    /// ggml's `quantize_iq4_nl` (what `ggml_quantize_chunk` runs, with or
    /// without importance weights).
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>) {
        for (i, (x, y)) in src.chunks_exact(QK4_NL).zip(dst.iter_mut()).enumerate() {
            let qw = imatrix.map(|w| &w[QK4_NL * i..QK4_NL * (i + 1)]);
            quantize_superblock(x, qw, Iq4Out { d: &mut y.d, qs: &mut y.qs, scales: None });
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK4_NL)) {
            let d = b.d.to_f32();
            for j in 0..16 {
                y[j] = d * KVALUES_IQ4NL[(b.qs[j] & 0x0F) as usize] as f32;
                y[j + 16] = d * KVALUES_IQ4NL[(b.qs[j] >> 4) as usize] as f32;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        super::dot::scalar::iq4nl_q8_0(x, y)
    }
}
