//! AVX2 dot products of TQ1_0 and TQ2_0, in ggml's AVX2 lane layout and
//! float order (`ggml_vec_dot_tq{1,2}_0_q8_K` in ggml-cpu/arch/x86/quants.c):
//! the unsigned codes 0..3 times the activations in 16 i16 lanes (`maddubs`
//! pairs; |sum| ≤ 2·3·128 per pair, no saturation), Q8_K's 16 block sums
//! subtracted lane by lane (which turns `code` into `code − 1` in the
//! total), pairs of lanes into 8 i32 lanes, then per super-block
//! `acc += f32(lanes)·(d_y·d_x)` in 8 float lanes and ggml's horizontal sum.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use crate::quant::blocks::*;
use crate::quant::x86::*;

/// Trit `n` of every byte, where `q` holds `byte·3^n mod 256`: the top two
/// bits of `3·q / 256`, as ggml computes it without 8-bit multiplies
/// (`avg(x, avg(x, 0)) >> 6` of `x = q −₊ 1`, equal to `(3q) >> 8` for every
/// byte).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn trits(q: __m256i) -> __m256i {
    let x = _mm256_subs_epu8(q, _mm256_set1_epi8(1));
    let x = _mm256_avg_epu8(x, _mm256_avg_epu8(x, _mm256_setzero_si256()));
    _mm256_and_si256(_mm256_srli_epi16::<6>(x), _mm256_set1_epi8(3))
}

/// `9·q mod 256` per byte (`(q << 3) & ~7` plus `q`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn times9(q: __m256i) -> __m256i {
    _mm256_add_epi8(_mm256_and_si256(_mm256_slli_epi16::<3>(q), _mm256_set1_epi8(-8)), q)
}

/// `acc + f32(pairs of (sum − bsums))·d`, fused: ggml's source multiplies
/// then adds, and GCC contracts the two into one FMA.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn accumulate(acc: __m256, sum: __m256i, b: &BlockQ8K, dx: half::f16) -> __m256 {
    let lanes = _mm256_madd_epi16(_mm256_sub_epi16(sum, load_i16x16(&b.bsums)), _mm256_set1_epi16(1));
    let d = _mm256_set1_ps(b.d * dx.to_f32());
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), d, acc)
}

/// The 8 vectors of TQ1_0 trits (0..3) of a super-block in value order
/// (vector `k` holds values `32k..32k+32`), decoded as ggml's AVX2 kernel
/// decodes them: each byte times 3^n with 8-bit wrapping (`3q = q+q+q`,
/// `9q = (q << 3 & ~7) + q`), the trit the top of `3·that / 256`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tq1_0_trits(a: &BlockTQ1_0) -> [__m256i; 8] {
    // qs[0..32]: trit n of byte m is value m + 32n.
    let q0 = load_u8(&a.qs[..32]);
    let q1 = _mm256_add_epi8(q0, _mm256_add_epi8(q0, q0));
    let q2 = times9(q0);
    let q3 = times9(q1);
    let q4 = times9(q2);
    // qs[32..48] (values 160 + m + 16n) and qh (values 240 + j + 4n):
    // 16-byte halves paired as (n0 | n1), (n2 | n3), (n4 | qh).
    let r0 = load_16(a.qs[32..48].try_into().unwrap());
    let r1 = _mm_add_epi8(r0, _mm_add_epi8(r0, r0));
    let r01 = _mm256_set_m128i(r1, r0);
    let r23 = times9(r01);
    let r4 = _mm256_castsi256_si128(times9(r23));
    // qh[j]·3^n mod 256 at byte 4n + j (16-bit multiplies, low bytes kept).
    let qh = _mm256_cvtepu8_epi16(_mm_set1_epi32(i32::from_le_bytes(a.qh)));
    let qh = _mm256_mullo_epi16(qh, _mm256_set_epi16(27, 27, 27, 27, 9, 9, 9, 9, 3, 3, 3, 3, 1, 1, 1, 1));
    let qh = _mm256_and_si256(qh, _mm256_set1_epi16(0xFF));
    let r5 = _mm_packus_epi16(_mm256_castsi256_si128(qh), _mm256_extracti128_si256::<1>(qh));
    let r45 = _mm256_set_m128i(r5, r4);
    [q0, q1, q2, q3, q4, r01, r23, r45].map(|q| trits(q))
}

/// The 8 vectors of TQ2_0 codes (0..4) of a super-block in value order
/// (byte `m` of 32-byte group `g` holds values `128g + 32l + m` in bits `2l`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tq2_0_codes(a: &BlockTQ2_0) -> [__m256i; 8] {
    let three = _mm256_set1_epi8(3);
    let (g0, g1) = (load_u8(&a.qs[..32]), load_u8(&a.qs[32..]));
    let c = |v: __m256i| _mm256_and_si256(v, three);
    [
        c(g0),
        c(_mm256_srli_epi16::<2>(g0)),
        c(_mm256_srli_epi16::<4>(g0)),
        c(_mm256_srli_epi16::<6>(g0)),
        c(g1),
        c(_mm256_srli_epi16::<2>(g1)),
        c(_mm256_srli_epi16::<4>(g1)),
        c(_mm256_srli_epi16::<6>(g1)),
    ]
}

/// `Σ_k maddubs(codes_k, q8[32k..32k+32])` in 16 i16 lanes (wrapping adds:
/// the order of ggml's partial sums does not change the lanes).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn lane_sums(codes: [__m256i; 8], b: &BlockQ8K) -> __m256i {
    let mut s = _mm256_setzero_si256();
    for (k, c) in codes.into_iter().enumerate() {
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c, load_i8(&b.qs[32 * k..32 * k + 32])));
    }
    s
}

/// Σ over TQ1_0 super-blocks of `d_x·d_y·Σ (trit − 1)·q8`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tq1_0_q8k(x: &[BlockTQ1_0], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        acc = accumulate(acc, lane_sums(tq1_0_trits(a), b), b, a.d);
    }
    hsum_ps(acc)
}

/// Σ over TQ2_0 super-blocks of `d_x·d_y·Σ (code − 1)·q8`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn tq2_0_q8k(x: &[BlockTQ2_0], y: &[BlockQ8K]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        acc = accumulate(acc, lane_sums(tq2_0_codes(a), b), b, a.d);
    }
    hsum_ps(acc)
}
