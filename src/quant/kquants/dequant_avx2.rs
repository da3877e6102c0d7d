//! AVX2 dequantizers of the k-quants. Levels are unpacked 32 at a time into
//! bytes, converted to f32 eight at a time, and scaled with the same float
//! operations in the same order as the scalar references
//! (`dequantize_row_scalar` of each type): the sub-block factors `d · sc`
//! (and `dmin · m`) are rounded once, then multiplied by the level (and the
//! minimum subtracted; never fused into an FMA), so the outputs are
//! bit-identical.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use super::dot::avx2::{scales_mins_k4, scales_q3k};
use crate::quant::blocks::*;
use crate::quant::x86::*;

/// `dl_lo · q` for values 0..16 of the 32 levels `q` and `dl_hi · q` for
/// values 16..32, stored to `y[..32]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_scaled(y: &mut [f32], q: __m256i, dl_lo: f32, dl_hi: f32) {
    let v = i8x32_to_ps(q);
    let (a, b) = (_mm256_set1_ps(dl_lo), _mm256_set1_ps(dl_hi));
    store_ps(&mut y[0..], _mm256_mul_ps(a, v[0]));
    store_ps(&mut y[8..], _mm256_mul_ps(a, v[1]));
    store_ps(&mut y[16..], _mm256_mul_ps(b, v[2]));
    store_ps(&mut y[24..], _mm256_mul_ps(b, v[3]));
}

/// `dl · q − ml` for the 32 levels `q`, with the factors of values 0..16 in
/// lane 0 of the pairs and of values 16..32 in lane 1, stored to `y[..32]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_affine(y: &mut [f32], q: __m256i, dl: (f32, f32), ml: (f32, f32)) {
    let v = i8x32_to_ps(q);
    let (d0, d1) = (_mm256_set1_ps(dl.0), _mm256_set1_ps(dl.1));
    let (m0, m1) = (_mm256_set1_ps(ml.0), _mm256_set1_ps(ml.1));
    store_ps(&mut y[0..], _mm256_sub_ps(_mm256_mul_ps(d0, v[0]), m0));
    store_ps(&mut y[8..], _mm256_sub_ps(_mm256_mul_ps(d0, v[1]), m0));
    store_ps(&mut y[16..], _mm256_sub_ps(_mm256_mul_ps(d1, v[2]), m1));
    store_ps(&mut y[24..], _mm256_sub_ps(_mm256_mul_ps(d1, v[3]), m1));
}

/// Q6_K: `(d · sc_j) · q`, `q = low4 | high2 << 4, − 32`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6k(x: &[BlockQ6K], dst: &mut [f32]) {
    let (m4, m2, bias) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(3), _mm256_set1_epi8(32));
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let dl = scaled_i8x16(f16_splat(b.d), load_16(&b.scales));
        for h in 0..2 {
            let (ql0, ql1) = (load_u8(&b.ql[64 * h..]), load_u8(&b.ql[64 * h + 32..]));
            let qh = load_u8(&b.qh[32 * h..]);
            let lows = [
                _mm256_and_si256(ql0, m4),
                _mm256_and_si256(ql1, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
            ];
            for (s, low) in lows.into_iter().enumerate() {
                let high = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * s as i32)), m2);
                let q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16::<4>(high)), bias);
                let j = 8 * h + 2 * s;
                store_scaled(&mut y[128 * h + 32 * s..], q, dl[j], dl[j + 1]);
            }
        }
    }
}

/// Q3_K: `(d · sc_j) · q`, `q = low2 − 4·(1 − high)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q3k(x: &[BlockQ3K], dst: &mut [f32]) {
    let (m2, four) = (_mm256_set1_epi8(3), _mm256_set1_epi8(4));
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let scales = _mm_sub_epi8(load_16(&scales_q3k(&b.scales)), _mm_set1_epi8(32));
        let dl = scaled_i8x16(f16_splat(b.d), scales);
        let hmask = load_u8(&b.hmask);
        for h in 0..2 {
            let bits = load_u8(&b.qs[32 * h..]);
            for s in 0..4 {
                let low = _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * s as i32)), m2);
                let bit = _mm256_set1_epi8((1u8 << (4 * h + s)) as i8);
                let clear = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), _mm256_setzero_si256());
                let q = _mm256_sub_epi8(low, _mm256_and_si256(clear, four));
                let j = 8 * h + 2 * s;
                store_scaled(&mut y[128 * h + 32 * s..], q, dl[j], dl[j + 1]);
            }
        }
    }
}

/// Q2_K: `(d · sc_j) · q − dmin · m_j`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q2k(x: &[BlockQ2K], dst: &mut [f32]) {
    let m2 = _mm256_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0F);
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let raw = load_16(&b.scales);
        let dl = scaled_i8x16(f16_splat(b.d), _mm_and_si128(raw, m4));
        let ml = scaled_i8x16(f16_splat(b.dmin), _mm_and_si128(_mm_srli_epi16::<4>(raw), m4));
        for h in 0..2 {
            let bits = load_u8(&b.qs[32 * h..]);
            for s in 0..4 {
                let q = _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * s as i32)), m2);
                let j = 8 * h + 2 * s;
                store_affine(&mut y[128 * h + 32 * s..], q, (dl[j], dl[j + 1]), (ml[j], ml[j + 1]));
            }
        }
    }
}

/// Q4_K: `(d · sc_j) · q − dmin · m_j` over 8 sub-blocks of 32, the low
/// nibbles of 32 bytes in one sub-block and their high nibbles in the next.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4k(x: &[BlockQ4K], dst: &mut [f32]) {
    let m4 = _mm256_set1_epi8(0x0F);
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let sm = load_16(&scales_mins_k4(&b.scales));
        let dl = scaled_i8x16(f16_splat(b.d), sm);
        let ml = scaled_i8x16(f16_splat(b.dmin), _mm_srli_si128::<8>(sm));
        for c in 0..4 {
            let bits = load_u8(&b.qs[32 * c..]);
            let lo = _mm256_and_si256(bits, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
            let (j, k) = (2 * c, 2 * c + 1);
            store_affine(&mut y[64 * c..], lo, (dl[j], dl[j]), (ml[j], ml[j]));
            store_affine(&mut y[64 * c + 32..], hi, (dl[k], dl[k]), (ml[k], ml[k]));
        }
    }
}

/// Q5_K: `(d · sc_j) · q − dmin · m_j` over 8 sub-blocks of 32,
/// `q = nibble | bit << 4`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5k(x: &[BlockQ5K], dst: &mut [f32]) {
    let (m4, one, two) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(1), _mm256_set1_epi8(2));
    for (b, y) in x.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let sm = load_16(&scales_mins_k4(&b.scales));
        let dl = scaled_i8x16(f16_splat(b.d), sm);
        let ml = scaled_i8x16(f16_splat(b.dmin), _mm_srli_si128::<8>(sm));
        // Bit 2c of each `qh` byte is the fifth bit of the low nibbles of
        // chunk c, bit 2c+1 that of the high nibbles; shifted down as we go.
        let mut qh = load_u8(&b.qh);
        for c in 0..4 {
            let bits = load_u8(&b.qs[32 * c..]);
            let h1 = _mm256_slli_epi16::<4>(_mm256_and_si256(qh, one));
            let h2 = _mm256_slli_epi16::<3>(_mm256_and_si256(qh, two));
            qh = _mm256_srli_epi16::<2>(qh);
            let lo = _mm256_or_si256(_mm256_and_si256(bits, m4), h1);
            let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4), h2);
            let (j, k) = (2 * c, 2 * c + 1);
            store_affine(&mut y[64 * c..], lo, (dl[j], dl[j]), (ml[j], ml[j]));
            store_affine(&mut y[64 * c + 32..], hi, (dl[k], dl[k]), (ml[k], ml[k]));
        }
    }
}
