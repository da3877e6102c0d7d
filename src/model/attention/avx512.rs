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
