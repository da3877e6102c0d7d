//! Helpers of the AVX2 kernels. Every function here requires AVX2, FMA and
//! F16C: callers are `#[target_feature(enable = "avx2,fma,f16c")]` kernels
//! reached only after [`Isa::Avx2`](super::simd::Isa::Avx2) was detected.

use half::f16;
use std::arch::x86_64::*;

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn hsum_ps(x: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `a + b·c` with one rounding (what GCC makes of ggml's `a += b * c`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub fn fma_ss(a: f32, b: f32, c: f32) -> f32 {
    _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(b), _mm_set_ss(c), _mm_set_ss(a)))
}

/// Sum of the 8 lanes (wrapping).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn hsum_epi32(x: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// Four f16 values converted at once into lanes 0..4. The bits travel
/// through a general register and `vmovq`, which zeroes the rest of the
/// vector: a lone scalar conversion would let the compiler insert into
/// an arbitrary register, creating a false dependency on it (on the
/// accumulator, in practice, serializing the loop).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16x4_to_f32(a: f16, b: f16, c: f16, d: f16) -> __m128 {
    let bits =
        a.to_bits() as u64 | (b.to_bits() as u64) << 16 | (c.to_bits() as u64) << 32 | (d.to_bits() as u64) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
}

/// `(a·b, c·d)` of four f16 values, as f32 products of the converted values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16_products(a: f16, b: f16, c: f16, d: f16) -> (f32, f32) {
    let v = f16x4_to_f32(a, b, c, d);
    let p = _mm_mul_ps(v, _mm_movehdup_ps(v));
    (_mm_cvtss_f32(p), _mm_cvtss_f32(_mm_movehl_ps(p, p)))
}

/// Two f16 values converted at once (see [`f16x4_to_f32`] for why).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16x2_to_f32(a: f16, b: f16) -> (f32, f32) {
    let bits = a.to_bits() as u32 | (b.to_bits() as u32) << 16;
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// `a·b` of two f16 values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16_product(a: f16, b: f16) -> f32 {
    let bits = a.to_bits() as u32 | (b.to_bits() as u32) << 16;
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
    _mm_cvtss_f32(_mm_mul_ss(v, _mm_movehdup_ps(v)))
}

/// 32 bytes from 16 packed nibbles: low nibbles in bytes 0..16, high
/// nibbles in bytes 16..32 (the legacy blocks' value order).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn nibbles_32(qs: &[u8; 16]) -> __m256i {
    // SAFETY: reads exactly the 16 bytes of `qs`.
    let lo = _mm_loadu_si128(qs.as_ptr() as *const __m128i);
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(lo), lo);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// 32 bytes, byte `j` 0xFF if bit `j` of the little-endian word is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn bits_32(qh: &[u8; 4]) -> __m256i {
    let word = _mm256_set1_epi32(i32::from_le_bytes(*qh));
    // Byte j takes byte j/8 of the word...
    let spread = _mm256_shuffle_epi8(
        word,
        _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
    );
    // ...and tests bit j%8 of it.
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select)
}

/// The first 32 bytes of `p`, unaligned.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn load_u8(p: &[u8]) -> __m256i {
    assert!(p.len() >= 32);
    // SAFETY: `p` has at least 32 bytes (checked above).
    _mm256_loadu_si256(p.as_ptr() as *const __m256i)
}

/// The first 32 bytes of `p`, unaligned.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn load_i8(p: &[i8]) -> __m256i {
    assert!(p.len() >= 32);
    // SAFETY: `p` has at least 32 bytes (checked above).
    _mm256_loadu_si256(p.as_ptr() as *const __m256i)
}

/// 16 i16 values.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn load_i16x16(p: &[i16; 16]) -> __m256i {
    // SAFETY: `p` is exactly 32 bytes.
    _mm256_loadu_si256(p.as_ptr() as *const __m256i)
}

/// 16 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn load_16<T: bytemuck::Pod>(p: &[T; 16]) -> __m128i {
    const { assert!(std::mem::size_of::<T>() == 1) };
    // SAFETY: `p` is 16 one-byte values.
    _mm_loadu_si128(p.as_ptr() as *const __m128i)
}

/// Pairwise sums of `u8 × i8` products, then of adjacent pairs: 8 i32
/// lanes, each the sum of 4 consecutive products. Exact when every pair
/// sum fits in i16 (true for the level ranges of all block types).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// Like [`dot_u8_i8`] for two signed vectors (|x| ≤ 127 expected).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot_i8_i8(x: __m256i, y: __m256i) -> __m256i {
    dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
}

/// The 16 i16 factors of sub-blocks `2p` and `2p+1` of 16 values each:
/// lanes 0..8 hold `scales[2p]`, lanes 8..16 `scales[2p+1]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn scale_pair(scales: __m128i, p: usize) -> __m256i {
    let (a, b) = ((2 * p) as i64, (2 * p + 1) as i64);
    let sel = _mm_set_epi64x(b * 0x0101_0101_0101_0101, a * 0x0101_0101_0101_0101);
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, sel))
}

/// An f16 value converted and broadcast to 8 lanes (the conversion is exact,
/// so this equals `_mm256_set1_ps(d.to_f32())`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16_splat(d: f16) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(d.to_bits() as i16))
}

/// The 32 signed bytes of `q` as f32, in 4 vectors of 8 (values 0..8,
/// 8..16, 16..24, 24..32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn i8x32_to_ps(q: __m256i) -> [__m256; 4] {
    let (lo, hi) = (_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
    [
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(lo))),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(hi))),
    ]
}

/// `d · s_j` for the 16 signed bytes `s_j` of `s`, each product rounded to
/// f32 once (as the scalar `d * s as f32`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn scaled_i8x16(d: __m256, s: __m128i) -> [f32; 16] {
    let lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s));
    let hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(s)));
    let mut out = [0f32; 16];
    store_ps(&mut out[..8], _mm256_mul_ps(d, lo));
    store_ps(&mut out[8..], _mm256_mul_ps(d, hi));
    out
}

/// Store 8 f32 at the start of `dst`, unaligned.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn store_ps(dst: &mut [f32], v: __m256) {
    assert!(dst.len() >= 8);
    // SAFETY: `dst` has at least 8 values (checked above).
    _mm256_storeu_ps(dst.as_mut_ptr(), v)
}

/// `d · q_j` for the 32 signed bytes of `q`, each product rounded once (as
/// the scalar `q as f32 * d`), stored to `dst[..32]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn store_scaled_i8x32(dst: &mut [f32], q: __m256i, d: __m256) {
    assert!(dst.len() >= 32);
    for (k, v) in i8x32_to_ps(q).into_iter().enumerate() {
        store_ps(&mut dst[8 * k..], _mm256_mul_ps(d, v));
    }
}

/// 32 floats from the start of `x`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn load_ps_32(x: &[f32]) -> [__m256; 4] {
    assert!(x.len() >= 32);
    // SAFETY: `x` has at least 32 values (checked above).
    std::array::from_fn(|k| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) })
}

/// The lanes' running maxima of `|v|` into `acc`, NaNs of `v` skipped
/// (`vmaxps` returns its second operand when either is NaN), as the scalar
/// `acc.max(v.abs())` does.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn max_abs(acc: __m256, v: __m256) -> __m256 {
    _mm256_max_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0), v), acc)
}

/// The largest of the 8 lanes (none NaN).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn hmax_ps(x: __m256) -> f32 {
    let s = _mm_max_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_max_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Whether every lane of the 4 registers has `|p| < limit` (false for NaN).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn all_abs_below(p: &[__m256; 4], limit: f32) -> bool {
    let (sign, lim) = (_mm256_set1_ps(-0.0), _mm256_set1_ps(limit));
    let below = |v: __m256| _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(sign, v), lim);
    let all = _mm256_and_ps(_mm256_and_ps(below(p[0]), below(p[1])), _mm256_and_ps(below(p[2]), below(p[3])));
    _mm256_movemask_ps(all) == 0xFF
}

/// `search::nearest_int` of 8 floats (|p| < 2²²): the low mantissa bits of
/// `p + 1.5·2²³`, less 2²².
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn nearest_int_8(p: __m256) -> __m256i {
    let v = _mm256_castps_si256(_mm256_add_ps(p, _mm256_set1_ps(12_582_912.0)));
    _mm256_sub_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x007f_ffff)), _mm256_set1_epi32(0x0040_0000))
}

/// 32 i32 (in the i8 range) packed into 32 i8, in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn pack_i32x32(v: [__m256i; 4]) -> __m256i {
    let q = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Store 32 i8 at the start of `dst`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn store_i8_32(dst: &mut [i8], q: __m256i) {
    assert!(dst.len() >= 32);
    // SAFETY: `dst` has at least 32 bytes (checked above).
    _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, q)
}
