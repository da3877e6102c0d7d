//! The AVX-512 path of [`super::dot8_4x4`]: the AVX2 kernel's arithmetic
//! with two columns per 512-bit register, so that one instruction does the
//! fused multiply-adds of two AVX2 instructions. Lanes 0..8 of a register
//! hold one column's 8-lane accumulator, lanes 8..16 the next column's,
//! each lane's chain the AVX2 kernel's (and so [`super::dot8_scalar`]'s),
//! so the results are identical bit for bit (tests in `super`).

use std::arch::x86_64::*;

/// Eight floats into both halves of a 512-bit register.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
fn both_halves(v: __m256) -> __m512 {
    _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(v)))
}

/// `lo` in lanes 0..8, `hi` in lanes 8..16.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
fn pair(lo: __m256, hi: __m256) -> __m512 {
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi)))
}

/// The horizontal sums of four 8-lane accumulators (`c01`: columns 0 and 1
/// in lanes 0..8 and 8..16, `c23`: columns 2 and 3), each in
/// [`super::hsum8`]'s order: `y_k = x_{k+4} + x_k`, then
/// `(y_0 + y_2) + (y_1 + y_3)`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma")]
fn hsum8_x4(c01: __m512, c23: __m512) -> [f32; 4] {
    // 128-bit lanes: the four columns' low halves, then their high halves.
    let lo = _mm512_shuffle_f32x4::<0b10_00_10_00>(c01, c23);
    let hi = _mm512_shuffle_f32x4::<0b11_01_11_01>(c01, c23);
    // Column c's y_0..y_3 in 128-bit lane c.
    let y = _mm512_add_ps(hi, lo);
    // y_0 + y_2 and y_1 + y_3 in elements 0 and 1 of each lane.
    let t = _mm512_add_ps(y, _mm512_permute_ps::<0b01_00_11_10>(y));
    // (y_0 + y_2) + (y_1 + y_3) in element 0.
    let u = _mm512_add_ps(t, _mm512_permute_ps::<0b11_10_00_01>(t));
    let mut out = [0f32; 16];
    // SAFETY: `out` holds 16 floats.
    unsafe { _mm512_storeu_ps(out.as_mut_ptr(), u) };
    [out[0], out[4], out[8], out[12]]
}

/// [`super::dot8_4x4`]: `out[i][m]` = `dot8(a[i][..n[m]], b[m][..n[m]])`.
///
/// # Safety
/// The CPU must support AVX-512 F, AVX2 and FMA; every `a[i]` holds the
/// largest `n[m]` values, every `b[m]` `n[m]`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn dot8_4x4(a: [&[f32]; 4], b: [&[f32]; 4], n: [usize; 4]) -> [[f32; 4]; 4] {
    let common = n.iter().map(|x| x / 8 * 8).min().unwrap_or(0);
    let pa = a.map(|x| x.as_ptr());
    let pb = b.map(|x| x.as_ptr());
    // acc[i][p]: row i × columns 2p (lanes 0..8) and 2p + 1 (lanes 8..16).
    let mut acc = [[_mm512_setzero_ps(); 2]; 4];
    let mut j = 0;
    while j < common {
        // SAFETY: j + 8 <= common <= every n[m] <= the lengths of b[m] and a[i].
        unsafe {
            let b01 = pair(_mm256_loadu_ps(pb[0].add(j)), _mm256_loadu_ps(pb[1].add(j)));
            let b23 = pair(_mm256_loadu_ps(pb[2].add(j)), _mm256_loadu_ps(pb[3].add(j)));
            for i in 0..4 {
                let va = both_halves(_mm256_loadu_ps(pa[i].add(j)));
                acc[i][0] = _mm512_fmadd_ps(va, b01, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(va, b23, acc[i][1]);
            }
        }
        j += 8;
    }
    let mut out = [[0f32; 4]; 4];
    if n.iter().all(|&x| x == common) {
        // No steps left and no scalar tail: the sixteen horizontal sums at
        // once, each `hsum8`'s additions (the same operands, pairwise).
        for (i, o) in out.iter_mut().enumerate() {
            *o = hsum8_x4(acc[i][0], acc[i][1]);
        }
        return out;
    }
    for i in 0..4 {
        for m in 0..4 {
            let v = acc[i][m / 2];
            let c = if m % 2 == 0 {
                _mm512_castps512_ps256(v)
            } else {
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))
            };
            // SAFETY: AVX2 and FMA are enabled here; common ≤ full[m].
            out[i][m] = unsafe { super::avx2::finish_dot8(c, &a[i][..n[m]], &b[m][..n[m]], common) };
        }
    }
    out
}
