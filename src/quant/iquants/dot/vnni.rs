//! AVX-512 VNNI dot products of IQ3_S, IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S,
//! IQ1_S and IQ1_M with Q8_K for one token (generation): the integer lanes
//! of [`super::avx2`] formed 64 values (two sub-blocks) at a time. The grid
//! indices of two sub-blocks (16 of IQ3's 4 magnitudes, 8 of IQ2's and
//! IQ1's 8) are formed in one register and their entries gathered
//! (`vpgatherdd`, `vpgatherdq`) where the AVX2 kernels insert them one by
//! one; the 64 sign bits (IQ1: the levels' own) negate the activations
//! under a mask; `vpdpbusd` sums 4 products of unsigned magnitudes with
//! signed activations per lane (at most 4·62·128, exact) and `vpmulld`
//! applies each sub-block's scale (IQ2, IQ1_M: one per 16 values). Lane `k`
//! of a sub-block holds its values `4k..4k+4`, as ggml's AVX2 lane `k`
//! does, so the two 256-bit halves are added at the end. Integer sums do not
//! depend on their order and the float steps are the AVX2 kernels' own
//! ([`super::avx2::grid_steps`]; IQ1's written out), so each result equals
//! [`super::avx2`]'s bit for bit (tests/simd_dot.rs).
//!
//! # Safety
//! Every function requires AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the
//! running CPU.

use std::arch::x86_64::*;

use super::avx2::grid_steps;
use crate::quant::blocks::*;
use crate::quant::iquants::iq2_tables::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};
use crate::quant::iquants::iq3_tables::{IQ3S_GRID, IQ3XXS_GRID};
use crate::quant::iquants::{iq2s, iq2xs, iq2xxs, iq3s, iq3xxs};
use crate::quant::kquants::dot::vnni::fold;

/// `lo` in lanes 0..8, `hi` in lanes 8..16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn halves(lo: i32, hi: i32) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_set1_epi32(lo), _mm256_set1_epi32(hi))
}

/// `ls·Σ magnitude·sign·q8` of two sub-blocks in 16 lanes (4 values each):
/// `grid` their 64 magnitudes, `signs` their 64 sign bits, `q8` their 64
/// activation levels, `ls` their scales.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn pair(grid: __m512i, signs: u64, q8: &[i8], ls: __m512i) -> __m512i {
    assert!(q8.len() >= 64);
    // SAFETY: `q8` holds at least 64 bytes (checked above).
    let q8 = unsafe { _mm512_loadu_si512(q8.as_ptr().cast()) };
    let zero = _mm512_setzero_si512();
    let q8s = _mm512_mask_sub_epi8(q8, signs, zero, q8);
    _mm512_mullo_epi32(_mm512_dpbusd_epi32(zero, grid, q8s), ls)
}

/// The 16 grid indices of sub-blocks `2p`, `2p + 1` from their 16 low bytes
/// (and, for IQ3_S, the 9th bits in `qh`); the int8 GEMM's unpacking
/// (`iquants::gemm`) uses them too.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub(crate) unsafe fn indices(low: &[u8], qh: Option<(u8, u8)>) -> __m512i {
    assert!(low.len() >= 16);
    // SAFETY: `low` holds at least 16 bytes (checked above).
    let idx = _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(low.as_ptr().cast()) });
    let Some((h0, h1)) = qh else { return idx };
    let k = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
    let bit = _mm512_and_si512(_mm512_srlv_epi32(halves(h0 as i32, h1 as i32), k), _mm512_set1_epi32(1));
    _mm512_or_si512(idx, _mm512_slli_epi32::<8>(bit))
}

/// The 8 lanes of an IQ3_S super-block's scaled sums.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn iq3s_lanes(a: &BlockIQ3S, b: &BlockQ8K) -> __m256i {
    let mut sum = _mm512_setzero_si512();
    for p in 0..4 {
        // SAFETY: 16 of the 64 index bytes; the indices are below 512, the
        // grid's length; the features are this function's.
        let grid = unsafe {
            let idx = indices(&a.qs[16 * p..], Some((a.qh[2 * p], a.qh[2 * p + 1])));
            _mm512_i32gather_epi32::<4>(idx, IQ3S_GRID.as_ptr().cast())
        };
        let signs = iq3s::signs(a, 2 * p) as u64 | (iq3s::signs(a, 2 * p + 1) as u64) << 32;
        let ls = halves(iq3s::scale(a, 2 * p), iq3s::scale(a, 2 * p + 1));
        // SAFETY: the features are this function's.
        sum = _mm512_add_epi32(sum, unsafe { pair(grid, signs, &b.qs[64 * p..], ls) });
    }
    fold(sum)
}

/// The 8 lanes of an IQ3_XXS super-block's scaled sums.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn iq3xxs_lanes(a: &BlockIQ3XXS, b: &BlockQ8K) -> __m256i {
    let mut sum = _mm512_setzero_si512();
    let ls = |ib| 2 * (iq3xxs::aux(a, ib) >> 28) as i32 + 1;
    for p in 0..4 {
        // SAFETY: 16 of the 64 index bytes, each below 256, the grid's
        // length; the features are this function's.
        let grid = unsafe { _mm512_i32gather_epi32::<4>(indices(&a.qs[16 * p..], None), IQ3XXS_GRID.as_ptr().cast()) };
        let signs = iq3xxs::signs(a, 2 * p) as u64 | (iq3xxs::signs(a, 2 * p + 1) as u64) << 32;
        // SAFETY: the features are this function's.
        sum = _mm512_add_epi32(sum, unsafe { pair(grid, signs, &b.qs[64 * p..], halves(ls(2 * p), ls(2 * p + 1))) });
    }
    fold(sum)
}

/// ggml's AVX2 `ggml_vec_dot_iq3_s_q8_K`, its lanes formed as above.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn iq3s_q8k(x: &[BlockIQ3S], y: &[BlockQ8K]) -> f32 {
    // SAFETY: the features are this function's.
    unsafe { grid_steps(x, y, |a| a.d.to_f32(), |a, b| iq3s_lanes(a, b)) }
}

/// ggml's AVX2 `ggml_vec_dot_iq3_xxs_q8_K`, its lanes formed as above.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn iq3xxs_q8k(x: &[BlockIQ3XXS], y: &[BlockQ8K]) -> f32 {
    // SAFETY: the features are this function's.
    unsafe { 0.25 * grid_steps(x, y, |a| a.d.to_f32(), |a, b| iq3xxs_lanes(a, b)) }
}

/// 16 bytes of `p` from its start.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load16(p: &[u8]) -> __m128i {
    assert!(p.len() >= 16);
    // SAFETY: `p` holds at least 16 bytes (checked above).
    unsafe { _mm_loadu_si128(p.as_ptr().cast()) }
}

/// The 8 lanes of a 2-bit grid super-block's scaled sums: `index(p)` the
/// grid indices of groups `8p..8p+8` (8 values each, below the grid's
/// length), `signs(ib32)` the 32 sign bits of values `32·ib32..`,
/// `scale(i)` the scale of values `16i..16i+16`.
///
/// # Safety
/// The features below on the running CPU; every index below `grid.len()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn iq2_lanes(
    grid: &[u64],
    index: impl Fn(usize) -> __m256i,
    signs: impl Fn(usize) -> u32,
    scale: impl Fn(usize) -> i32,
    b: &BlockQ8K,
) -> __m256i {
    let mut sum = _mm512_setzero_si512();
    for p in 0..4 {
        // SAFETY: 8 indices below the grid's length (the caller's).
        let entries = unsafe { _mm512_i32gather_epi64::<8>(index(p), grid.as_ptr().cast()) };
        let bits = signs(2 * p) as u64 | (signs(2 * p + 1) as u64) << 32;
        let s: [i32; 4] = std::array::from_fn(|i| scale(4 * p + i));
        let ls = _mm512_setr_epi32(
            s[0], s[0], s[0], s[0], s[1], s[1], s[1], s[1], s[2], s[2], s[2], s[2], s[3], s[3], s[3], s[3],
        );
        // SAFETY: the features are this function's.
        sum = _mm512_add_epi32(sum, unsafe { pair(entries, bits, &b.qs[64 * p..], ls) });
    }
    fold(sum)
}

/// ggml's AVX2 `ggml_vec_dot_iq2_xxs_q8_K`, its lanes formed as above.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn iq2xxs_q8k(x: &[BlockIQ2XXS], y: &[BlockQ8K]) -> f32 {
    // Per 32 values 4 index bytes, then 4 bytes of signs and scale.
    let pick = _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1);
    let lanes = |a: &BlockIQ2XXS, b: &BlockQ8K| {
        // SAFETY: the features are this function's; the indices are bytes,
        // below the grid's 256 entries.
        unsafe {
            let index = |p: usize| _mm256_cvtepu8_epi32(_mm_shuffle_epi8(load16(&a.qs[16 * p..]), pick));
            iq2_lanes(&IQ2XXS_GRID, index, |ib| iq2xxs::signs(a, ib), |i| iq2xxs::scale(a, i / 2), b)
        }
    };
    // SAFETY: the features are this function's.
    unsafe { 0.125 * grid_steps(x, y, |a| a.d.to_f32(), lanes) }
}

/// ggml's AVX2 `ggml_vec_dot_iq2_xs_q8_K`, its lanes formed as above.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn iq2xs_q8k(x: &[BlockIQ2XS], y: &[BlockQ8K]) -> f32 {
    let lanes = |a: &BlockIQ2XS, b: &BlockQ8K| {
        // SAFETY: the features are this function's; the indices are the low
        // 9 bits of each group's u16, below the grid's 512 entries.
        unsafe {
            let index =
                |p: usize| _mm256_and_si256(_mm256_cvtepu16_epi32(load16(&a.qs[16 * p..])), _mm256_set1_epi32(511));
            iq2_lanes(&IQ2XS_GRID, index, |ib| iq2xs::signs(a, ib), |i| iq2xs::scale(a, i), b)
        }
    };
    // SAFETY: the features are this function's.
    unsafe { 0.125 * grid_steps(x, y, |a| a.d.to_f32(), lanes) }
}

/// ggml's AVX2 `ggml_vec_dot_iq2_s_q8_K`, its lanes formed as above.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn iq2s_q8k(x: &[BlockIQ2S], y: &[BlockQ8K]) -> f32 {
    let shifts = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    let lanes = |a: &BlockIQ2S, b: &BlockQ8K| {
        // SAFETY: the features are this function's; an index is a byte of
        // `qs` and 2 bits of `qh` above it, below the grid's 1024 entries.
        unsafe {
            let index = |p: usize| {
                let low = _mm256_cvtepu8_epi32(_mm_loadl_epi64(a.qs[8 * p..8 * p + 8].as_ptr().cast()));
                let (h0, h1) = (a.qh[2 * p] as i32, a.qh[2 * p + 1] as i32);
                let h = _mm256_setr_epi32(h0, h0, h0, h0, h1, h1, h1, h1);
                let high = _mm256_and_si256(_mm256_srlv_epi32(h, shifts), _mm256_set1_epi32(3));
                _mm256_or_si256(low, _mm256_slli_epi32::<8>(high))
            };
            iq2_lanes(&IQ2S_GRID, index, |ib| iq2s::signs(a, ib), |i| iq2s::scale(a, i), b)
        }
    };
    // SAFETY: the features are this function's.
    unsafe { 0.125 * grid_steps(x, y, |a| a.d.to_f32(), lanes) }
}

/// `ls·Σ level·q8` of two 32-value chunks of IQ1 levels (−1, 0, 1 as
/// bytes, `grid`) in 16 lanes: the activations negated where a level is
/// negative, `vpdpbusd` with the levels' magnitudes, times `ls`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn iq1_pair(grid: __m512i, q8: &[i8], ls: __m512i) -> __m512i {
    // SAFETY: the features are this function's.
    unsafe { pair(_mm512_abs_epi8(grid), _mm512_movepi8_mask(grid), q8, ls) }
}

/// 8 grid indices of IQ1: `low` the 8 index bytes, `high` their 3 high bits
/// at bit 8 of each lane (anything above masked off).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
unsafe fn iq1_indices(low: &[u8], high: __m256i) -> __m256i {
    assert!(low.len() >= 8);
    // SAFETY: `low` holds at least 8 bytes (checked above).
    let low = _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(low.as_ptr().cast()) });
    _mm256_or_si256(low, _mm256_and_si256(high, _mm256_set1_epi32(0x700)))
}

/// ggml's AVX2 `ggml_vec_dot_iq1_s_q8_K` (`super::avx2::iq1s_q8k`), its
/// level lanes formed two sub-blocks at a time as above (the shift sums
/// from the block sums, as there).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn iq1s_q8k(x: &[BlockIQ1S], y: &[BlockQ8K]) -> f32 {
    use crate::quant::iquants::iq1_tables::IQ1S_GRID;
    use crate::quant::iquants::iq1s::{negative_shift, scale};
    use crate::quant::x86::{fma_ss, hsum_ps};
    let shifts = _mm256_setr_epi32(8, 5, 2, -1, 8, 5, 2, -1);
    let mut accum = _mm256_setzero_ps();
    let mut accum1 = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sumi = _mm512_setzero_si512();
        let mut sumi1 = 0i32;
        for p in 0..4 {
            // Index bits 8..11 of group l: bits 3l..3l+3 of the sub-block's
            // qh, shifted left by 8 − 3l (the last right by 1).
            let (h0, h1) = (a.qh[2 * p] as i32, a.qh[2 * p + 1] as i32);
            let h = _mm256_setr_epi32(h0, h0, h0, h0, h1, h1, h1, h1);
            let left = _mm256_sllv_epi32(h, _mm256_max_epi32(shifts, _mm256_setzero_si256()));
            let high = _mm256_blend_epi32::<0b1000_1000>(left, _mm256_srli_epi32::<1>(h));
            // SAFETY: the indices are below 2048, the grid's length; the
            // features are this function's.
            let grid =
                unsafe { _mm512_i32gather_epi64::<8>(iq1_indices(&a.qs[8 * p..], high), IQ1S_GRID.as_ptr().cast()) };
            let (l0, l1) = (scale(a, 2 * p), scale(a, 2 * p + 1));
            // SAFETY: the features are this function's.
            sumi = _mm512_add_epi32(sumi, unsafe { iq1_pair(grid, &b.qs[64 * p..], halves(l0, l1)) });
            for (ib, ls) in [(2 * p, l0), (2 * p + 1, l1)] {
                let s = b.bsums[2 * ib] as i32 + b.bsums[2 * ib + 1] as i32;
                sumi1 += if negative_shift(a, ib) { -s } else { s } * ls;
            }
        }
        let d = b.d * a.d.to_f32();
        accum = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(fold(sumi)), accum);
        accum1 = fma_ss(accum1, d, sumi1 as f32);
    }
    // SAFETY: the features are this function's.
    fma_ss(unsafe { hsum_ps(accum) }, crate::quant::iquants::iq1::IQ1S_DELTA, accum1)
}

/// ggml's AVX2 `ggml_vec_dot_iq1_m_q8_K` (`super::avx2::iq1m_q8k`), both
/// sets of lanes formed two sub-blocks at a time: the levels as above, the
/// shift sums `Σ ±q8` by `vpdpbusd` of ones with the activations negated
/// where a group's shift is.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn iq1m_q8k(x: &[BlockIQ1M], y: &[BlockQ8K]) -> f32 {
    use crate::quant::iquants::iq1_tables::IQ1S_GRID;
    use crate::quant::iquants::iq1m::{negative_shift, scale, scale_words, super_scale};
    use crate::quant::x86::{fma_ss, hsum_ps};
    // Group j of 8 takes qh byte j/2, its bits 0..3 (j even) or 4..7 (odd)
    // to index bits 8..11.
    let dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1);
    let shifts = _mm256_setr_epi32(8, 4, 8, 4, 8, 4, 8, 4);
    let ones = _mm512_set1_epi8(1);
    let (mut accum1, mut accum2) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (a, b) in x.iter().zip(y) {
        let sc = scale_words(a);
        let (mut sumi1, mut sumi2) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        for p in 0..4 {
            let qh = u32::from_le_bytes(a.qh[4 * p..4 * p + 4].try_into().unwrap_or([0; 4]));
            let h = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128(qh as i32), dup));
            // SAFETY: the indices are below 2048, the grid's length; the
            // features are this function's.
            let grid = unsafe {
                let idx = iq1_indices(&a.qs[8 * p..], _mm256_sllv_epi32(h, shifts));
                _mm512_i32gather_epi64::<8>(idx, IQ1S_GRID.as_ptr().cast())
            };
            let s: [i32; 4] = std::array::from_fn(|i| scale(&sc, 4 * p + i));
            let ls = _mm512_setr_epi32(
                s[0], s[0], s[0], s[0], s[1], s[1], s[1], s[1], s[2], s[2], s[2], s[2], s[3], s[3], s[3], s[3],
            );
            let negative = (0..8).fold(0u64, |m, j| if negative_shift(a, 8 * p + j) { m | 0xFF << (8 * j) } else { m });
            // SAFETY: the features are this function's.
            unsafe {
                sumi1 = _mm512_add_epi32(sumi1, iq1_pair(grid, &b.qs[64 * p..], ls));
                sumi2 = _mm512_add_epi32(sumi2, pair(ones, negative, &b.qs[64 * p..], ls));
            }
        }
        let d = _mm256_set1_ps(b.d * super_scale(&sc).to_f32());
        accum1 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(fold(sumi1)), accum1);
        accum2 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(fold(sumi2)), accum2);
    }
    // SAFETY: the features are this function's.
    unsafe { fma_ss(hsum_ps(accum1), crate::quant::iquants::iq1::IQ1M_DELTA, hsum_ps(accum2)) }
}
