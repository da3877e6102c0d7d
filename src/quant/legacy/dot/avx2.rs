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

/// Σ over Q1_0 blocks as ggml's AVX2 `ggml_vec_dot_q1_0_q8_0`: per Q8_0
/// block the 32 activation levels negated where the sign bit is clear,
/// summed in 8 i32 lanes of 4 consecutive values, scaled by `d_y` into a
/// per-block float vector (`mul` for the first Q8_0 block, `fma` for the
/// next three), then `acc = fma(d_x, block, acc)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q1_0_q8_0(x: &[BlockQ1_0], y: &[BlockQ8_0]) -> f32 {
    let ones_8 = _mm256_set1_epi8(1);
    let ones_16 = _mm256_set1_epi16(1);
    let byte_of_bit = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    let bit_masks = _mm256_set1_epi64x(i64::from_le_bytes([1, 2, 4, 8, 16, 32, 64, 128]));
    let mut acc = _mm256_setzero_ps();
    for (a, b4) in x.iter().zip(y.chunks_exact(4)) {
        let mut block = _mm256_setzero_ps();
        for (k, b) in b4.iter().enumerate() {
            let bits = i32::from_le_bytes(a.qs[4 * k..4 * k + 4].try_into().unwrap());
            let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(bits), byte_of_bit);
            // 0xFF where the bit is clear: those levels are negated (wrapping, as ggml).
            let clear = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_masks), _mm256_setzero_si256());
            let signed = _mm256_sub_epi8(_mm256_xor_si256(load_i8(&b.qs), clear), clear);
            let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(ones_8, signed), ones_16));
            let dy = _mm256_set1_ps(b.d.to_f32());
            block = if k == 0 { _mm256_mul_ps(dy, s) } else { _mm256_fmadd_ps(dy, s, block) };
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(a.d.to_f32()), block, acc);
    }
    hsum_ps(acc)
}

/// Σ over Q2_0 blocks: ggml has no x86 kernel for Q2_0 and runs its generic
/// C code, compiled with FMA; the integer sums here come from SIMD (exact:
/// `Σ code·q8 − Σ q8`, with the codes 0..3 unsigned), the float steps are
/// that code's, each `a += b·c` fused as GCC fuses it.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q2_0_q8_0(x: &[BlockQ2_0], y: &[BlockQ8_0]) -> f32 {
    let ones = _mm256_set1_epi8(1);
    let byte_of_value = q2_0_byte_of_value();
    let mut sumf = 0.0f32;
    for (a, b2) in x.iter().zip(y.chunks_exact(2)) {
        let mut sumi = 0.0f32;
        for (k, b) in b2.iter().enumerate() {
            let codes = q2_0_codes(a, k, byte_of_value);
            let q = load_i8(&b.qs);
            let s = hsum_epi32(_mm256_sub_epi32(dot_u8_i8(codes, q), dot_u8_i8(ones, q)));
            sumi = fma_ss(sumi, b.d.to_f32(), s as f32);
        }
        sumf = fma_ss(sumf, a.d.to_f32(), sumi);
    }
    sumf
}

/// The 32 codes (0..4) of half `k` of a Q2_0 block, in value order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q2_0_codes(a: &BlockQ2_0, k: usize, byte_of_value: __m256i) -> __m256i {
    let packed = i64::from_le_bytes(a.qs[8 * k..8 * k + 8].try_into().unwrap());
    codes_2bit(_mm256_shuffle_epi8(_mm256_set1_epi64x(packed), byte_of_value))
}

/// `_mm256_shuffle_epi8` indices sending byte `j / 4` of an 8-byte half
/// block to every value `j` of it.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn q2_0_byte_of_value() -> __m256i {
    _mm256_setr_epi8(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7)
}

/// The 2-bit field `(byte >> 2·(j%4)) & 3` of every byte `j` of `spread`
/// (AVX2 has no per-byte shift: four constant shifts, blended by `j % 4`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn codes_2bit(spread: __m256i) -> __m256i {
    let three = _mm256_set1_epi8(3);
    let pos = _mm256_setr_epi8(
        0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3,
    );
    let at = |p: i8| _mm256_cmpeq_epi8(pos, _mm256_set1_epi8(p));
    let r = _mm256_and_si256(spread, three);
    let r = _mm256_blendv_epi8(r, _mm256_and_si256(_mm256_srli_epi16::<2>(spread), three), at(1));
    let r = _mm256_blendv_epi8(r, _mm256_and_si256(_mm256_srli_epi16::<4>(spread), three), at(2));
    _mm256_blendv_epi8(r, _mm256_and_si256(_mm256_srli_epi16::<6>(spread), three), at(3))
}
