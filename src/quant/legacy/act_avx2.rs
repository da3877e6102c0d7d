//! AVX2 activation quantizers of Q8_0 and Q8_1 (`legacy::q8`): per block of
//! 32 the maximum magnitude (NaNs skipped), `id = 127/amax`, and each level
//! `nearest_int(x · id)` clamped to the i8 range, the float operations of
//! the scalar references in their order. A block with a product of
//! magnitude 2²² or more (or NaN: only when `id` overflowed or the input is
//! not finite) takes the scalar path, so every byte equals the scalar one.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use half::f16;

use super::q8::{act_level, act_scale};
use crate::quant::blocks::{BlockQ8_0, BlockQ8_1, QK8_0};
use crate::quant::x86::*;

/// The levels of one block and their sum, or `None` where the scalar path
/// must decide (see the module documentation).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn levels(x: &[f32], qs: &mut [i8; QK8_0]) -> (f32, i32) {
    let v = load_ps_32(x);
    let mut acc = _mm256_setzero_ps();
    for &r in &v {
        acc = max_abs(acc, r);
    }
    let amax = hmax_ps(acc);
    let (d, id) = (amax / 127.0, if amax != 0.0 { 127.0 / amax } else { 0.0 });
    debug_assert_eq!((d, id), act_scale(x));
    let idv = _mm256_set1_ps(id);
    let p = v.map(|r| _mm256_mul_ps(r, idv));
    if !all_abs_below(&p, 4_194_304.0) {
        let mut sum = 0i32;
        for (q, &xi) in qs.iter_mut().zip(x) {
            *q = act_level(xi, id);
            sum += *q as i32;
        }
        return (d, sum);
    }
    let (lo, hi) = (_mm256_set1_epi32(-128), _mm256_set1_epi32(127));
    let l = p.map(|r| _mm256_max_epi32(_mm256_min_epi32(nearest_int_8(r), hi), lo));
    let sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(l[0], l[1]), _mm256_add_epi32(l[2], l[3])));
    store_i8_32(qs, pack_i32x32(l));
    (d, sum)
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0(src: &[f32], dst: &mut [BlockQ8_0]) {
    for (x, y) in src.chunks_exact(QK8_0).zip(dst.iter_mut()) {
        let (d, _) = levels(x, &mut y.qs);
        y.d = f16::from_f32(d);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_1(src: &[f32], dst: &mut [BlockQ8_1]) {
    for (x, y) in src.chunks_exact(QK8_0).zip(dst.iter_mut()) {
        let (d, sum) = levels(x, &mut y.qs);
        y.d = f16::from_f32(d);
        y.s = f16::from_f32(d * sum as f32);
    }
}
