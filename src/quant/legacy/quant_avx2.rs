//! AVX2 twins of the steps of the legacy reference quantizers (Q4_0, Q4_1,
//! Q5_0, Q5_1 without importance weights): a block's extrema and its
//! levels, each giving the scalar steps' results bit for bit
//! ([`super::min_max`], [`super::signed_absmax`], [`super::block_levels_scalar`]).

use std::arch::x86_64::*;

use crate::quant::x86::{hmax_ps, load_ps_32, max_abs, pack_i32x32};

/// [`super::min_max`] of 32 values. Lane-wise `vminps(v, acc)` keeps `acc`
/// for NaN and on ties, as the scalar `if v < min`; the lanes' extrema are
/// then the block's in value. Only a zero extremum can differ in sign
/// between lanes: the scalar loop keeps the first zero it meets, so that
/// one is taken.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `x` holds at least 32 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn min_max(x: &[f32]) -> (f32, f32) {
    let v = load_ps_32(x);
    let (mut lo, mut hi) = (_mm256_set1_ps(f32::MAX), _mm256_set1_ps(-f32::MAX));
    for v in v {
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
    }
    let l = _mm_min_ps(_mm256_extractf128_ps::<1>(lo), _mm256_castps256_ps128(lo));
    let l = _mm_min_ps(l, _mm_movehl_ps(l, l));
    let mut min = _mm_cvtss_f32(_mm_min_ss(l, _mm_movehdup_ps(l)));
    let mut max = hmax_ps(hi);
    let first_zero = || x[..32].iter().copied().find(|&v| v == 0.0).unwrap_or(0.0);
    if min == 0.0 {
        min = first_zero();
    }
    if max == 0.0 {
        max = first_zero();
    }
    (min, max)
}

/// [`super::signed_absmax`] of 32 values: the largest magnitude (NaNs
/// skipped), then the first value that has it; 0 when none is above 0.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `x` holds at least 32 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn signed_absmax(x: &[f32]) -> f32 {
    let v = load_ps_32(x);
    let mut acc = _mm256_setzero_ps();
    for v in v {
        acc = max_abs(acc, v);
    }
    // The lanes start at 0 and skip NaNs: `amax` is a number, 0 or more.
    let amax = hmax_ps(acc);
    if amax == 0.0 {
        return 0.0;
    }
    let target = _mm256_set1_ps(amax);
    let sign = _mm256_set1_ps(-0.0);
    for (k, v) in v.into_iter().enumerate() {
        let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, v), target));
        if hit != 0 {
            return x[8 * k + hit.trailing_zeros() as usize];
        }
    }
    0.0
}

/// [`super::block_levels_scalar`]: `(x_j − m)·id + add` truncated as C
/// converts float to int (`vcvttps2dq`: the integer indefinite value out
/// of range, as `c_float_to_int`), its low byte as i8, at most `cap`.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `x` holds at least 32 values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn levels(x: &[f32], m: f32, id: f32, add: f32, cap: Option<i32>) -> [u8; 32] {
    let v = load_ps_32(x);
    let (mv, idv, addv) = (_mm256_set1_ps(m), _mm256_set1_ps(id), _mm256_set1_ps(add));
    let capv = _mm256_set1_epi32(cap.unwrap_or(127));
    let q = v.map(|v| {
        let i = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v, mv), idv), addv));
        // The low byte, sign-extended (what `as i8` keeps), then capped.
        _mm256_min_epi32(_mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(i)), capv)
    });
    let mut out = [0u8; 32];
    // SAFETY: `out` is 32 bytes; every lane is in the i8 range, so the
    // saturating packs keep it.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, pack_i32x32(q)) };
    out
}
