//! AVX2 dot products of IQ4_NL and IQ4_XS, in the float order of ggml's
//! AVX2 kernels (`ggml_vec_dot_iq4_nl_q8_0`, `ggml_vec_dot_iq4_xs_q8_K` in
//! ggml-cpu/arch/x86/quants.c). The 4-bit indices become table levels with
//! one `pshufb` per 16 bytes; `|level| ≤ 127` and `|q8| ≤ 128`, so the
//! 16-bit pair sums of `maddubs` (≤ 2·127·128) cannot saturate and every
//! integer sum is exact.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use crate::quant::blocks::*;
use crate::quant::iquants::iq4xs::sub_scale;
use crate::quant::iquants::KVALUES_IQ4NL;
use crate::quant::x86::*;

/// The 32 table levels of a (sub-)block's 16 bytes of nibbles: values
/// 0..16 (low nibbles) in bytes 0..16, values 16..32 in bytes 16..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn levels_32(table: __m256i, qs: &[u8; 16]) -> __m256i {
    _mm256_shuffle_epi8(table, nibbles_32(qs))
}

/// `kvalues_iq4nl` in both 128-bit lanes (`pshufb` looks up per lane).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn table() -> __m256i {
    _mm256_broadcastsi128_si256(load_16(&KVALUES_IQ4NL))
}

/// The 16 i16 pair sums of `level·q8` (ggml's `mul_add_epi8`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pair_sums(x: __m256i, y: __m256i) -> __m256i {
    _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// Σ over blocks of `d_x·d_y·Σ level·q8`: pairs of blocks into two float
/// accumulators (even and odd blocks), summed, then an odd last block added
/// in scalar (with one fused multiply-add, as GCC contracts ggml's
/// `sumf += d * (sumi1 + sumi2)` when FMA is enabled).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq4nl_q8_0(x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let nb = x.len().min(y.len());
    let table = table();
    let ones = _mm256_set1_epi16(1);
    let (mut acc1, mut acc2) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut ib = 0;
    while ib + 1 < nb {
        let (a1, b1, a2, b2) = (&x[ib], &y[ib], &x[ib + 1], &y[ib + 1]);
        let p1 = _mm256_madd_epi16(pair_sums(levels_32(table, &a1.qs), load_i8(&b1.qs)), ones);
        let p2 = _mm256_madd_epi16(pair_sums(levels_32(table, &a2.qs), load_i8(&b2.qs)), ones);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(f16_product(b1.d, a1.d)), _mm256_cvtepi32_ps(p1), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_set1_ps(f16_product(b2.d, a2.d)), _mm256_cvtepi32_ps(p2), acc2);
        ib += 2;
    }
    let mut sumf = hsum_ps(_mm256_add_ps(acc1, acc2));
    if ib < nb {
        let (a, b) = (&x[ib], &y[ib]);
        let d = f16_product(b.d, a.d);
        let s = hsum_epi32(_mm256_madd_epi16(pair_sums(levels_32(table, &a.qs), load_i8(&b.qs)), ones));
        sumf = d.mul_add(s as f32, sumf);
    }
    sumf
}

/// Σ over super-blocks of `d_x·d_y·Σ_ib (ls_ib−32)·Σ level·q8`: the scaled
/// integer sums of a super-block's 8 sub-blocks in 8 i32 lanes, converted
/// and multiply-added into 8 float lanes, summed at the end.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq4xs_q8k(x: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let table = table();
    let mut acc = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            let qs: &[u8; 16] = a.qs[16 * ib..16 * ib + 16].try_into().unwrap();
            let p16 = pair_sums(levels_32(table, qs), load_i8(&b.qs[32 * ib..]));
            let ls = _mm256_set1_epi16(sub_scale(a, ib) as i16);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, ls));
        }
        let d = _mm256_set1_ps(a.d.to_f32() * b.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}

/// llamafile's tinyBLAS IQ4_NL product (`super::scalar::iq4nl_batch`): one
/// float accumulator over all blocks.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq4nl_batch(x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let table = table();
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let p = _mm256_madd_epi16(pair_sums(levels_32(table, &a.qs), load_i8(&b.qs)), ones);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16_product(a.d, b.d)), _mm256_cvtepi32_ps(p), acc);
    }
    hsum_ps(acc)
}

/// ggml's tiled-GEMM IQ4_XS product (`super::scalar::iq4xs_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq4xs_batch(x: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let table = table();
    let mut acc = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        for ib in 0..8 {
            let qs: &[u8; 16] = a.qs[16 * ib..16 * ib + 16].try_into().unwrap();
            let p16 = pair_sums(levels_32(table, qs), load_i8(&b.qs[32 * ib..]));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, _mm256_set1_epi16(sub_scale(a, ib) as i16)));
        }
        let res = a.d.to_f32() * hsum_epi32(sumi) as f32;
        acc = fma_ss(acc, res, b.d);
    }
    acc
}
