//! AVX2 dot products of IQ4_NL and IQ4_XS, in the float order of ggml's
//! AVX2 kernels (`ggml_vec_dot_iq4_nl_q8_0`, `ggml_vec_dot_iq4_xs_q8_K` in
//! ggml-cpu/arch/x86/quants.c). The 4-bit indices become table levels with
//! one `pshufb` per 16 bytes; `|level| ≤ 127` and `|q8| ≤ 128`, so the
//! 16-bit pair sums of `maddubs` (≤ 2·127·128) cannot saturate and every
//! integer sum is exact.
//!
//! IQ3_XXS and IQ3_S (`ggml_vec_dot_iq3_xxs_q8_K`, `ggml_vec_dot_iq3_s_q8_K`):
//! the 8 grid entries of a sub-block gathered into one vector of unsigned
//! magnitudes, the signs moved onto the activations, the same `maddubs` /
//! `madd` by the sub-block scale.
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

/// The 8 grid entries (4 magnitudes each) of an IQ3 sub-block, entry `k` in
/// i32 lane `k`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn entries(e: impl Fn(usize) -> u32) -> __m256i {
    _mm256_setr_epi32(
        e(0) as i32,
        e(1) as i32,
        e(2) as i32,
        e(3) as i32,
        e(4) as i32,
        e(5) as i32,
        e(6) as i32,
        e(7) as i32,
    )
}

/// 0xFF in byte `i` where bit `i` of `signs` is set, else 0 (ggml's
/// IQ3_S sign expansion: each sign byte broadcast to 8 bytes, one bit
/// tested per byte).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn sign_mask(signs: u32) -> __m256i {
    let spread = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(signs as i32), spread), bits);
    _mm256_cmpeq_epi8(v, bits)
}

/// `q8` negated (wrapping, as ggml's `sign_epi8` / `xor`-`sub`) where
/// `mask` is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn apply_signs(q8: __m256i, mask: __m256i) -> __m256i {
    _mm256_sub_epi8(_mm256_xor_si256(q8, mask), mask)
}

/// The 8 i32 lanes `ls·Σ level·sign·q8` of one IQ3 sub-block: lane `k`
/// holds grid entry `k`'s 4 products (maddubs of the unsigned magnitudes
/// ≤ 62 with the signed activations cannot saturate).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3_lanes(grid: __m256i, signs: u32, q8: &[i8], ls: i32) -> __m256i {
    let q8s = apply_signs(load_i8(q8), sign_mask(signs));
    _mm256_madd_epi16(_mm256_maddubs_epi16(grid, q8s), _mm256_set1_epi16(ls as i16))
}

/// The 8 lanes of an IQ3_XXS super-block's scaled sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3xxs_lanes(a: &BlockIQ3XXS, b: &BlockQ8K) -> __m256i {
    use crate::quant::iquants::iq3xxs::{aux, entry, signs};
    let (mut sumi1, mut sumi2) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for ib in (0..8).step_by(2) {
        let ls = |ib| 2 * (aux(a, ib) >> 28) as i32 + 1;
        let p1 = iq3_lanes(entries(|k| entry(a, ib, k)), signs(a, ib), &b.qs[32 * ib..], ls(ib));
        let p2 = iq3_lanes(entries(|k| entry(a, ib + 1, k)), signs(a, ib + 1), &b.qs[32 * ib + 32..], ls(ib + 1));
        sumi1 = _mm256_add_epi32(sumi1, p1);
        sumi2 = _mm256_add_epi32(sumi2, p2);
    }
    _mm256_add_epi32(sumi1, sumi2)
}

/// The grid indices of an IQ3_S super-block's 64 entries times `2^S`
/// (byte offsets into a grid of `2^S`-byte entries), formed 16 at a time:
/// `(qs | qh bit << 8) << S`.
///
/// # Safety
/// The CPU must support AVX2; `S ≤ 6` (the offsets fit 16 bits).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn iq3s_offsets<const S: i32>(b: &BlockIQ3S) -> [u16; 64] {
    let mut o = [0u16; 64];
    // The qh bit of entry k of its sub-block (bit k), times 2^(8+S) >> k.
    let bits = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    let m: [i16; 16] = std::array::from_fn(|i| ((1 << (8 + S)) >> (i % 8)) as i16);
    // SAFETY: `m` is 32 bytes.
    let mult = unsafe { _mm256_loadu_si256(m.as_ptr().cast()) };
    for h in 0..4 {
        // SAFETY: `qs[16h..16h + 16]` is in bounds (64 bytes).
        let q = _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(b.qs[16 * h..].as_ptr() as *const __m128i) });
        let hb = _mm256_set_m128i(_mm_set1_epi16(b.qh[2 * h + 1] as i16), _mm_set1_epi16(b.qh[2 * h] as i16));
        let hi = _mm256_mullo_epi16(_mm256_and_si256(hb, bits), mult);
        let off = _mm256_or_si256(_mm256_slli_epi16::<S>(q), hi);
        // SAFETY: `o[16h..16h + 16]` is 32 bytes in bounds.
        unsafe { _mm256_storeu_si256(o[16 * h..].as_mut_ptr() as *mut __m256i, off) };
    }
    o
}

/// The 8 lanes of an IQ3_S super-block's scaled sums: the grid entries
/// read at byte offsets formed in a vector ([`iq3s_offsets`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3s_lanes(a: &BlockIQ3S, b: &BlockQ8K) -> __m256i {
    use crate::quant::iquants::iq3_tables::IQ3S_GRID;
    use crate::quant::iquants::iq3s::{scale, signs};
    // 4-byte entries.
    let o = iq3s_offsets::<2>(a);
    let grid = IQ3S_GRID.as_ptr().cast::<u8>();
    // SAFETY: every offset is 4 times an index below 512, the grid's length.
    let entry = |ib: usize, k: usize| unsafe { grid.add(o[8 * ib + k] as usize).cast::<u32>().read() };
    let (mut sumi1, mut sumi2) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for ib in (0..8).step_by(2) {
        let p1 = iq3_lanes(entries(|k| entry(ib, k)), signs(a, ib), &b.qs[32 * ib..], scale(a, ib));
        let p2 = iq3_lanes(entries(|k| entry(ib + 1, k)), signs(a, ib + 1), &b.qs[32 * ib + 32..], scale(a, ib + 1));
        sumi1 = _mm256_add_epi32(sumi1, p1);
        sumi2 = _mm256_add_epi32(sumi2, p2);
    }
    _mm256_add_epi32(sumi1, sumi2)
}

/// ggml's AVX2 `ggml_vec_dot_iq3_xxs_q8_K`: per super-block the 8 lanes of
/// scaled integer sums multiply-added into 8 float lanes with `d_x·d_y`,
/// summed at the end and times 0.25.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3xxs_q8k(x: &[BlockIQ3XXS], y: &[BlockQ8K]) -> f32 {
    0.25 * grid_steps(x, y, |a| a.d.to_f32(), |a, b| iq3xxs_lanes(a, b))
}

/// ggml's AVX2 `ggml_vec_dot_iq3_s_q8_K` (as [`iq3xxs_q8k`], no 0.25).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3s_q8k(x: &[BlockIQ3S], y: &[BlockQ8K]) -> f32 {
    grid_steps(x, y, |a| a.d.to_f32(), |a, b| iq3s_lanes(a, b))
}

/// ggml's AVX2 float steps of the grid products (IQ3, IQ2): per
/// super-block its 8 integer lanes converted and multiply-added into 8 float
/// lanes with `d_x·d_y`, summed at the end (before the type's constant
/// factor).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn grid_steps<B>(
    x: &[B],
    y: &[BlockQ8K],
    d: impl Fn(&B) -> f32,
    lanes: impl Fn(&B, &BlockQ8K) -> __m256i,
) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (a, b) in x.iter().zip(y) {
        let d = _mm256_set1_ps(d(a) * b.d);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(lanes(a, b)), acc);
    }
    hsum_ps(acc)
}

/// ggml's tiled-GEMM IQ3_XXS product (`super::scalar::iq3xxs_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3xxs_batch(x: &[BlockIQ3XXS], y: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let res = a.d.to_f32() * 0.25 * hsum_epi32(iq3xxs_lanes(a, b)) as f32;
        acc = fma_ss(acc, res, b.d);
    }
    acc
}

/// ggml's tiled-GEMM IQ3_S product (`super::scalar::iq3s_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3s_batch(x: &[BlockIQ3S], y: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let res = a.d.to_f32() * hsum_epi32(iq3s_lanes(a, b)) as f32;
        acc = fma_ss(acc, res, b.d);
    }
    acc
}

/// The 8 i32 lanes of a 2-bit grid super-block's scaled sums (IQ2_XXS,
/// IQ2_XS, IQ2_S): per 32 values the 4 grid entries (8 magnitudes each),
/// signs on the activations, lanes 0..4 scaled by the first 16 values'
/// scale and lanes 4..8 by the second's, as ggml's
/// `ggml_vec_dot_iq2_{xxs,xs,s}_q8_K` (exact integers).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_lanes(
    entry: impl Fn(usize, usize) -> u64,
    signs: impl Fn(usize) -> u32,
    scale: impl Fn(usize) -> i32,
    b: &BlockQ8K,
) -> __m256i {
    let lanes = |ib32: usize| {
        let g = |l: usize| entry(ib32, l) as i64;
        let grid = _mm256_setr_epi64x(g(0), g(1), g(2), g(3));
        let q8s = apply_signs(load_i8(&b.qs[32 * ib32..]), sign_mask(signs(ib32)));
        let (s0, s1) = (scale(2 * ib32) as i16, scale(2 * ib32 + 1) as i16);
        let sc = _mm256_setr_epi16(s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1);
        _mm256_madd_epi16(_mm256_maddubs_epi16(grid, q8s), sc)
    };
    let (mut sumi1, mut sumi2) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for ib32 in (0..8).step_by(2) {
        sumi1 = _mm256_add_epi32(sumi1, lanes(ib32));
        sumi2 = _mm256_add_epi32(sumi2, lanes(ib32 + 1));
    }
    _mm256_add_epi32(sumi1, sumi2)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2s_lanes(a: &BlockIQ2S, b: &BlockQ8K) -> __m256i {
    use crate::quant::iquants::iq2s::{entry, scale, signs};
    iq2_lanes(|ib32, l| entry(a, 4 * ib32 + l), |ib32| signs(a, ib32), |i| scale(a, i), b)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2xs_lanes(a: &BlockIQ2XS, b: &BlockQ8K) -> __m256i {
    use crate::quant::iquants::iq2xs::{entry, scale, signs};
    iq2_lanes(|ib32, l| entry(a, 4 * ib32 + l), |ib32| signs(a, ib32), |i| scale(a, i), b)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2xxs_lanes(a: &BlockIQ2XXS, b: &BlockQ8K) -> __m256i {
    use crate::quant::iquants::iq2xxs::{entry, scale, signs};
    iq2_lanes(|ib32, l| entry(a, ib32, l), |ib32| signs(a, ib32), |i| scale(a, i / 2), b)
}

/// ggml's AVX2 2-bit grid products: the lanes multiply-added into 8 float
/// lanes with `d_x·d_y`, summed at the end and times 0.125.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_q8k<B>(x: &[B], y: &[BlockQ8K], d: impl Fn(&B) -> f32, lanes: impl Fn(&B, &BlockQ8K) -> __m256i) -> f32 {
    0.125 * grid_steps(x, y, d, lanes)
}

/// ggml's tiled-GEMM 2-bit grid products (`super::scalar::iq2s_batch`).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_batch<B>(
    x: &[B],
    y: &[BlockQ8K],
    d: impl Fn(&B) -> f32,
    lanes: impl Fn(&B, &BlockQ8K) -> __m256i,
) -> f32 {
    let mut acc = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let res = d(a) * 0.125 * hsum_epi32(lanes(a, b)) as f32;
        acc = fma_ss(acc, res, b.d);
    }
    acc
}

/// ggml's AVX2 `ggml_vec_dot_iq2_s_q8_K`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2s_q8k(x: &[BlockIQ2S], y: &[BlockQ8K]) -> f32 {
    iq2_q8k(x, y, |a| a.d.to_f32(), |a, b| iq2s_lanes(a, b))
}

/// ggml's tiled-GEMM IQ2_S product (`super::scalar::iq2s_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2s_batch(x: &[BlockIQ2S], y: &[BlockQ8K]) -> f32 {
    iq2_batch(x, y, |a| a.d.to_f32(), |a, b| iq2s_lanes(a, b))
}

/// ggml's AVX2 `ggml_vec_dot_iq2_xs_q8_K`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xs_q8k(x: &[BlockIQ2XS], y: &[BlockQ8K]) -> f32 {
    iq2_q8k(x, y, |a| a.d.to_f32(), |a, b| iq2xs_lanes(a, b))
}

/// ggml's tiled-GEMM IQ2_XS product (`super::scalar::iq2xs_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xs_batch(x: &[BlockIQ2XS], y: &[BlockQ8K]) -> f32 {
    iq2_batch(x, y, |a| a.d.to_f32(), |a, b| iq2xs_lanes(a, b))
}

/// ggml's AVX2 `ggml_vec_dot_iq2_xxs_q8_K`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xxs_q8k(x: &[BlockIQ2XXS], y: &[BlockQ8K]) -> f32 {
    iq2_q8k(x, y, |a| a.d.to_f32(), |a, b| iq2xxs_lanes(a, b))
}

/// ggml's tiled-GEMM IQ2_XXS product (`super::scalar::iq2xxs_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xxs_batch(x: &[BlockIQ2XXS], y: &[BlockQ8K]) -> f32 {
    iq2_batch(x, y, |a| a.d.to_f32(), |a, b| iq2xxs_lanes(a, b))
}

/// The 4 grid entries of 32 values (8 levels −1, 0, 1 each), entry `k`
/// in i64 lane `k`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn iq1_grid(e: impl Fn(usize) -> u64) -> __m256i {
    _mm256_setr_epi64x(e(0) as i64, e(1) as i64, e(2) as i64, e(3) as i64)
}

/// `ls·Σ level·q8` in 8 i32 lanes of 4 values each, `ls` per i16 pair
/// (ggml's `mul_add_epi8` then `madd` by the scales).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq1_lanes(grid: __m256i, q8: __m256i, ls: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(grid, grid), _mm256_sign_epi8(q8, grid)), ls)
}

/// ggml's AVX2 `ggml_vec_dot_iq1_s_q8_K`: per super-block the 8 lanes of
/// `Σ_ib (2·ls+1)·Σ level·q8` multiply-added into 8 float lanes with
/// `d_x·d_y`, and the shift sums `Σ_ib (2·ls+1)·±Σ q8` (from `bsums`) into
/// one float with a fused multiply-add (GCC contracts ggml's
/// `accum1 += d * sumi1`); then `hsum + IQ1S_DELTA·accum1`, fused as well.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq1s_q8k(x: &[BlockIQ1S], y: &[BlockQ8K]) -> f32 {
    use crate::quant::iquants::iq1s::{entry, negative_shift, scale};
    let mut accum = _mm256_setzero_ps();
    let mut accum1 = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sumi = _mm256_setzero_si256();
        let mut sumi1 = 0i32;
        for ib in 0..8 {
            let ls = scale(a, ib);
            let grid = iq1_grid(|k| entry(a, ib, k));
            sumi = _mm256_add_epi32(sumi, iq1_lanes(grid, load_i8(&b.qs[32 * ib..]), _mm256_set1_epi16(ls as i16)));
            let s = b.bsums[2 * ib] as i32 + b.bsums[2 * ib + 1] as i32;
            sumi1 += if negative_shift(a, ib) { -s } else { s } * ls;
        }
        let d = b.d * a.d.to_f32();
        accum = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), accum);
        accum1 = fma_ss(accum1, d, sumi1 as f32);
    }
    fma_ss(hsum_ps(accum), crate::quant::iquants::iq1::IQ1S_DELTA, accum1)
}

/// ggml's AVX2 `ggml_vec_dot_iq1_m_q8_K`: per super-block two sets of 8
/// i32 lanes, `(2·ls+1)·Σ level·q8` and `(2·ls+1)·Σ ±q8` (the shift signs
/// per group of 8), each multiply-added into 8 float lanes with
/// `d_x·d_y`; then `hsum₁ + IQ1M_DELTA·hsum₂`, fused.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq1m_q8k(x: &[BlockIQ1M], y: &[BlockQ8K]) -> f32 {
    use crate::quant::iquants::iq1m::{entry, negative_shift, scale, scale_words, super_scale};
    let ones = _mm256_set1_epi8(1);
    let (mut accum1, mut accum2) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for (a, b) in x.iter().zip(y) {
        let sc = scale_words(a);
        let (mut sumi1, mut sumi2) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for ib in 0..8 {
            let grid = iq1_grid(|k| entry(a, 4 * ib + k));
            let delta = iq1_grid(|k| if negative_shift(a, 4 * ib + k) { u64::MAX } else { 0x0101_0101_0101_0101 });
            let (s0, s1) = (scale(&sc, 2 * ib) as i16, scale(&sc, 2 * ib + 1) as i16);
            let ls = _mm256_setr_epi16(s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1);
            let q8 = load_i8(&b.qs[32 * ib..]);
            sumi1 = _mm256_add_epi32(sumi1, iq1_lanes(grid, q8, ls));
            let shifts = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, _mm256_sign_epi8(q8, delta)), ls);
            sumi2 = _mm256_add_epi32(sumi2, shifts);
        }
        let d = _mm256_set1_ps(b.d * super_scale(&sc).to_f32());
        accum1 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi1), accum1);
        accum2 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi2), accum2);
    }
    fma_ss(hsum_ps(accum1), crate::quant::iquants::iq1::IQ1M_DELTA, hsum_ps(accum2))
}

/// The exact `Σ ls·Σ (8·level + δ)·q8` of one super-block as ggml's tiled
/// GEMM forms it: the codes `8·level ± 1` signed, the activations biased to
/// unsigned (`q8 + 128`), `maddubs` (pair sums ≤ 2·255·9, no saturation)
/// and `madd` by the scales, less `128·Σ ls·code`. `grid(ib)`, `delta(ib)`
/// and `ls(ib)`: the 4 grid entries, the 4 shift bytes (`0x01…` or `0xFF…`
/// per entry) and the 16 i16 scales of values `32·ib..32·ib + 32`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq1_code_sum(
    q8: &[i8],
    grid: impl Fn(usize) -> __m256i,
    delta: impl Fn(usize) -> __m256i,
    ls: impl Fn(usize) -> __m256i,
) -> i32 {
    let (eight, ones, bias) = (_mm256_set1_epi8(8), _mm256_set1_epi8(1), _mm256_set1_epi8(i8::MIN));
    let (mut sum, mut corr) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    for ib in 0..8 {
        let code = _mm256_add_epi8(_mm256_sign_epi8(eight, grid(ib)), delta(ib));
        let q8b = _mm256_xor_si256(load_i8(&q8[32 * ib..]), bias);
        let sc = ls(ib);
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(q8b, code), sc));
        corr = _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, code), sc));
    }
    hsum_epi32(sum).wrapping_sub(hsum_epi32(corr).wrapping_mul(128))
}

/// The shift bytes of 4 groups: `0xFF…` (−1) where `negative(k)`, else `0x01…`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn iq1_deltas(negative: impl Fn(usize) -> bool) -> __m256i {
    iq1_grid(|k| if negative(k) { u64::MAX } else { 0x0101_0101_0101_0101 })
}

/// ggml's tiled-GEMM IQ1_S product (`super::scalar::iq1s_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq1s_batch(x: &[BlockIQ1S], y: &[BlockQ8K]) -> f32 {
    use crate::quant::iquants::iq1s::{entry, negative_shift, scale};
    let mut acc = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let s = iq1_code_sum(
            &b.qs,
            |ib| iq1_grid(|k| entry(a, ib, k)),
            |ib| iq1_deltas(|_| negative_shift(a, ib)),
            |ib| _mm256_set1_epi16(scale(a, ib) as i16),
        );
        acc = fma_ss(acc, a.d.to_f32() * 0.125 * s as f32, b.d);
    }
    acc
}

/// ggml's tiled-GEMM IQ1_M product (`super::scalar::iq1m_batch`).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq1m_batch(x: &[BlockIQ1M], y: &[BlockQ8K]) -> f32 {
    use crate::quant::iquants::iq1m::{entry, negative_shift, scale, scale_words, super_scale};
    let mut acc = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let sc = scale_words(a);
        let s = iq1_code_sum(
            &b.qs,
            |ib| iq1_grid(|k| entry(a, 4 * ib + k)),
            |ib| iq1_deltas(|k| negative_shift(a, 4 * ib + k)),
            |ib| {
                let (s0, s1) = (scale(&sc, 2 * ib) as i16, scale(&sc, 2 * ib + 1) as i16);
                _mm256_setr_epi16(s0, s0, s0, s0, s0, s0, s0, s0, s1, s1, s1, s1, s1, s1, s1, s1)
            },
        );
        acc = fma_ss(acc, super_scale(&sc).to_f32() * 0.125 * s as f32, b.d);
    }
    acc
}
