//! F32, F16 and BF16 as "blocks" of one value.
//!
//! Conversions follow ggml: F16 is IEEE binary16 with round-to-nearest-even
//! (what F16C and ggml's software path give); BF16 rounds to nearest even
//! and turns every NaN into a quiet NaN keeping its sign and payload top
//! bits (`ggml_compute_fp32_to_bf16`). Importance weights do not apply.

#[cfg(target_arch = "x86_64")]
pub mod dequant_avx2;
pub mod dot;
pub mod gemm;

use super::{GgmlBlock, GgmlType};
use half::{bf16, f16};

/// ggml's fp32 → bf16 conversion.
#[inline]
pub fn f32_to_bf16(x: f32) -> bf16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return bf16::from_bits(((u >> 16) | 64) as u16);
    }
    bf16::from_bits((u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16)
}

impl GgmlBlock for f32 {
    const TYPE: GgmlType = GgmlType::F32;
    const BLCK_SIZE: usize = 1;
    type VecDot = f32;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<super::VecDotKernel<Self>> = Some(dot::avx2::dot_f32);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX512: Option<super::GemmKernel<Self>> = Some(gemm::avx512::gemm_f32);
    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        dst.copy_from_slice(src);
    }
    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        dst.copy_from_slice(src);
    }
    fn vec_dot_scalar(x: &[Self], y: &[Self]) -> f32 {
        dot::scalar::dot_f32(x, y)
    }
}

impl GgmlBlock for f16 {
    const TYPE: GgmlType = GgmlType::F16;
    const BLCK_SIZE: usize = 1;
    type VecDot = f16;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<super::VecDotKernel<Self>> = Some(dot::avx2::dot_f16);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX512: Option<super::GemmKernel<Self>> = Some(gemm::avx512::gemm_f16);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<super::DequantizeKernel<Self>> = Some(dequant_avx2::f16);
    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        half::slice::HalfFloatSliceExt::convert_from_f32_slice(dst, src);
    }
    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst);
    }
    fn vec_dot_scalar(x: &[Self], y: &[Self]) -> f32 {
        dot::scalar::dot_f16(x, y)
    }
}

impl GgmlBlock for bf16 {
    const TYPE: GgmlType = GgmlType::BF16;
    const BLCK_SIZE: usize = 1;
    type VecDot = bf16;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<super::VecDotKernel<Self>> = Some(dot::avx2::dot_bf16);
    #[cfg(target_arch = "x86_64")]
    const GEMM_AVX512: Option<super::GemmKernel<Self>> = Some(gemm::avx512::gemm_bf16);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<super::DequantizeKernel<Self>> = Some(dequant_avx2::bf16);
    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = f32_to_bf16(s);
        }
    }
    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = s.to_f32();
        }
    }
    fn vec_dot_scalar(x: &[Self], y: &[Self]) -> f32 {
        dot::scalar::dot_bf16(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounding_and_nan() {
        assert_eq!(f32_to_bf16(1.0).to_bits(), 0x3f80);
        // 1 + 2^-8 is a tie between 0x3f80 and 0x3f81: rounds to even.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)).to_bits(), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)).to_bits(), 0x3f82);
        let nan = f32_to_bf16(f32::from_bits(0x7f80_0001));
        assert!(nan.is_nan());
        assert_eq!(nan.to_bits() & 0x40, 0x40);
    }
}
