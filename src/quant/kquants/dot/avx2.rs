//! AVX2 dot products of the k-quants with Q8_K. Levels are unpacked to
//! unsigned bytes, multiplied with the activations by `maddubs` (16-bit pair
//! sums, which cannot saturate for these level ranges), weighted by the
//! sub-block scales with `madd` into 8 exact i32 lanes per super-block, then
//! converted and scaled in float.
//!
//! The lanes and every float operation follow ggml's AVX2 kernels
//! (`ggml-cpu/arch/x86/quants.c`, as GCC compiles them: scalar `a += b·c`
//! contracted to one FMA), so each result is bit-identical to the dot
//! product llama.cpp's AVX2 build computes (tests/matmul.rs): Q6_K's offset
//! of 32 is taken from the lanes as `32·madd(bsums, scales)`, the minimum
//! terms are accumulated as ggml does per type — Q2_K in the 8 float lanes of
//! the main sum (before it, per super-block), Q4_K in 4 float lanes of their
//! own, Q5_K as one float with FMA — each with `dmin = (−d_y)·dmin_x`.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use crate::quant::blocks::*;

use crate::quant::x86::*;

/// Little-endian u32 words of a 12-byte scale array.
#[inline(always)]
fn words(q: &[u8; 12]) -> [u32; 3] {
    std::array::from_fn(|i| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]))
}

/// The 8 six-bit scales (bytes 0..8) and 8 mins (bytes 8..16) of a
/// Q4_K/Q5_K super-block, unpacked four at a time (the layout of
/// [`crate::quant::kquants::get_scale_min_k4`]): sub-blocks 0..4 keep their
/// scale and min in the low 6 bits of bytes 0..4 and 4..8; sub-blocks 4..8
/// have their low 4 bits in the nibbles of bytes 8..12 and their top 2 bits
/// in the top bits of bytes 0..8.
#[inline(always)]
pub(crate) fn scales_mins_k4(q: &[u8; 12]) -> [u8; 16] {
    const LOW6: u32 = 0x3F3F_3F3F;
    const LOW4: u32 = 0x0F0F_0F0F;
    const LOW2: u32 = 0x0303_0303;
    let [w0, w1, w2] = words(q);
    let sc_lo = w0 & LOW6;
    let sc_hi = (w2 & LOW4) | ((w0 >> 6) & LOW2) << 4;
    let m_lo = w1 & LOW6;
    let m_hi = ((w2 >> 4) & LOW4) | ((w1 >> 6) & LOW2) << 4;
    let mut out = [0u8; 16];
    for (k, w) in [sc_lo, sc_hi, m_lo, m_hi].into_iter().enumerate() {
        out[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// The minimum products of Q4_K/Q5_K in ggml's 4 lanes: lane `i` holds
/// `m_{2i}·s_{2i} + m_{2i+1}·s_{2i+1}` with `s_j = bsum_{2j} + bsum_{2j+1}`,
/// the 8 mins in bytes 8..16 of `sm`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mins_prod4(sm: &[u8; 16], bsums: &[i16; 16]) -> __m128i {
    let mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(load_16(sm), _mm_setzero_si128()));
    let sums = load_i16x16(bsums);
    // Adjacent pairs: bsum_{2j} + bsum_{2j+1} (≤ 2·16·128 in magnitude).
    let pairs = _mm_hadd_epi16(_mm256_castsi256_si128(sums), _mm256_extracti128_si256::<1>(sums));
    _mm_madd_epi16(mins, pairs)
}

/// The 16 signed scales (-32..31) of a Q3_K super-block (the layout of
/// [`crate::quant::kquants::q3k::get_scale`]): low 4 bits in the nibbles of bytes 0..8 (sub-blocks
/// 0..8 low nibbles, 8..16 high), top 2 bits in bytes 8..12, two bits per
/// sub-block group of four.
#[inline(always)]
pub(crate) fn scales_q3k(q: &[u8; 12]) -> [u8; 16] {
    const LOW4: u32 = 0x0F0F_0F0F;
    const LOW2: u32 = 0x0303_0303;
    let [w0, w1, w2] = words(q);
    let mut out = [0u8; 16];
    let low = [w0 & LOW4, w1 & LOW4, (w0 >> 4) & LOW4, (w1 >> 4) & LOW4];
    for (k, l) in low.into_iter().enumerate() {
        let w = l | ((w2 >> (2 * k)) & LOW2) << 4;
        out[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// 2-bit field `shift/2` of every byte.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn crumbs(bits: __m256i, shift: i32) -> __m256i {
    _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(3))
}

/// Σ over super-blocks of `d_y·(d_x·Σ_j sc_j·Σ q2·q8 − dmin_x·Σ_j m_j·bsum_j)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q2k_q8k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: this function's features are `q2k_steps`'s.
    unsafe { q2k_steps(x, y, |a, b, scales| lanes_q2k(a, b, scales)) }
}

/// [`q2k_q8k`]'s float steps (ggml's) around the integer lanes
/// `lanes(a, b, scales)` of each super-block: [`lanes_q2k`] or the AVX-512
/// VNNI kernel's.
///
/// # Safety
/// Only for callers with AVX2, FMA and F16C enabled (and what `lanes`
/// needs): it is inlined into them.
#[inline(always)]
pub(super) unsafe fn q2k_steps(
    x: &[BlockQ2K],
    y: &[BlockQ8K],
    lanes: impl Fn(&BlockQ2K, &BlockQ8K, __m128i) -> __m256i,
) -> f32 {
    // SAFETY: the caller has AVX2, FMA and F16C enabled.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let m4 = _mm_set1_epi8(0x0F);
        for (a, b) in x.iter().zip(y) {
            let raw = load_16(&a.scales);
            let scales = _mm_and_si128(raw, m4);
            let mins = _mm_and_si128(_mm_srli_epi16::<4>(raw), m4);
            let (xd, xmin) = f16x2_to_f32(a.d, a.dmin);
            let (d, dmin) = (b.d * xd, -b.d * xmin);
            // The minimum products first, in the same lanes (ggml's order).
            let prod = _mm256_madd_epi16(_mm256_cvtepu8_epi16(mins), load_i16x16(&b.bsums));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes(a, b, scales)), acc);
        }
        hsum_ps(acc)
    }
}

/// The 8 integer lanes `Σ sc·q2·q8` of one Q2_K super-block (`scales`: its
/// 16 four-bit scales).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes_q2k(a: &BlockQ2K, b: &BlockQ8K, scales: __m128i) -> __m256i {
    let mut sumi = _mm256_setzero_si256();
    for h in 0..2 {
        let bits = load_u8(&a.qs[32 * h..]);
        for s in 0..4 {
            let q = crumbs(bits, 2 * s as i32);
            let p = _mm256_maddubs_epi16(q, load_i8(&b.qs[128 * h + 32 * s..]));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale_pair(scales, 4 * h + s), p));
        }
    }
    sumi
}

/// Σ over super-blocks of `d_x·d_y·Σ_j sc_j·Σ q3·q8`, `q3 = low2 − 4·(1 − high)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q3k_q8k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let four = _mm256_set1_epi8(4);
    // SAFETY: this function's features are `q3k_steps`'s.
    unsafe { q3k_steps(x, y, |a, b| lanes_q3k(a, b, four)) }
}

/// [`q3k_q8k`]'s float steps around the integer lanes `lanes(a, b)`.
///
/// # Safety
/// Only for callers with AVX2, FMA and F16C enabled (and what `lanes`
/// needs): it is inlined into them.
#[inline(always)]
pub(super) unsafe fn q3k_steps(x: &[BlockQ3K], y: &[BlockQ8K], lanes: impl Fn(&BlockQ3K, &BlockQ8K) -> __m256i) -> f32 {
    // SAFETY: the caller has AVX2, FMA and F16C enabled.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (a, b) in x.iter().zip(y) {
            let sumi = lanes(a, b);
            let d = b.d * f16x2_to_f32(a.d, a.d).0;
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum_ps(acc)
    }
}

/// The 8 integer lanes `Σ sc·q3·q8` of one Q3_K super-block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes_q3k(a: &BlockQ3K, b: &BlockQ8K, four: __m256i) -> __m256i {
    let scales = _mm_sub_epi8(load_16(&scales_q3k(&a.scales)), _mm_set1_epi8(32));
    let hmask = load_u8(&a.hmask);
    let mut sumi = _mm256_setzero_si256();
    for h in 0..2 {
        let bits = load_u8(&a.qs[32 * h..]);
        for s in 0..4 {
            let low = crumbs(bits, 2 * s as i32);
            let bit = _mm256_set1_epi8((1u8 << (4 * h + s)) as i8);
            // 4 where the high bit is clear: subtracted from the low part.
            let clear = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), _mm256_setzero_si256());
            let minus = _mm256_and_si256(clear, four);
            let q8 = load_i8(&b.qs[128 * h + 32 * s..]);
            let p = _mm256_sub_epi16(_mm256_maddubs_epi16(low, q8), _mm256_maddubs_epi16(minus, q8));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale_pair(scales, 4 * h + s), p));
        }
    }
    sumi
}

/// Σ over super-blocks of `d_y·(d_x·Σ_j sc_j·Σ q4·q8 − dmin_x·Σ_j m_j·bsum_j)`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4k_q8k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    // SAFETY: this function's features are `q4k_steps`'s.
    unsafe { q4k_steps(x, y, |a, b, sc| lanes_q4k(a, b, sc, m4)) }
}

/// [`q4k_q8k`]'s float steps around the integer lanes `lanes(a, b, sc)`
/// (`sc`: the unpacked scales and mins).
///
/// # Safety
/// Only for callers with AVX2, FMA and F16C enabled (and what `lanes`
/// needs): it is inlined into them.
#[inline(always)]
pub(super) unsafe fn q4k_steps(
    x: &[BlockQ4K],
    y: &[BlockQ8K],
    lanes: impl Fn(&BlockQ4K, &BlockQ8K, &[u8; 16]) -> __m256i,
) -> f32 {
    // SAFETY: the caller has AVX2, FMA and F16C enabled.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for (a, b) in x.iter().zip(y) {
            let sc = scales_mins_k4(&a.scales);
            let (xd, xmin) = f16x2_to_f32(a.d, a.dmin);
            let (d, dmin) = (b.d * xd, -b.d * xmin);
            acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins_prod4(&sc, &b.bsums)), acc_m);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes(a, b, &sc)), acc);
        }
        let m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
        hsum_ps(acc) + _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)))
    }
}

/// The first 8 bytes of `sc` (Q4_K/Q5_K's sub-block scales) as i16, in
/// both 128-bit halves, for [`scale_i16`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scales_i16(sc: &[u8; 16]) -> __m256i {
    _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(load_16(sc)))
}

/// Scale `j` (0..8) of [`scales_i16`] in all 16 i16 lanes: one byte
/// shuffle instead of moving the byte through a general register.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_i16(scales: __m256i, j: usize) -> __m256i {
    let k = 2 * j as i16;
    _mm256_shuffle_epi8(scales, _mm256_set1_epi16(((k + 1) << 8) | k))
}

/// The 8 integer lanes `Σ sc·q4·q8` of one Q4_K super-block (`sc`: its
/// unpacked scales and mins).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes_q4k(a: &BlockQ4K, b: &BlockQ8K, sc: &[u8; 16], m4: __m256i) -> __m256i {
    let scales = scales_i16(sc);
    let mut sumi = _mm256_setzero_si256();
    for c in 0..4 {
        let bits = load_u8(&a.qs[32 * c..]);
        let lo = _mm256_and_si256(bits, m4);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
        let pl = _mm256_maddubs_epi16(lo, load_i8(&b.qs[64 * c..]));
        let ph = _mm256_maddubs_epi16(hi, load_i8(&b.qs[64 * c + 32..]));
        let pl = _mm256_madd_epi16(scale_i16(scales, 2 * c), pl);
        let ph = _mm256_madd_epi16(scale_i16(scales, 2 * c + 1), ph);
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    sumi
}

/// As [`q4k_q8k`] with the fifth bit of each level from `qh`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5k_q8k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    let one = _mm256_set1_epi8(1);
    // SAFETY: this function's features are `q5k_steps`'s.
    unsafe { q5k_steps(x, y, |a, b, sc| lanes_q5k(a, b, sc, m4, one)) }
}

/// [`q5k_q8k`]'s float steps around the integer lanes `lanes(a, b, sc)`.
///
/// # Safety
/// Only for callers with AVX2, FMA and F16C enabled (and what `lanes`
/// needs): it is inlined into them.
#[inline(always)]
pub(super) unsafe fn q5k_steps(
    x: &[BlockQ5K],
    y: &[BlockQ8K],
    lanes: impl Fn(&BlockQ5K, &BlockQ8K, &[u8; 16]) -> __m256i,
) -> f32 {
    // SAFETY: the caller has AVX2, FMA and F16C enabled.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        for (a, b) in x.iter().zip(y) {
            let sc = scales_mins_k4(&a.scales);
            let (xd, xmin) = f16x2_to_f32(a.d, a.dmin);
            let (d, dmin) = (b.d * xd, -b.d * xmin);
            let p = mins_prod4(&sc, &b.bsums);
            let p = _mm_add_epi32(p, _mm_unpackhi_epi64(p, p));
            let m = _mm_cvtsi128_si32(_mm_add_epi32(p, _mm_shuffle_epi32::<0b01>(p)));
            summs = fma_ss(summs, dmin, m as f32);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes(a, b, &sc)), acc);
        }
        hsum_ps(acc) + summs
    }
}

/// The 8 integer lanes `Σ sc·q5·q8` of one Q5_K super-block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes_q5k(a: &BlockQ5K, b: &BlockQ8K, sc: &[u8; 16], m4: __m256i, one: __m256i) -> __m256i {
    let hbits = load_u8(&a.qh);
    let scales = scales_i16(sc);
    let mut sumi = _mm256_setzero_si256();
    for c in 0..4 {
        let bits = load_u8(&a.qs[32 * c..]);
        // Bit 2c of qh is the fifth bit of the low nibbles, 2c+1 of the high.
        let h_lo = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c as i32)), one);
        let h_hi = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c as i32 + 1)), one);
        let lo = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_slli_epi16::<4>(h_lo));
        let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4), _mm256_slli_epi16::<4>(h_hi));
        let pl = _mm256_maddubs_epi16(lo, load_i8(&b.qs[64 * c..]));
        let ph = _mm256_maddubs_epi16(hi, load_i8(&b.qs[64 * c + 32..]));
        let pl = _mm256_madd_epi16(scale_i16(scales, 2 * c), pl);
        let ph = _mm256_madd_epi16(scale_i16(scales, 2 * c + 1), ph);
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    sumi
}

/// Σ over super-blocks of `d_x·d_y·Σ_j sc_j·Σ (q6−32)·q8`, computed as
/// `Σ_j sc_j·Σ q6·q8 − 32·Σ_j sc_j·bsum_j` with unsigned `q6`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6k_q8k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    // SAFETY: this function's features are `q6k_steps`'s.
    unsafe { q6k_steps(x, y, |a, b| lanes_q6k(a, b)) }
}

/// [`q6k_q8k`]'s float steps around the integer lanes `lanes(a, b)`.
///
/// # Safety
/// Only for callers with AVX2, FMA and F16C enabled (and what `lanes`
/// needs): it is inlined into them.
#[inline(always)]
pub(super) unsafe fn q6k_steps(x: &[BlockQ6K], y: &[BlockQ8K], lanes: impl Fn(&BlockQ6K, &BlockQ8K) -> __m256i) -> f32 {
    // SAFETY: the caller has AVX2, FMA and F16C enabled.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (a, b) in x.iter().zip(y) {
            let d = b.d * f16x2_to_f32(a.d, a.d).0;
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes(a, b)), acc);
        }
        hsum_ps(acc)
    }
}

/// The 8 integer lanes `Σ sc·(q6−32)·q8` of one Q6_K super-block, the offset
/// taken off as `32·madd(bsums, scales)` (ggml's lanes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lanes_q6k(a: &BlockQ6K, b: &BlockQ8K) -> __m256i {
    let m15 = _mm256_set1_epi8(0x0F);
    let m3 = _mm256_set1_epi8(0x03);
    let m12 = _mm256_set1_epi8(0x0C);
    let m48 = _mm256_set1_epi8(0x30);
    let m192 = _mm256_set1_epi8(0xC0u8 as i8);
    let scales = load_16(&a.scales);
    let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(load_i16x16(&b.bsums), _mm256_cvtepi8_epi16(scales)));
    let mut sumi = _mm256_setzero_si256();
    for h in 0..2 {
        let b1 = load_u8(&a.ql[64 * h..]);
        let b2 = load_u8(&a.ql[64 * h + 32..]);
        let hb = load_u8(&a.qh[32 * h..]);
        let q = [
            _mm256_or_si256(_mm256_and_si256(b1, m15), _mm256_slli_epi16::<4>(_mm256_and_si256(hb, m3))),
            _mm256_or_si256(_mm256_and_si256(b2, m15), _mm256_slli_epi16::<2>(_mm256_and_si256(hb, m12))),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b1), m15), _mm256_and_si256(hb, m48)),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(b2), m15),
                _mm256_srli_epi16::<2>(_mm256_and_si256(hb, m192)),
            ),
        ];
        for (s, qs) in q.into_iter().enumerate() {
            let p = _mm256_maddubs_epi16(qs, load_i8(&b.qs[128 * h + 32 * s..]));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale_pair(scales, 4 * h + s), p));
        }
    }
    _mm256_sub_epi32(sumi, offset)
}

// ---- ggml's tiled prompt-GEMM arithmetic (see `super::scalar::batch_step`) ----

/// `super::scalar::batch_step` with FMA instructions.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn batch_step(acc: f32, d: f32, dmin: Option<f32>, s1: i32, s2: i32, d_y: f32) -> f32 {
    let mut res = d * s1 as f32;
    if let Some(m) = dmin {
        res = fma_ss(res, -m, s2 as f32);
    }
    fma_ss(acc, res, d_y)
}

/// ggml's tiled-GEMM Q2_K dot product (`super::scalar::q2k_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q2k_batch(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm_set1_epi8(0x0F);
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let raw = load_16(&a.scales);
        let scales = _mm_and_si128(raw, m4);
        let mins = _mm_and_si128(_mm_srli_epi16::<4>(raw), m4);
        let s2 = hsum_epi32(_mm256_madd_epi16(_mm256_cvtepu8_epi16(mins), load_i16x16(&b.bsums)));
        let s1 = hsum_epi32(lanes_q2k(a, b, scales));
        let (d, dmin) = f16x2_to_f32(a.d, a.dmin);
        batch_step(acc, d, Some(dmin), s1, s2, b.d)
    })
}

/// ggml's tiled-GEMM Q3_K dot product (`super::scalar::q3k_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q3k_batch(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let four = _mm256_set1_epi8(4);
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let s1 = hsum_epi32(lanes_q3k(a, b, four));
        batch_step(acc, f16x2_to_f32(a.d, a.d).0, None, s1, 0, b.d)
    })
}

/// `Σ_j m_j·(bsum_{2j} + bsum_{2j+1})` of Q4_K/Q5_K.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mins_total(sm: &[u8; 16], bsums: &[i16; 16]) -> i32 {
    let p = mins_prod4(sm, bsums);
    let p = _mm_add_epi32(p, _mm_unpackhi_epi64(p, p));
    _mm_cvtsi128_si32(_mm_add_epi32(p, _mm_shuffle_epi32::<0b01>(p)))
}

/// ggml's tiled-GEMM Q4_K dot product (`super::scalar::q4k_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4k_batch(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let sc = scales_mins_k4(&a.scales);
        let (s1, s2) = (hsum_epi32(lanes_q4k(a, b, &sc, m4)), mins_total(&sc, &b.bsums));
        let (d, dmin) = f16x2_to_f32(a.d, a.dmin);
        batch_step(acc, d, Some(dmin), s1, s2, b.d)
    })
}

/// ggml's tiled-GEMM Q5_K dot product (`super::scalar::q5k_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q5k_batch(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    let (m4, one) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(1));
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let sc = scales_mins_k4(&a.scales);
        let (s1, s2) = (hsum_epi32(lanes_q5k(a, b, &sc, m4, one)), mins_total(&sc, &b.bsums));
        let (d, dmin) = f16x2_to_f32(a.d, a.dmin);
        batch_step(acc, d, Some(dmin), s1, s2, b.d)
    })
}

/// ggml's tiled-GEMM Q6_K dot product (`super::scalar::q6k_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q6k_batch(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    x.iter()
        .zip(y)
        .fold(0.0, |acc, (a, b)| batch_step(acc, f16x2_to_f32(a.d, a.d).0, None, hsum_epi32(lanes_q6k(a, b)), 0, b.d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kquants::{get_scale_min_k4, q3k};

    #[test]
    fn scale_unpacking_matches_the_scalar_accessors() {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..2000 {
            let q: [u8; 12] = std::array::from_fn(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            });
            let k4 = scales_mins_k4(&q);
            for j in 0..8 {
                assert_eq!((k4[j], k4[8 + j]), get_scale_min_k4(j, &q), "{q:?} j {j}");
            }
            let k3 = scales_q3k(&q);
            for j in 0..16 {
                assert_eq!(k3[j] as i32 - 32, q3k::get_scale(j, &q), "{q:?} j {j}");
            }
        }
    }
}
