//! AVX2 dot products of the legacy types. Per block the integer sum of the
//! 32 products is formed exactly in 8 i32 lanes (`maddubs` + `madd`, whose
//! 16-bit pair sums cannot saturate for these level ranges), converted to
//! float, scaled by `d_x·d_y` and accumulated in 8 float lanes.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use crate::quant::blocks::*;
use crate::quant::x86::*;

/// Σ over blocks of `d_x·d_y·Σ (q4-8)·q8`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let eight = _mm256_set1_epi8(8);
    for (a, b) in x.iter().zip(y) {
        let d = _mm256_set1_ps(f16_product(a.d, b.d));
        let qx = _mm256_sub_epi8(nibbles_32(&a.qs), eight);
        let s = dot_i8_i8(qx, load_i8(&b.qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum_ps(acc)
}

/// Σ over blocks of `d_x·d_y·Σ q4·q8 + m_x·s_y`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let (d, ms) = f16_products(a.d, b.d, a.m, b.s);
        summs += ms;
        let d = _mm256_set1_ps(d);
        let s = dot_u8_i8(nibbles_32(&a.qs), load_i8(&b.qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum_ps(acc) + summs
}

/// Σ over blocks of `d_x·d_y·Σ (q5-16)·q8`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let high_nibble = _mm256_set1_epi8(0xF0u8 as i8);
    for (a, b) in x.iter().zip(y) {
        let d = _mm256_set1_ps(f16_product(a.d, b.d));
        // q - 16 as i8: the low nibble with 0xF0 or-ed in where the fifth
        // bit is clear (nibble - 16), unchanged where it is set.
        let minus16 = _mm256_andnot_si256(bits_32(&a.qh), high_nibble);
        let qx = _mm256_or_si256(nibbles_32(&a.qs), minus16);
        let s = dot_i8_i8(qx, load_i8(&b.qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum_ps(acc)
}

/// Σ over blocks of `d_x·d_y·Σ q5·q8 + m_x·s_y`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    let bit4 = _mm256_set1_epi8(0x10);
    for (a, b) in x.iter().zip(y) {
        let (d, ms) = f16_products(a.d, b.d, a.m, b.s);
        summs += ms;
        let d = _mm256_set1_ps(d);
        let qx = _mm256_or_si256(nibbles_32(&a.qs), _mm256_and_si256(bits_32(&a.qh), bit4));
        let s = dot_u8_i8(qx, load_i8(&b.qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum_ps(acc) + summs
}

/// Σ over blocks of `d_x·d_y·Σ q8·q8`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let d = _mm256_set1_ps(f16_product(a.d, b.d));
        let s = dot_i8_i8(load_i8(&a.qs), load_i8(&b.qs));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum_ps(acc)
}
