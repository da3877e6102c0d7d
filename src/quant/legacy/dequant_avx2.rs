//! AVX2 dequantizers of the legacy types. The 32 levels of a block are
//! unpacked into bytes, converted to f32 eight at a time, and scaled with
//! the float operations of the scalar references (`dequantize_row_scalar`)
//! in the same order (a product, then the minimum added; never fused into
//! an FMA), so the outputs are bit-identical.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use crate::quant::blocks::*;
use crate::quant::x86::*;

/// `q · d + m` for the 32 levels `q`, stored to `y[..32]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_affine(y: &mut [f32], q: __m256i, d: __m256, m: __m256) {
    let v = i8x32_to_ps(q);
    for (k, v) in v.into_iter().enumerate() {
        store_ps(&mut y[8 * k..], _mm256_add_ps(_mm256_mul_ps(v, d), m));
    }
}

/// The 32 five-bit levels (0..32) of a Q5 block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn levels5(qs: &[u8; 16], qh: &[u8; 4]) -> __m256i {
    _mm256_or_si256(nibbles_32(qs), _mm256_and_si256(bits_32(qh), _mm256_set1_epi8(0x10)))
}

/// Q5_0: `(q − 16) · d`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_0(x: &[BlockQ5_0], dst: &mut [f32]) {
    let sixteen = _mm256_set1_epi8(16);
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK5_0)) {
        let q = _mm256_sub_epi8(levels5(&b.qs, &b.qh), sixteen);
        store_scaled_i8x32(y, q, f16_splat(b.d));
    }
}

/// Q4_0: `(q − 8) · d`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_0(x: &[BlockQ4_0], dst: &mut [f32]) {
    let eight = _mm256_set1_epi8(8);
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK4_0)) {
        store_scaled_i8x32(y, _mm256_sub_epi8(nibbles_32(&b.qs), eight), f16_splat(b.d));
    }
}

/// Q8_0 (and Q8_1, whose `s` plays no part): `q · d`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0(x: &[BlockQ8_0], dst: &mut [f32]) {
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK8_0)) {
        store_scaled_i8x32(y, load_i8(&b.qs), f16_splat(b.d));
    }
}

/// Q5_1: `q · d + m`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_1(x: &[BlockQ5_1], dst: &mut [f32]) {
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK5_1)) {
        store_affine(y, levels5(&b.qs, &b.qh), f16_splat(b.d), f16_splat(b.m));
    }
}

/// Q4_1: `q · d + m`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_1(x: &[BlockQ4_1], dst: &mut [f32]) {
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK4_1)) {
        store_affine(y, nibbles_32(&b.qs), f16_splat(b.d), f16_splat(b.m));
    }
}

/// Q1_0: `+d` where the sign bit is set, `−d` where it is clear.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q1_0(x: &[BlockQ1_0], dst: &mut [f32]) {
    let bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK1_0)) {
        let d = f16_splat(b.d);
        let neg = _mm256_xor_ps(d, _mm256_set1_ps(-0.0)); // −d, sign flipped as the scalar `-d`
        for (k, &byte) in b.qs.iter().enumerate() {
            let set = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte as i32), bit), bit);
            store_ps(&mut y[8 * k..], _mm256_blendv_ps(neg, d, _mm256_castsi256_ps(set)));
        }
    }
}

/// Q2_0: `(code − 1) · d`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q2_0(x: &[BlockQ2_0], dst: &mut [f32]) {
    let byte_of_value = super::dot::avx2::q2_0_byte_of_value();
    let one = _mm256_set1_epi8(1);
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK2_0)) {
        let d = f16_splat(b.d);
        for k in 0..2 {
            let q = _mm256_sub_epi8(super::dot::avx2::q2_0_codes(b, k, byte_of_value), one);
            store_scaled_i8x32(&mut y[32 * k..32 * k + 32], q, d);
        }
    }
}
