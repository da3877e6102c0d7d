//! Causal attention of one query head, with the summation order of
//! llama.cpp's CPU backend (non-flash path, F16 KV cache) so that results
//! agree with it to the last bit on x86-64 with AVX2:
//!
//! - `q·k`: Q rounded to F16, products accumulated with fused multiply-adds
//!   in 8 lanes (lane `l` takes elements `l, l+8, …`), lanes reduced as
//!   `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))` — the tiled F16 GEMM ggml uses
//!   for `K × Q`;
//! - softmax: scores scaled, max taken, `exp(s - max)` summed per group of
//!   8 (reduced as above) into an f64 total, then multiplied by `1/total`;
//! - the weights rounded to F16 and `V` (stored transposed, one row per
//!   dimension) accumulated the same 8-lane way.
//!
//! [`dot8`] has an AVX2+FMA path chosen at run time and a scalar path that
//! gives identical results (a fused multiply-add is exactly rounded either
//! way).

// Lane loops index several arrays in lockstep, mirroring SIMD lanes.
#![allow(clippy::needless_range_loop)]

use half::f16;

/// Reduce 8 lanes in the order of an AVX horizontal sum.
#[inline]
pub(super) fn hsum8(x: [f32; 8]) -> f32 {
    let y = [x[4] + x[0], x[5] + x[1], x[6] + x[2], x[7] + x[3]];
    (y[0] + y[2]) + (y[1] + y[3])
}

/// 8-lane fused multiply-add dot product, scalar reference.
pub fn dot8_scalar(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let full = a.len() / 8 * 8;
    for (ca, cb) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] = ca[l].mul_add(cb[l], acc[l]);
        }
    }
    let mut s = hsum8(acc);
    for (x, y) in a[full..].iter().zip(&b[full..]) {
        s = x.mul_add(*y, s);
    }
    s
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
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
}

/// 8-lane fused multiply-add dot product (AVX2 when available).
#[inline]
pub fn dot8(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        return unsafe { avx2::dot8(a, b) };
    }
    dot8_scalar(a, b)
}

/// `e^x` as ggml's vectorized CPU exponential computes it (the one its
/// AVX2 softmax uses), so that attention weights round the same way.
///
/// The method: `x = n·ln2 + b` with `n = round(x·log2 e)` (found by adding
/// and subtracting 1.5·2²³) and `ln 2` split in two parts for an exact
/// reduction; `e^b − 1 ≈ b·(c1 + b·c2 + b²·(c3 + b·c4 + b²·c5))`-style
/// polynomial evaluated with fused multiply-adds; the result scaled by `2^n`
/// through the exponent bits, with a slower two-factor scaling when `|n|`
/// exceeds 126 (and flushing to 0 or ∞ past 192).
#[inline(always)]
pub fn exp_ggml(x: f32) -> f32 {
    let f = f32::from_bits;
    let shifter = f(0x4b40_0000); // 1.5 · 2^23
    let z = x.mul_add(f(0x3fb8_aa3b), shifter); // x · log2(e), rounded into the low bits
    let n = z - shifter;
    let b = (-n).mul_add(f(0x35bf_be8e), (-n).mul_add(f(0x3f31_7200), x));
    let e = z.to_bits().wrapping_shl(23);
    let k = f(e.wrapping_add(1f32.to_bits()));
    let u = b * b;
    let j = f(0x3c07_2010)
        .mul_add(b, f(0x3d2b_9f17))
        .mul_add(u, f(0x3e2a_af33).mul_add(b, f(0x3eff_fedb)))
        .mul_add(u, f(0x3f7f_fff6) * b);
    if n.abs() <= 126.0 {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f(g.wrapping_add(0x7f00_0000));
    let s2 = f(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

/// Dot product in the order of ggml's `ggml_vec_dot_f16` with AVX2 (used
/// when the tiled GEMM is not, e.g. for a single query): four 8-lane
/// accumulators over steps of 32, combined `(a0+a2)+(a1+a3)`, the 8 lanes
/// reduced by pairwise horizontal adds, the tail added one product at a
/// time in f64.
#[inline(always)]
pub fn dot_vec_f16_order(a: &[f32], b: &[f32]) -> f32 {
    let np = a.len() / 32 * 32;
    let mut acc = [[0f32; 8]; 4];
    for i in (0..np).step_by(32) {
        for (r, lanes) in acc.iter_mut().enumerate() {
            for l in 0..8 {
                let k = i + r * 8 + l;
                lanes[l] = a[k].mul_add(b[k], lanes[l]);
            }
        }
    }
    let mut v = [0f32; 8];
    for l in 0..8 {
        v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    }
    let t = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
    let mut sum = ((t[0] + t[1]) + (t[2] + t[3])) as f64;
    for k in np..a.len() {
        sum += (a[k] * b[k]) as f64;
    }
    sum as f32
}

/// Round to F16 precision.
#[inline]
pub fn to_f16_precision(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Scratch buffers reused across heads.
#[derive(Default)]
pub struct Scratch {
    q: Vec<f32>,
    w: Vec<f32>,
}

/// One query head attending to positions `first..len` (`first > 0` for a
/// sliding window: the earlier positions are masked as llama.cpp masks
/// them, −∞ scores that keep their places in the summation order).
///
/// `q`: the head's query (`hd` values, any precision); `k`: key rows of the
/// cache, position `j` at `k[j*k_stride..][..hd]` (F16-precision values);
/// `vt`: the value cache transposed, dimension `d` at `vt[d*v_stride..]`
/// (F16 precision; finite up to `len` rounded up to 32); `out`: `hd`
/// values. `softcap > 0`: each score `s` becomes `softcap · tanh(s /
/// softcap)` before it is scaled (gemma2). `single`: the batch has one query token, for which ggml uses its
/// plain F16 dot product instead of the tiled GEMM (another summation order).
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    k: &[f32],
    k_stride: usize,
    vt: &[f32],
    v_stride: usize,
    first: usize,
    len: usize,
    scale: f32,
    softcap: f32,
    single: bool,
    out: &mut [f32],
    s: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        unsafe { attend_fma(q, k, k_stride, vt, v_stride, first, len, scale, softcap, single, out, s) };
        return;
    }
    attend_impl(q, k, k_stride, vt, v_stride, first, len, scale, softcap, single, out, s)
}

/// [`attend`] compiled with FMA instructions (same results, no calls to
/// the C library's `fmaf`).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_fma(
    q: &[f32],
    k: &[f32],
    k_stride: usize,
    vt: &[f32],
    v_stride: usize,
    first: usize,
    len: usize,
    scale: f32,
    softcap: f32,
    single: bool,
    out: &mut [f32],
    s: &mut Scratch,
) {
    attend_impl(q, k, k_stride, vt, v_stride, first, len, scale, softcap, single, out, s)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_impl(
    q: &[f32],
    k: &[f32],
    k_stride: usize,
    vt: &[f32],
    v_stride: usize,
    first: usize,
    len: usize,
    scale: f32,
    softcap: f32,
    single: bool,
    out: &mut [f32],
    s: &mut Scratch,
) {
    let hd = q.len();
    s.q.clear();
    s.q.extend(q.iter().map(|&x| to_f16_precision(x)));
    // The GEMM accumulates 8 positions per lane step, the plain dot product 32.
    let padded = if single { len.div_ceil(32) * 32 } else { len.div_ceil(8) * 8 };
    assert!(padded <= v_stride, "value rows of {v_stride} cannot hold {padded} positions");
    s.w.clear();
    // Positions before `first` and past `len` are masked (−∞ before the
    // exponential, weight 0).
    s.w.resize(padded, f32::NEG_INFINITY);
    let mut max = f32::NEG_INFINITY;
    for j in first.min(len)..len {
        let kj = &k[j * k_stride..j * k_stride + hd];
        let mut v = if single { dot_vec_f16_order(kj, &s.q) } else { dot8(kj, &s.q) };
        if softcap > 0.0 {
            // llama.cpp's attention soft-capping: scale, tanh, scale.
            v = (v * (1.0 / softcap)).tanh() * softcap;
        }
        let v = v * scale;
        s.w[j] = v;
        max = max.max(v);
    }
    let mut total = 0f64;
    for group in s.w.chunks_exact_mut(8) {
        let mut e = [0f32; 8];
        for (o, &x) in e.iter_mut().zip(group.iter()) {
            *o = exp_ggml(x - max);
        }
        total += hsum8(e) as f64;
        group.copy_from_slice(&e);
    }
    let inv = (1.0 / total) as f32;
    for x in &mut s.w[..len] {
        *x = to_f16_precision(*x * inv);
    }
    for (d, o) in out.iter_mut().enumerate() {
        let vd = &vt[d * v_stride..d * v_stride + padded];
        *o = if single { dot_vec_f16_order(vd, &s.w) } else { dot8(vd, &s.w) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_dot8_agree_bit_for_bit() {
        for n in [1usize, 7, 8, 9, 64, 100, 512] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.3).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 89) as f32 - 44.0) / 3.1).collect();
            assert_eq!(dot8(&a, &b).to_bits(), dot8_scalar(&a, &b).to_bits(), "n={n}");
        }
    }

    #[test]
    fn exp_ggml_is_close_to_exp() {
        for i in -1800..=200 {
            let x = i as f32 * 0.0437;
            let (a, b) = (exp_ggml(x), x.exp());
            assert!((a - b).abs() <= 4e-7 * b.max(f32::MIN_POSITIVE), "x={x}: {a} vs {b}");
        }
        assert_eq!(exp_ggml(0.0), 1.0);
        assert_eq!(exp_ggml(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_ggml(-200.0), 0.0);
    }

    #[test]
    fn single_query_order_is_a_dot_product() {
        let a: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..100).map(|i| (i as f32 * 0.11).cos()).collect();
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        assert!((dot_vec_f16_order(&a, &b) as f64 - exact).abs() < 1e-5);
        assert!((dot8(&a, &b) as f64 - exact).abs() < 1e-5);
    }

    #[test]
    fn single_and_batched_orders_agree_closely() {
        let hd = 64;
        let len = 37;
        let k: Vec<f32> = (0..len * hd).map(|i| to_f16_precision(((i * 7 % 23) as f32 - 11.0) / 9.0)).collect();
        let vs = 64;
        let vt: Vec<f32> = (0..hd * vs).map(|i| to_f16_precision(((i * 5 % 17) as f32 - 8.0) / 5.0)).collect();
        let q: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.3).sin()).collect();
        let (mut a, mut b) = (vec![0f32; hd], vec![0f32; hd]);
        attend(&q, &k, hd, &vt, vs, 0, len, 0.125, 0.0, false, &mut a, &mut Scratch::default());
        attend(&q, &k, hd, &vt, vs, 0, len, 0.125, 0.0, true, &mut b, &mut Scratch::default());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-2, "{x} vs {y}");
        }
    }

    #[test]
    fn a_window_masks_the_earlier_positions() {
        let hd = 8;
        let len = 20;
        let vs = 32;
        let k: Vec<f32> = (0..len * hd).map(|i| to_f16_precision(((i * 7 % 23) as f32 - 11.0) / 9.0)).collect();
        let vt: Vec<f32> = (0..hd * vs).map(|i| to_f16_precision(((i * 5 % 17) as f32 - 8.0) / 5.0)).collect();
        let q: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.3).sin()).collect();
        for single in [false, true] {
            let mut out = vec![0f32; hd];
            attend(&q, &k, hd, &vt, vs, 12, len, 0.5, 0.0, single, &mut out, &mut Scratch::default());
            // The same as the softmax over positions 12..20 only.
            let s: Vec<f64> =
                (12..len).map(|j| (0..hd).map(|d| (k[j * hd + d] * q[d]) as f64).sum::<f64>() * 0.5).collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let t: f64 = e.iter().sum();
            for (d, o) in out.iter().enumerate() {
                let want: f64 = (12..len).zip(&e).map(|(j, w)| w / t * vt[d * vs + j] as f64).sum();
                assert!((*o as f64 - want).abs() < 1e-2, "d={d}: {o} vs {want}");
            }
            // Position 0 alone is what a window of 1 at position 0 sees.
            attend(&q, &k, hd, &vt, vs, 0, 1, 0.5, 0.0, single, &mut out, &mut Scratch::default());
            for (d, o) in out.iter().enumerate() {
                assert_eq!(*o, vt[d * vs]);
            }
        }
    }

    #[test]
    fn attends_to_the_matching_key() {
        let hd = 8;
        let len = 5;
        let mut k = vec![0f32; len * hd];
        for j in 0..len {
            k[j * hd + j] = 1.0;
        }
        let v_stride = 32;
        let mut vt = vec![0f32; hd * v_stride];
        for d in 0..hd {
            for j in 0..len {
                vt[d * v_stride + j] = (j * 10 + d) as f32;
            }
        }
        let mut q = vec![0f32; hd];
        q[3] = 50.0;
        let mut out = vec![0f32; hd];
        attend(&q, &k, hd, &vt, v_stride, 0, len, 1.0, 0.0, false, &mut out, &mut Scratch::default());
        for (d, o) in out.iter().enumerate() {
            assert!((o - (30 + d) as f32).abs() < 1e-3, "{out:?}");
        }
    }
}
