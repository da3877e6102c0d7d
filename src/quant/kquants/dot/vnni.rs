//! AVX-512 VNNI dot products of Q2_K, Q3_K, Q4_K, Q5_K and Q6_K with Q8_K for
//! one token (generation): the integer lanes of [`super::avx2`] formed 64
//! levels at a time, the sub-block scales applied by `vpdpwssd` (the `madd`
//! and the add of the AVX2 kernel in one instruction). A 512-bit register
//! holds two 32-value chunks; ggml's AVX2 lane `k` sums bytes `4k..4k+4` of
//! every chunk, so the two 256-bit halves are added at the end. Integer sums
//! do not depend on their order, and the float steps are the AVX2 kernel's
//! own (`q2k_steps` … `q6k_steps`, given these lanes), so each result equals [`super::avx2`]'s bit for bit (tests/simd_dot.rs).
//!
//! # Safety
//! Every function requires AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the
//! running CPU.

use std::arch::x86_64::*;

use super::avx2::scales_q3k;
use crate::quant::blocks::*;
use crate::quant::x86::*;

/// 64 bytes of `p` from its start.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn load64<T: bytemuck::Pod>(p: &[T]) -> __m512i {
    assert!(std::mem::size_of_val(p) >= 64);
    // SAFETY: `p` holds at least 64 bytes (checked above).
    unsafe { _mm512_loadu_si512(p.as_ptr() as *const _) }
}

/// A 256-bit register in both halves.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn bcast(v: __m256i) -> __m512i {
    _mm512_broadcast_i64x4(v)
}

/// The 8 AVX2 lanes of a 16-lane sum: lane `k` plus lane `8 + k`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
pub(crate) fn fold(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
}

/// A shift count per 16-bit lane: `lo` in the low 256 bits, `hi` in the high.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn halves16(lo: i16, hi: i16) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_set1_epi16(lo), _mm256_set1_epi16(hi))
}

/// Scales `4q..4q + 4` of `sc` (16 i16 in the low 256 bits), each in 8
/// consecutive i16 lanes: the scales of the 16-value halves of two chunks.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn scale_quad(sc: __m512i, q: usize) -> __m512i {
    const IDX: [i16; 32] = {
        let mut t = [0i16; 32];
        let mut i = 0;
        while i < 32 {
            t[i] = (i / 8) as i16;
            i += 1;
        }
        t
    };
    // SAFETY: `IDX` is 64 bytes.
    let idx = unsafe { load64(&IDX) };
    _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16(4 * q as i16)), sc)
}

/// Q2_K ([`super::avx2::q2k_q8k`]'s float steps, these integer lanes).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn q2k_q8k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: this function has the AVX2 kernel's features and `lanes_*`'s.
    unsafe { super::avx2::q2k_steps(x, y, |a, b, scales| lanes_q2k(a, b, scales)) }
}

/// The 8 integer lanes `Σ sc·q2·q8` of one Q2_K super-block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn lanes_q2k(a: &BlockQ2K, b: &BlockQ8K, scales: __m128i) -> __m256i {
    let sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(scales));
    let m3 = _mm512_set1_epi8(3);
    let mut sumi = _mm512_setzero_si512();
    for h in 0..2 {
        let bits = bcast(load_u8(&a.qs[32 * h..]));
        for p in 0..2 {
            // Chunks 2p and 2p + 1 of the 32 bytes: crumbs 2p and 2p + 1.
            let q = _mm512_and_si512(_mm512_srlv_epi16(bits, halves16(4 * p as i16, 4 * p as i16 + 2)), m3);
            let pr = _mm512_maddubs_epi16(q, load64(&b.qs[128 * h + 64 * p..]));
            sumi = _mm512_dpwssd_epi32(sumi, pr, scale_quad(sc, 2 * h + p));
        }
    }
    fold(sumi)
}

/// Q3_K ([`super::avx2::q3k_q8k`]'s float steps, these integer lanes).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn q3k_q8k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: this function has the AVX2 kernel's features and `lanes_*`'s.
    unsafe { super::avx2::q3k_steps(x, y, |a, b| lanes_q3k(a, b)) }
}

/// The 8 integer lanes `Σ sc·q3·q8` of one Q3_K super-block, `q3 = low2 − 4`
/// where the high bit is clear.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn lanes_q3k(a: &BlockQ3K, b: &BlockQ8K) -> __m256i {
    let scales = _mm_sub_epi8(load_16(&scales_q3k(&a.scales)), _mm_set1_epi8(32));
    let sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(scales));
    let hmask = bcast(load_u8(&a.hmask));
    let (m3, four) = (_mm512_set1_epi8(3), _mm512_set1_epi8(4));
    let mut sumi = _mm512_setzero_si512();
    for h in 0..2 {
        let bits = bcast(load_u8(&a.qs[32 * h..]));
        for p in 0..2 {
            let s = 4 * h + 2 * p;
            let low = _mm512_and_si512(_mm512_srlv_epi16(bits, halves16(4 * p as i16, 4 * p as i16 + 2)), m3);
            let bit = _mm512_inserti64x4::<1>(_mm512_set1_epi8(1 << s), _mm256_set1_epi8(1 << (s + 1)));
            let minus = _mm512_maskz_mov_epi8(_mm512_testn_epi8_mask(hmask, bit), four);
            let q8 = load64(&b.qs[128 * h + 64 * p..]);
            let pr = _mm512_sub_epi16(_mm512_maddubs_epi16(low, q8), _mm512_maddubs_epi16(minus, q8));
            sumi = _mm512_dpwssd_epi32(sumi, pr, scale_quad(sc, 2 * h + p));
        }
    }
    fold(sumi)
}

/// Q4_K ([`super::avx2::q4k_q8k`]'s float steps, these integer lanes).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn q4k_q8k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: this function has the AVX2 kernel's features and `lanes_*`'s.
    unsafe { super::avx2::q4k_steps(x, y, |a, b, sc| lanes_q4k(a, b, sc)) }
}

/// The 8 integer lanes `Σ sc·q4·q8` of one Q4_K super-block (`sc`: its
/// unpacked scales and mins): low nibbles in the low half, high in the high.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn lanes_q4k(a: &BlockQ4K, b: &BlockQ8K, sc: &[u8; 16]) -> __m256i {
    let s16 = _mm256_cvtepu8_epi16(load_16(sc));
    let m4 = _mm512_set1_epi8(0x0F);
    let shift = halves16(0, 4);
    let mut sumi = _mm512_setzero_si512();
    for c in 0..4 {
        let q = _mm512_and_si512(_mm512_srlv_epi16(bcast(load_u8(&a.qs[32 * c..])), shift), m4);
        let pr = _mm512_maddubs_epi16(q, load64(&b.qs[64 * c..]));
        sumi = _mm512_dpwssd_epi32(sumi, pr, scale_pairs16(s16, c));
    }
    fold(sumi)
}

/// Q5_K ([`super::avx2::q5k_q8k`]'s float steps, these integer lanes).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn q5k_q8k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: this function has the AVX2 kernel's features and `lanes_*`'s.
    unsafe { super::avx2::q5k_steps(x, y, |a, b, sc| lanes_q5k(a, b, sc)) }
}

/// The 8 integer lanes `Σ sc·q5·q8` of one Q5_K super-block: as
/// [`lanes_q4k`], bit `2c` of `qh` the fifth bit of chunk `c`'s low
/// nibbles, bit `2c + 1` of its high ones.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn lanes_q5k(a: &BlockQ5K, b: &BlockQ8K, sc: &[u8; 16]) -> __m256i {
    let s16 = _mm256_cvtepu8_epi16(load_16(sc));
    let (m4, one) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(1));
    let hbits = bcast(load_u8(&a.qh));
    let shift = halves16(0, 4);
    let mut sumi = _mm512_setzero_si512();
    for c in 0..4 {
        let low = _mm512_and_si512(_mm512_srlv_epi16(bcast(load_u8(&a.qs[32 * c..])), shift), m4);
        let fifth = _mm512_and_si512(_mm512_srlv_epi16(hbits, halves16(2 * c as i16, 2 * c as i16 + 1)), one);
        let q = _mm512_or_si512(low, _mm512_slli_epi16::<4>(fifth));
        let pr = _mm512_maddubs_epi16(q, load64(&b.qs[64 * c..]));
        sumi = _mm512_dpwssd_epi32(sumi, pr, scale_pairs16(s16, c));
    }
    fold(sumi)
}

/// Scale `2c` of `s16` (16 i16) in the low 16 i16 lanes, `2c + 1` in the
/// high 16.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx2")]
fn scale_pairs16(s16: __m256i, c: usize) -> __m512i {
    let idx = halves16(2 * c as i16, 2 * c as i16 + 1);
    _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(s16))
}

/// Q6_K ([`super::avx2::q6k_q8k`]'s float steps, these integer lanes).
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub unsafe fn q6k_q8k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: this function has the AVX2 kernel's features and `lanes_*`'s.
    unsafe { super::avx2::q6k_steps(x, y, |a, b| lanes_q6k(a, b)) }
}

/// The 8 integer lanes `Σ sc·(q6−32)·q8` of one Q6_K super-block, the
/// offset taken off as `32·madd(bsums, scales)` (ggml's lanes).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn lanes_q6k(a: &BlockQ6K, b: &BlockQ8K) -> __m256i {
    let (m15, m48) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30));
    let scales = load_16(&a.scales);
    let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(load_i16x16(&b.bsums), _mm256_cvtepi8_epi16(scales)));
    let sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(scales));
    let mut sumi = _mm512_setzero_si512();
    for h in 0..2 {
        // Chunks 0 and 1 (low nibbles of the two 32-byte halves of `ql`,
        // high bits 0–1 and 2–3 of `qh`), then 2 and 3 (high nibbles, high
        // bits 4–5 and 6–7), each pair the 64 activations in order.
        let ql = load64(&a.ql[64 * h..]);
        let hb = bcast(load_u8(&a.qh[32 * h..]));
        let lo =
            _mm512_or_si512(_mm512_and_si512(ql, m15), _mm512_and_si512(_mm512_sllv_epi16(hb, halves16(4, 2)), m48));
        let hi = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m15),
            _mm512_and_si512(_mm512_srlv_epi16(hb, halves16(0, 2)), m48),
        );
        let plo = _mm512_maddubs_epi16(lo, load64(&b.qs[128 * h..]));
        let phi = _mm512_maddubs_epi16(hi, load64(&b.qs[128 * h + 64..]));
        sumi = _mm512_dpwssd_epi32(sumi, plo, scale_quad(sc, 2 * h));
        sumi = _mm512_dpwssd_epi32(sumi, phi, scale_quad(sc, 2 * h + 1));
    }
    _mm256_sub_epi32(fold(sumi), offset)
}
