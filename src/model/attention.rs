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
//! Each vector step — [`dot8`] and its 4×4 form, the single-query
//! [`dot_vec_f16_order`], the exponential ([`exp_ggml`], eight lanes in
//! `exp8`), the softmax and [`round_to_f16`] — has an AVX2 path chosen at
//! run time and a scalar twin that gives identical bits (a fused
//! multiply-add is exactly rounded either way); the tests compare them.

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

/// ggml's exponential of eight lanes ([`exp_ggml`] per lane; AVX2 + FMA).
#[cfg(target_arch = "x86_64")]
pub(super) use avx2::exp8;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Sixteen [`dot8`]s: `out[i][m]` = `dot8(a[i][..n[m]], b[m][..n[m]])`,
/// every one's operations and order unchanged, each loaded 8-value step of
/// `a` and `b` used four times (AVX-512: two columns per instruction).
///
/// # Panics
/// When an `a[i]` is shorter than the largest `n[m]` or a `b[m]` shorter
/// than `n[m]`.
#[inline]
pub fn dot8_4x4(a: [&[f32]; 4], b: [&[f32]; 4], n: [usize; 4]) -> [[f32; 4]; 4] {
    let most = n.iter().copied().max().unwrap_or(0);
    assert!(a.iter().all(|x| x.len() >= most) && (0..4).all(|m| b[m].len() >= n[m]));
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx512() {
        // SAFETY: `use_avx512` is true only when AVX-512 F/BW/VL, AVX2, FMA
        // and F16C were detected; the lengths were checked above.
        return unsafe { avx512::dot8_4x4(a, b, n) };
    }
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were
        // detected; the lengths were checked above.
        return unsafe { avx2::dot8_4x4(a, b, n) };
    }
    std::array::from_fn(|i| std::array::from_fn(|m| dot8_scalar(&a[i][..n[m]], &b[m][..n[m]])))
}

/// Four [`dot8`]s `a[k]·b[k]` (each pair of its own length): the same bits,
/// faster (four independent accumulator chains in flight).
#[inline]
pub fn dot8x4(a: [&[f32]; 4], b: [&[f32]; 4]) -> [f32; 4] {
    assert!((0..4).all(|k| a[k].len() == b[k].len()));
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        return unsafe { avx2::dot8x4(a, b) };
    }
    std::array::from_fn(|k| dot8_scalar(a[k], b[k]))
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
#[inline]
pub fn dot_vec_f16_order(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        return unsafe { avx2::dot_vec_f16_order(a, b) };
    }
    dot_vec_f16_order_scalar(a, b)
}

/// [`dot_vec_f16_order`], scalar reference.
#[inline(always)]
pub fn dot_vec_f16_order_scalar(a: &[f32], b: &[f32]) -> f32 {
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

/// Round every value to F16 precision in place (F16C when available:
/// the same round-to-nearest-even conversion, eight at a time).
pub fn round_to_f16(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        unsafe { avx2::round_to_f16(x) };
        return;
    }
    round_to_f16_scalar(x)
}

/// [`round_to_f16`], scalar reference.
pub fn round_to_f16_scalar(x: &mut [f32]) {
    for v in x {
        *v = to_f16_precision(*v);
    }
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

/// A query·key product as a score: llama.cpp's soft-capping (scale, tanh,
/// scale) where `softcap > 0`, then the attention scale.
#[inline(always)]
fn score(dot: f32, scale: f32, softcap: f32) -> f32 {
    let mut v = dot;
    if softcap > 0.0 {
        v = (v * (1.0 / softcap)).tanh() * softcap;
    }
    v * scale
}

/// Scores `w` (padded to a multiple of 8 with −∞) into softmax weights
/// rounded to f16 precision, as ggml's softmax: exponentials 8 at a time,
/// their sums added in f64, the first `len` scaled by the inverse.
#[inline(always)]
fn normalize(w: &mut [f32], len: usize, max: f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        unsafe { avx2::normalize(w, len, max) };
        return;
    }
    normalize_scalar(w, len, max)
}

/// [`normalize`], scalar reference.
#[inline(always)]
fn normalize_scalar(w: &mut [f32], len: usize, max: f32) {
    let mut total = 0f64;
    for group in w.chunks_exact_mut(8) {
        let mut e = [0f32; 8];
        for (o, &x) in e.iter_mut().zip(group.iter()) {
            *o = exp_ggml(x - max);
        }
        total += hsum8(e) as f64;
        group.copy_from_slice(&e);
    }
    let inv = (1.0 / total) as f32;
    for x in &mut w[..len] {
        *x *= inv;
    }
    round_to_f16(&mut w[..len]);
}

/// Four queries attending to the keys and values of one head at once: for
/// each `m`, the output of [`attend`] of `q[m]` over `first[m]..len[m]` in
/// the batched order (`single` false), bit for bit, with each key and value
/// row read once for the four.
#[allow(clippy::too_many_arguments)]
pub fn attend4(
    q: [&[f32]; 4],
    k: &[f32],
    k_stride: usize,
    vt: &[f32],
    v_stride: usize,
    first: [usize; 4],
    len: [usize; 4],
    scale: f32,
    softcap: f32,
    out: [&mut [f32]; 4],
    s: &mut [Scratch; 4],
) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        unsafe { attend4_fma(q, k, k_stride, vt, v_stride, first, len, scale, softcap, out, s) };
        return;
    }
    attend4_impl(q, k, k_stride, vt, v_stride, first, len, scale, softcap, out, s)
}

/// [`attend4`] compiled with FMA instructions.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend4_fma(
    q: [&[f32]; 4],
    k: &[f32],
    k_stride: usize,
    vt: &[f32],
    v_stride: usize,
    first: [usize; 4],
    len: [usize; 4],
    scale: f32,
    softcap: f32,
    out: [&mut [f32]; 4],
    s: &mut [Scratch; 4],
) {
    attend4_impl(q, k, k_stride, vt, v_stride, first, len, scale, softcap, out, s)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend4_impl(
    q: [&[f32]; 4],
    k: &[f32],
    k_stride: usize,
    vt: &[f32],
    v_stride: usize,
    first: [usize; 4],
    len: [usize; 4],
    scale: f32,
    softcap: f32,
    out: [&mut [f32]; 4],
    s: &mut [Scratch; 4],
) {
    let hd = q[0].len();
    let mut padded = [0usize; 4];
    for m in 0..4 {
        assert_eq!(q[m].len(), hd);
        s[m].q.clear();
        s[m].q.extend_from_slice(q[m]);
        round_to_f16(&mut s[m].q);
        padded[m] = len[m].div_ceil(8) * 8;
        assert!(padded[m] <= v_stride, "value rows of {v_stride} cannot hold {} positions", padded[m]);
        s[m].w.clear();
        s[m].w.resize(padded[m], f32::NEG_INFINITY);
    }
    let key = |j: usize| &k[j * k_stride..j * k_stride + hd];
    let start: [usize; 4] = std::array::from_fn(|m| first[m].min(len[m]));
    // Keys every query sees, four products per key row; the others one by one.
    let (lo, hi) = (start.iter().copied().max().unwrap_or(0), len.iter().copied().min().unwrap_or(0));
    let mut max = [f32::NEG_INFINITY; 4];
    let mut j = lo;
    while j < hi {
        let qs: [&[f32]; 4] = [&s[0].q, &s[1].q, &s[2].q, &s[3].q];
        // Four keys × four queries, or one key.
        let (dots, keys) = if j + 4 <= hi {
            (dot8_4x4([key(j), key(j + 1), key(j + 2), key(j + 3)], qs, [hd; 4]), 4)
        } else {
            ([dot8x4([key(j); 4], qs), [0.0; 4], [0.0; 4], [0.0; 4]], 1)
        };
        for (i, row) in dots.iter().enumerate().take(keys) {
            for m in 0..4 {
                let v = score(row[m], scale, softcap);
                s[m].w[j + i] = v;
                max[m] = max[m].max(v);
            }
        }
        j += keys;
    }
    for m in 0..4 {
        for j in (start[m]..len[m]).filter(|j| !(lo..hi).contains(j)) {
            let v = score(dot8(key(j), &s[m].q), scale, softcap);
            s[m].w[j] = v;
            max[m] = max[m].max(v);
        }
        normalize(&mut s[m].w, len[m], max[m]);
    }
    let [o0, o1, o2, o3] = out;
    let most = padded.iter().copied().max().unwrap_or(0);
    let row = |d: usize| &vt[d * v_stride..d * v_stride + most];
    let ws: [&[f32]; 4] = [&s[0].w, &s[1].w, &s[2].w, &s[3].w];
    let mut d = 0;
    while d < hd {
        if d + 4 <= hd {
            // Four value rows × four queries.
            let o = dot8_4x4([row(d), row(d + 1), row(d + 2), row(d + 3)], ws, padded);
            for (i, oi) in o.iter().enumerate() {
                (o0[d + i], o1[d + i], o2[d + i], o3[d + i]) = (oi[0], oi[1], oi[2], oi[3]);
            }
            d += 4;
        } else {
            let values: [&[f32]; 4] = std::array::from_fn(|m| &row(d)[..padded[m]]);
            let o = dot8x4(values, ws);
            (o0[d], o1[d], o2[d], o3[d]) = (o[0], o[1], o[2], o[3]);
            d += 1;
        }
    }
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
    s.q.extend_from_slice(q);
    round_to_f16(&mut s.q);
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
        let v = score(if single { dot_vec_f16_order(kj, &s.q) } else { dot8(kj, &s.q) }, scale, softcap);
        s.w[j] = v;
        max = max.max(v);
    }
    normalize(&mut s.w, len, max);
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
    fn simd_and_scalar_f16_order_dots_agree_bit_for_bit() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        };
        for n in [0, 1, 7, 31, 32, 33, 64, 100, 128, 257] {
            let a: Vec<f32> = (0..n).map(|_| to_f16_precision(next())).collect();
            let b: Vec<f32> = (0..n).map(|_| to_f16_precision(next() * 3.0)).collect();
            let (fast, slow) = (dot_vec_f16_order(&a, &b), dot_vec_f16_order_scalar(&a, &b));
            assert_eq!(fast.to_bits(), slow.to_bits(), "n={n}: {fast} vs {slow}");
        }
    }

    #[test]
    fn simd_and_scalar_f16_rounding_agree_bit_for_bit() {
        // Ties, subnormals, overflow to infinity, signed zeros, a tail.
        let mut x: Vec<f32> = vec![1.0 + 1.0 / 2048.0, 1.0 + 3.0 / 2048.0, -2.5e-6, 7e-8, 65520.0, -1e6, -0.0, 0.0];
        x.extend((0..203).map(|i| ((i * 7919) % 2003) as f32 / 37.0 - 27.0 + (i as f32) * 1e-4));
        let (mut fast, mut slow) = (x.clone(), x);
        round_to_f16(&mut fast);
        round_to_f16_scalar(&mut slow);
        for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "value {i}: {a} vs {b}");
        }
    }

    #[test]
    fn dot8x4_is_four_dot8s_bit_for_bit() {
        for n in [1usize, 7, 8, 9, 64, 100, 512] {
            let rows: Vec<Vec<f32>> =
                (0..4).map(|r| (0..n).map(|i| ((i * 37 + r * 11) % 101) as f32 / 7.3 - 6.0).collect()).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 53 % 89) as f32 - 44.0) / 3.1).collect();
            let got = dot8x4([&rows[0], &rows[1], &rows[2], &rows[3]], [&b; 4]);
            for r in 0..4 {
                assert_eq!(got[r].to_bits(), dot8_scalar(&rows[r], &b).to_bits(), "n={n} row {r}");
            }
            // Ragged: each pair its own length.
            let cut = [n, n.saturating_sub(3), n / 2, n.saturating_sub(9)];
            let a4: [&[f32]; 4] = std::array::from_fn(|r| &rows[r][..cut[r]]);
            let b4: [&[f32]; 4] = std::array::from_fn(|r| &b[..cut[r]]);
            let got = dot8x4(a4, b4);
            for r in 0..4 {
                assert_eq!(got[r].to_bits(), dot8_scalar(a4[r], b4[r]).to_bits(), "n={n} ragged row {r}");
            }
            // Four rows × four columns, column m of length cut[m]: ragged,
            // then all of one length of whole 8-value steps (the AVX-512
            // kernel's sixteen sums at once).
            let cols: Vec<Vec<f32>> = (0..4).map(|m| b.iter().map(|x| x * (1.0 + m as f32 * 0.37)).collect()).collect();
            let rows4: [&[f32]; 4] = std::array::from_fn(|r| &rows[r][..]);
            for cut in [cut, [n / 8 * 8; 4]] {
                let cols4: [&[f32]; 4] = std::array::from_fn(|m| &cols[m][..cut[m]]);
                // Every path this CPU has: the dispatched one and each SIMD twin.
                let mut paths = vec![("dispatched", dot8_4x4(rows4, cols4, cut))];
                #[cfg(target_arch = "x86_64")]
                {
                    if crate::quant::simd::use_avx2() {
                        // SAFETY: AVX2, FMA and F16C were detected; the lengths fit.
                        paths.push(("avx2", unsafe { avx2::dot8_4x4(rows4, cols4, cut) }));
                    }
                    if crate::quant::simd::use_avx512() {
                        // SAFETY: AVX-512 F/BW/VL, AVX2 and FMA were detected; the lengths fit.
                        paths.push(("avx512", unsafe { avx512::dot8_4x4(rows4, cols4, cut) }));
                    }
                }
                for (path, got) in paths {
                    for r in 0..4 {
                        for m in 0..4 {
                            let want = dot8_scalar(&rows[r][..cut[m]], cols4[m]);
                            assert_eq!(got[r][m].to_bits(), want.to_bits(), "{path}: {cut:?} 4x4 row {r} column {m}");
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_and_scalar_exponentials_and_softmax_agree_bit_for_bit() {
        if !crate::quant::simd::use_avx2() {
            return;
        }
        let mut xs: Vec<f32> = (-2400..2400).map(|i| i as f32 * 0.0913).collect();
        xs.extend([f32::NEG_INFINITY, f32::INFINITY, -87.3, -87.4, 88.7, 88.8, -133.0, 133.0, -0.0, 1e-30]);
        while !xs.len().is_multiple_of(8) {
            xs.push(-1.0);
        }
        for c in xs.chunks_exact(8) {
            let mut got = [0f32; 8];
            // SAFETY: AVX2 and FMA were detected; `c` and `got` are 8 floats.
            unsafe {
                use std::arch::x86_64::*;
                _mm256_storeu_ps(got.as_mut_ptr(), avx2::exp8(_mm256_loadu_ps(c.as_ptr())));
            }
            for (g, &x) in got.iter().zip(c) {
                assert_eq!(g.to_bits(), exp_ggml(x).to_bits(), "exp({x})");
            }
        }
        // Scores of a causal row: finite, then −∞ padding.
        for len in [1usize, 5, 8, 13, 64, 100] {
            let padded = len.div_ceil(8) * 8;
            let mut w: Vec<f32> = (0..padded)
                .map(|i| if i < len { ((i * 37 % 23) as f32 - 11.0) * 0.7 } else { f32::NEG_INFINITY })
                .collect();
            let max = w[..len].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut want = w.clone();
            normalize_scalar(&mut want, len, max);
            normalize(&mut w, len, max);
            assert_eq!(
                w.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "len {len}"
            );
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
    fn four_queries_at_once_equal_one_at_a_time_bit_for_bit() {
        let (hd, vs, n_pos) = (64, 80, 70);
        let k: Vec<f32> = (0..n_pos * hd).map(|i| to_f16_precision(((i * 7 % 23) as f32 - 11.0) / 9.0)).collect();
        let vt: Vec<f32> = (0..hd * vs).map(|i| to_f16_precision(((i * 5 % 17) as f32 - 8.0) / 5.0)).collect();
        let qs: Vec<Vec<f32>> =
            (0..4).map(|m| (0..hd).map(|i| ((i + 13 * m) as f32 * 0.3).sin() * 2.0).collect()).collect();
        // Causal (consecutive lengths), sliding windows, a window past all
        // keys, and a soft-cap.
        let cases: [([usize; 4], [usize; 4], f32); 5] = [
            ([0; 4], [1, 2, 3, 4], 0.0),
            ([0; 4], [61, 62, 63, 64], 0.0),
            ([10, 11, 12, 13], [61, 62, 63, 64], 0.0),
            ([0, 0, 40, 70], [33, 34, 35, 36], 0.0),
            ([0; 4], [17, 18, 19, 20], 30.0),
        ];
        for (first, len, softcap) in cases {
            let mut got = vec![vec![f32::NAN; hd]; 4];
            let [g0, g1, g2, g3] = &mut got[..] else { unreachable!() };
            let q4: [&[f32]; 4] = std::array::from_fn(|m| &qs[m][..]);
            let mut scratch = <[Scratch; 4]>::default();
            attend4(q4, &k, hd, &vt, vs, first, len, 0.125, softcap, [g0, g1, g2, g3], &mut scratch);
            for m in 0..4 {
                let mut want = vec![f32::NAN; hd];
                attend(
                    &qs[m],
                    &k,
                    hd,
                    &vt,
                    vs,
                    first[m],
                    len[m],
                    0.125,
                    softcap,
                    false,
                    &mut want,
                    &mut Scratch::default(),
                );
                let (g, w): (Vec<u32>, Vec<u32>) =
                    (got[m].iter().map(|x| x.to_bits()).collect(), want.iter().map(|x| x.to_bits()).collect());
                assert_eq!(g, w, "first {first:?} len {len:?} softcap {softcap}: query {m}");
            }
        }
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
