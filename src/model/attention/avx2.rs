//! The AVX2 paths of [`super`]'s vector steps, each the scalar twin's
//! arithmetic in the same order (the tests in `super` compare them).

use std::arch::x86_64::*;

/// # Safety
/// The CPU must support AVX2 and FMA; `a` and `b` have equal lengths.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let full = a.len() / 8 * 8;
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i < full {
        // SAFETY: i + 8 <= full <= len of both slices.
        let va = _mm256_loadu_ps(a.as_ptr().add(i));
        let vb = _mm256_loadu_ps(b.as_ptr().add(i));
        acc = _mm256_fmadd_ps(va, vb, acc);
        i += 8;
    }
    let h = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_movehdup_ps(h));
    let mut s = _mm_cvtss_f32(h);
    for k in full..a.len() {
        s = a[k].mul_add(b[k], s);
    }
    s
}

/// [`super::exp_ggml`] of eight values (ggml's vectorized exponential,
/// each lane taking the scalar path's branch: `|n| ≤ 126`, `|n| > 192`
/// or between).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp8(x: __m256) -> __m256 {
    let f = |bits: u32| _mm256_castsi256_ps(_mm256_set1_epi32(bits as i32));
    let shifter = f(0x4b40_0000);
    let z = _mm256_fmadd_ps(x, f(0x3fb8_aa3b), shifter);
    let n = _mm256_sub_ps(z, shifter);
    let b = _mm256_fnmadd_ps(n, f(0x35bf_be8e), _mm256_fnmadd_ps(n, f(0x3f31_7200), x));
    let e = _mm256_slli_epi32::<23>(_mm256_castps_si256(z));
    let k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f80_0000)));
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(f(0x3c07_2010), b, f(0x3d2b_9f17)),
            u,
            _mm256_fmadd_ps(f(0x3e2a_af33), b, f(0x3eff_fedb)),
        ),
        u,
        _mm256_mul_ps(f(0x3f7f_fff6), b),
    );
    let near = _mm256_fmadd_ps(j, k, k);
    let abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    let small = _mm256_cmp_ps::<_CMP_LE_OQ>(abs_n, _mm256_set1_ps(126.0));
    if _mm256_movemask_ps(small) == 0xFF {
        return near;
    }
    let g = _mm256_and_si256(
        _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(n, _mm256_setzero_ps())),
        _mm256_set1_epi32(0x8200_0000u32 as i32),
    );
    let s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f00_0000)));
    let s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    let huge = _mm256_cmp_ps::<_CMP_GT_OQ>(abs_n, _mm256_set1_ps(192.0));
    let far = _mm256_blendv_ps(_mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1), _mm256_mul_ps(s1, s1), huge);
    _mm256_blendv_ps(far, near, small)
}

/// [`super::normalize`]: the exponentials eight at a time ([`exp8`]),
/// each group's sum reduced as `hsum8`, the sums added in f64 in order.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `w.len()` is a multiple of 8.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn normalize(w: &mut [f32], len: usize, max: f32) {
    let m = _mm256_set1_ps(max);
    let mut total = 0f64;
    for group in w.chunks_exact_mut(8) {
        // SAFETY: `group` is 8 floats.
        let e = unsafe { exp8(_mm256_sub_ps(_mm256_loadu_ps(group.as_ptr()), m)) };
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(group.as_mut_ptr(), e) };
        // hsum8: (x4+x0, x5+x1, x6+x2, x7+x3), then (y0+y2)+(y1+y3).
        let y = _mm_add_ps(_mm256_extractf128_ps::<1>(e), _mm256_castps256_ps128(e));
        let t = _mm_add_ps(y, _mm_movehl_ps(y, y));
        total += _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t))) as f64;
    }
    let inv = (1.0 / total) as f32;
    for x in &mut w[..len] {
        *x *= inv;
    }
    super::round_to_f16(&mut w[..len]);
}

/// [`super::round_to_f16`].
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub unsafe fn round_to_f16(x: &mut [f32]) {
    let full = x.len() / 8 * 8;
    let p = x.as_mut_ptr();
    let mut i = 0;
    while i < full {
        // SAFETY: i + 8 <= full <= x.len().
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(p.add(i)));
        _mm256_storeu_ps(p.add(i), _mm256_cvtph_ps(h));
        i += 8;
    }
    super::round_to_f16_scalar(&mut x[full..]);
}

/// [`super::dot_vec_f16_order`]: four 8-lane accumulators over steps
/// of 32, `(a0+a2)+(a1+a3)`, the lanes reduced pairwise, the tail in f64.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` and `b` have equal lengths.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_vec_f16_order(a: &[f32], b: &[f32]) -> f32 {
    let np = a.len() / 32 * 32;
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < np {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8r + 8 <= np <= len of both slices.
            let va = _mm256_loadu_ps(a.as_ptr().add(i + 8 * r));
            let vb = _mm256_loadu_ps(b.as_ptr().add(i + 8 * r));
            *acc = _mm256_fmadd_ps(va, vb, *acc);
        }
        i += 32;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    // t = (v0+v4, v1+v5, v2+v6, v3+v7); ((t0+t1)+(t2+t3)).
    let t = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let u = _mm_hadd_ps(t, t);
    let w = _mm_hadd_ps(u, u);
    let mut sum = _mm_cvtss_f32(w) as f64;
    for k in np..a.len() {
        sum += (a[k] * b[k]) as f64;
    }
    sum as f32
}

/// [`super::dot8_4x4`] in two halves of four rows × two columns (eight
/// accumulators: with the loaded steps they fit AVX2's 16 registers).
///
/// # Safety
/// The CPU must support AVX2 and FMA; every `a[i]` holds the largest
/// `n[m]` values, every `b[m]` `n[m]`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot8_4x4(a: [&[f32]; 4], b: [&[f32]; 4], n: [usize; 4]) -> [[f32; 4]; 4] {
    let mut out = [[0f32; 4]; 4];
    for half in 0..2 {
        let (m0, m1) = (2 * half, 2 * half + 1);
        let o = dot8_4x2(a, [b[m0], b[m1]], [n[m0], n[m1]]);
        for i in 0..4 {
            (out[i][m0], out[i][m1]) = (o[i][0], o[i][1]);
        }
    }
    out
}

/// Four rows × two columns of [`super::dot8_4x4`].
///
/// # Safety
/// As [`dot8_4x4`].
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot8_4x2(a: [&[f32]; 4], b: [&[f32]; 2], n: [usize; 2]) -> [[f32; 2]; 4] {
    let full = [n[0] / 8 * 8, n[1] / 8 * 8];
    let common = full[0].min(full[1]);
    let pa = [a[0].as_ptr(), a[1].as_ptr(), a[2].as_ptr(), a[3].as_ptr()];
    let pb = [b[0].as_ptr(), b[1].as_ptr()];
    let mut acc = [_mm256_setzero_ps(); 8];
    let mut j = 0;
    while j < common {
        // SAFETY: j + 8 <= common <= both n[m] <= the lengths.
        let (b0, b1) = (_mm256_loadu_ps(pb[0].add(j)), _mm256_loadu_ps(pb[1].add(j)));
        for i in 0..4 {
            let va = _mm256_loadu_ps(pa[i].add(j));
            acc[2 * i] = _mm256_fmadd_ps(va, b0, acc[2 * i]);
            acc[2 * i + 1] = _mm256_fmadd_ps(va, b1, acc[2 * i + 1]);
        }
        j += 8;
    }
    let mut out = [[0f32; 2]; 4];
    if n[0] == common && n[1] == common {
        // No steps or tail left: the eight horizontal sums at once.
        let s = hsum8x8(acc);
        for (i, o) in out.iter_mut().enumerate() {
            *o = [s[i], s[4 + i]];
        }
        return out;
    }
    for i in 0..4 {
        for m in 0..2 {
            out[i][m] = finish_dot8(acc[2 * i + m], &a[i][..n[m]], &b[m][..n[m]], common);
        }
    }
    out
}

/// The horizontal sums of eight 8-lane chains, each with
/// [`finish_dot8`]'s additions (`t = hi + lo`, then `(t0 + t2) + (t1 +
/// t3)`), formed side by side: the sum of `c[2k]` in element `k`, of
/// `c[2k + 1]` in element `4 + k`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum8x8(c: [__m256; 8]) -> [f32; 8] {
    // w[k]: the four t of c[2k] in the low half, of c[2k + 1] in the high.
    let w: [__m256; 4] = std::array::from_fn(|k| {
        let (x, y) = (c[2 * k], c[2 * k + 1]);
        _mm256_add_ps(_mm256_permute2f128_ps::<0x31>(x, y), _mm256_permute2f128_ps::<0x20>(x, y))
    });
    // Per half: t0 + t2 and t1 + t3 of two chains.
    let pairs = |x: __m256, y: __m256| {
        _mm256_add_ps(_mm256_shuffle_ps::<0b01_00_01_00>(x, y), _mm256_shuffle_ps::<0b11_10_11_10>(x, y))
    };
    let (u0, u1) = (pairs(w[0], w[1]), pairs(w[2], w[3]));
    let v = _mm256_add_ps(_mm256_shuffle_ps::<0b10_00_10_00>(u0, u1), _mm256_shuffle_ps::<0b11_01_11_01>(u0, u1));
    let mut s = [0f32; 8];
    // SAFETY: `s` is 8 floats.
    unsafe { _mm256_storeu_ps(s.as_mut_ptr(), v) };
    s
}

/// The end of a [`super::dot8`] of `a` and `b` (equal lengths) whose 8-lane
/// chains `c` hold the products of values `0..from` (a multiple of 8): the
/// remaining 8-value steps, the horizontal sum and the scalar tail.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `from ≤ a.len() / 8 * 8`.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn finish_dot8(mut c: __m256, a: &[f32], b: &[f32], from: usize) -> f32 {
    let n = a.len().min(b.len());
    let full = n / 8 * 8;
    let mut j = from;
    while j < full {
        // SAFETY: j + 8 <= full <= both lengths.
        c = unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(j)), _mm256_loadu_ps(b.as_ptr().add(j)), c) };
        j += 8;
    }
    let h = _mm_add_ps(_mm256_extractf128_ps(c, 1), _mm256_castps256_ps128(c));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_movehdup_ps(h));
    let mut s = _mm_cvtss_f32(h);
    for j in full..n {
        s = a[j].mul_add(b[j], s);
    }
    s
}

/// Four [`dot8`]s `a[k]·b[k]` (each pair of its own length), their
/// accumulator chains interleaved while all four have 8-value steps
/// left; each one's operations and order are [`dot8`]'s.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a[k]` and `b[k]` have equal
/// lengths.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot8x4(a: [&[f32]; 4], b: [&[f32]; 4]) -> [f32; 4] {
    assert!((0..4).all(|k| a[k].len() == b[k].len()));
    let full = [a[0].len() / 8 * 8, a[1].len() / 8 * 8, a[2].len() / 8 * 8, a[3].len() / 8 * 8];
    let common = full[0].min(full[1]).min(full[2]).min(full[3]);
    let (pa, pb) = (
        [a[0].as_ptr(), a[1].as_ptr(), a[2].as_ptr(), a[3].as_ptr()],
        [b[0].as_ptr(), b[1].as_ptr(), b[2].as_ptr(), b[3].as_ptr()],
    );
    // Four named accumulators: an array captured by a closure would
    // live in memory, its chains going through store and reload.
    let (mut c0, mut c1, mut c2, mut c3) =
        (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i < common {
        // SAFETY: i + 8 <= common <= full[k] <= both lengths of pair k.
        c0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa[0].add(i)), _mm256_loadu_ps(pb[0].add(i)), c0);
        c1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa[1].add(i)), _mm256_loadu_ps(pb[1].add(i)), c1);
        c2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa[2].add(i)), _mm256_loadu_ps(pb[2].add(i)), c2);
        c3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa[3].add(i)), _mm256_loadu_ps(pb[3].add(i)), c3);
        i += 8;
    }
    let mut out = [0f32; 4];
    for (k, acc) in [c0, c1, c2, c3].into_iter().enumerate() {
        let mut acc = acc;
        let mut i = common;
        while i < full[k] {
            // SAFETY: i + 8 <= full[k] <= both lengths of pair k.
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(pa[k].add(i)), _mm256_loadu_ps(pb[k].add(i)), acc);
            i += 8;
        }
        let h = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_movehdup_ps(h));
        let mut s = _mm_cvtss_f32(h);
        for j in full[k]..a[k].len() {
            s = a[k][j].mul_add(b[k][j], s);
        }
        out[k] = s;
    }
    out
}
