//! ggml's i-quants. The 4-bit non-linear ones: values are 4-bit indices
//! into the fixed table [`KVALUES_IQ4NL`] (16 levels, denser near zero),
//! times a block scale.
//!
//! - [`iq4nl`]: IQ4_NL, blocks of 32 with one f16 scale (Q8_0 activations).
//! - [`iq4xs`]: IQ4_XS, super-blocks of 256 with an f16 scale and a 6-bit
//!   scale per 32-value sub-block (Q8_K activations).
//! - [`iq3xxs`], [`iq3s`]: IQ3_XXS and IQ3_S, super-blocks of 256 whose
//!   groups of 4 magnitudes are points of ggml's 3-bit grids
//!   ([`iq3_tables`]), signs stored apart; [`iq3`] is their shared search.
//! - [`iq2xxs`], [`iq2xs`], [`iq2s`]: IQ2_XXS, IQ2_XS and IQ2_S, groups of
//!   8 magnitudes on ggml's 2-bit grids of 256, 512 and 1024 points
//!   ([`iq2_tables`]), signs apart (IQ2_XXS and IQ2_XS: 7 bits per 8 values,
//!   the eighth implied by parity), a 4-bit scale per 32 (IQ2_XXS) or 16
//!   values; [`iq2`] is what they share.
//! - [`iq1s`], [`iq1m`]: IQ1_S and IQ1_M, groups of 8 levels −1, 0, 1 on
//!   ggml's 1-bit grid ([`iq1_tables`]) shifted by ±1/8, a 3-bit scale per
//!   32 (IQ1_S) or 16 (IQ1_M) values; [`iq1`] is their shared grid search.
//! - [`dot`]: their dot products (scalar reference and AVX2).
//! - `dequant_avx2`: AVX2 dequantizers, bit-identical to the scalar ones.
//! - [`gemm`]: AVX-512 VNNI tile kernels of the dot products for several
//!   tokens, bit-identical to the AVX2 dot products.
//!
//! Both quantizers are ggml's `quantize_row_iq4_nl_impl` as
//! `ggml_quantize_chunk` runs it (`quantize_iq4_nl` / `quantize_iq4_xs`,
//! ntry = 7), with and without importance weights, in ggml's order of float
//! operations. ggml needs no importance matrix for either type.

#[cfg(target_arch = "x86_64")]
pub mod dequant_avx2;
pub mod dot;
pub mod gemm;
pub mod iq1;
pub mod iq1_tables;
pub mod iq1m;
pub mod iq1s;
pub mod iq2;
pub mod iq2_tables;
pub mod iq2s;
pub mod iq2xs;
pub mod iq2xxs;
pub mod iq3;
pub mod iq3_tables;
pub mod iq3s;
pub mod iq3xxs;
pub mod iq4nl;
pub mod iq4xs;

use crate::quant::search::{nearest_int, GROUP_MAX_EPS};

/// ggml's `kvalues_iq4nl`: the 16 levels of IQ4_NL and IQ4_XS.
pub const KVALUES_IQ4NL: [i8; 16] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// The scale candidates each block's search tries on either side of the
/// first guess (`ntry` of `quantize_iq4_nl` / `quantize_iq4_xs`).
const NTRY: i32 = 7;

/// [`KVALUES_IQ4NL`] as f32 (exact).
const KVALUES_F32: [f32; 16] = {
    let mut v = [0f32; 16];
    let mut i = 0;
    while i < 16 {
        v[i] = KVALUES_IQ4NL[i] as f32;
        i += 1;
    }
    v
};

/// ggml's `best_index_int8` on [`KVALUES_IQ4NL`]: the index of the level
/// nearest to `x` (the upper one on a tie; 0 below the levels, 15 above
/// them and for NaN).
///
/// ggml bisects; between the end levels the bisection ends at the `mu`
/// with `v[mu−1] ≤ x < v[mu]`, which for increasing levels is the number
/// of levels `≤ x`, counted here without branches (the search calls this
/// 16 times per value, and the bisection's branches are unpredictable),
/// then ggml's final comparison in the same float arithmetic. Outside the
/// levels that comparison gives ggml's early answers (`x ≤ v[0]`: 0,
/// `x ≥ v[15]`: 15), infinities included.
#[inline]
pub(crate) fn best_index(x: f32) -> u8 {
    let v = &KVALUES_F32;
    let mut c = 0usize;
    for &level in v {
        c += (level <= x) as usize;
    }
    let mu = c.clamp(1, 15);
    let i = if x - v[mu - 1] < v[mu] - x { mu - 1 } else { mu };
    if x.is_nan() {
        15
    } else {
        i as u8
    }
}

/// ggml's bisection, the reference [`best_index`] is tested against.
#[cfg(test)]
fn best_index_bisect(x: f32) -> u8 {
    let v = &KVALUES_IQ4NL;
    if x <= v[0] as f32 {
        return 0;
    }
    if x >= v[15] as f32 {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < v[mav] as f32 {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - (v[mu - 1] as f32) < v[mu] as f32 - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// The quantized form of one (super-)block: f16 scale bits, the 6-bit
/// sub-block scales (IQ4_XS only) and the packed 4-bit indices.
pub(crate) struct Iq4Out<'a> {
    pub d: &'a mut half::f16,
    pub qs: &'a mut [u8],
    /// `(scales_h, scales_l)` for super-blocks of several sub-blocks.
    pub scales: Option<(&'a mut u16, &'a mut [u8; 4])>,
}

/// ggml's `quantize_row_iq4_nl_impl` with `ntry = 7` on one (super-)block
/// `x` of 32 (IQ4_NL) or 256 (IQ4_XS) values, optionally weighted by `qw`
/// (one weight per value of `x`).
pub(crate) fn quantize_superblock(x: &[f32], qw: Option<&[f32]>, out: Iq4Out<'_>) {
    let sbs = x.len();
    let nsub = sbs / 32;
    let values = &KVALUES_IQ4NL;
    let v0 = values[0] as f32;
    let mut sigma2 = 0.0f32;
    for &v in x {
        sigma2 += v * v;
    }
    sigma2 *= 2.0 / sbs as f32;

    let mut scales = [0f32; 8];
    let mut weight = [0f32; 32];
    let mut levels = [0u8; 256];
    out.qs.fill(0);
    *out.d = half::f16::from_f32(0.0);

    let (mut max_scale, mut amax_scale) = (0.0f32, 0.0f32);
    for ib in 0..nsub {
        let xb = &x[32 * ib..32 * ib + 32];
        match qw {
            Some(qw) => {
                let qw = &qw[32 * ib..32 * ib + 32];
                for j in 0..32 {
                    weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
                }
            }
            None => {
                for j in 0..32 {
                    weight[j] = xb[j] * xb[j];
                }
            }
        }
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in xb {
            let ax = v.abs();
            if ax > amax {
                amax = ax;
                max = v;
            }
        }
        if amax < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        // One pass of the search with inverse scale `id`: (Σ w·q·x, Σ w·q²).
        let sums = |id: f32| {
            // The levels first (independent of each other), then the sums
            // in ggml's order.
            let mut q = [0f32; 32];
            for j in 0..32 {
                q[j] = KVALUES_F32[best_index(id * xb[j]) as usize];
            }
            let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
            for j in 0..32 {
                let q = q[j];
                let w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            (sumqx, sumq2)
        };
        let d0 = -max / v0;
        let (sumqx, sumq2) = sums(1.0 / d0);
        let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
        let mut best = d * sumqx;
        for itry in -NTRY..=NTRY {
            let id = (itry + values[0] as i32) as f32 / max;
            let (sumqx, sumq2) = sums(id);
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        let abs_d = d.abs();
        if abs_d > amax_scale {
            amax_scale = abs_d;
            max_scale = d;
        }
    }

    match out.scales {
        Some((scales_h, scales_l)) => {
            *scales_h = 0;
            let d = -max_scale / 32.0;
            *out.d = half::f16::from_f32(d);
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            for ib in 0..nsub {
                let mut l = nearest_int(id * scales[ib]).clamp(-32, 31);
                let dl = d * l as f32;
                let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
                for j in 0..32 {
                    levels[32 * ib + j] = best_index(idl * x[32 * ib + j]);
                }
                l += 32;
                let (l_l, l_h) = ((l & 0xF) as u8, (l >> 4) as u16);
                if ib % 2 == 0 {
                    scales_l[ib / 2] = l_l;
                } else {
                    scales_l[ib / 2] |= l_l << 4;
                }
                *scales_h |= l_h << (2 * (ib % 8));
            }
        }
        None => {
            *out.d = half::f16::from_f32(scales[0]);
            let id = if scales[0] != 0.0 { 1.0 / scales[0] } else { 0.0 };
            for j in 0..sbs {
                levels[j] = best_index(id * x[j]);
            }
        }
    }

    for i in 0..sbs / 32 {
        for j in 0..16 {
            out.qs[16 * i + j] = levels[32 * i + j] | (levels[32 * i + 16 + j] << 4);
        }
    }
}

/// C's `MAX(a, b)`: `a > b ? a : b` (NaN handling included), as ggml's
/// quantizers take maxima.
#[inline]
pub(crate) fn cmax(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The neighbour list of a level set off a grid, as ggml's
/// `iq2xs_init_impl` / `iq3xs_init_impl` build it: every grid point at the
/// `nwant` smallest squared distances, by distance then index. `dist` holds
/// each point's `(distance, index)` and is sorted here; the count and the
/// indices are appended to `neighbours`, and the map entry pointing at them
/// (`-(offset + 1)`) is returned.
pub(crate) fn push_neighbours(dist: &mut [(i32, u16)], nwant: usize, neighbours: &mut Vec<u16>) -> i32 {
    dist.sort_unstable();
    let entry = -(neighbours.len() as i32 + 1);
    let start = neighbours.len();
    neighbours.push(0);
    let (mut d2, mut nhave) = (dist.first().map_or(0, |d| d.0), 1);
    for &(d, j) in dist.iter() {
        if d > d2 {
            if nhave == nwant {
                break;
            }
            d2 = d;
            nhave += 1;
        }
        neighbours.push(j);
    }
    neighbours[start] = (neighbours.len() - start - 1) as u16;
    entry
}

/// ggml's `iq{2,3}_find_best_neighbour` search: among the grid points
/// `list` (indices into `points`, the doubled odd levels `2·l + 1`), the
/// one nearest to `xval` at `scale` in weighted squared distance, the first
/// on a tie; the first of `list` where no distance is below `f32::MAX`
/// (ggml aborts there).
pub(crate) fn nearest_neighbour<const N: usize>(
    list: &[u16],
    points: &[[i8; N]],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if N == 8 && !list.is_empty() && crate::quant::simd::use_avx2() {
        let points: &[[i8; 8]] = bytemuck::cast_slice(points);
        // SAFETY: `use_avx2` holds: this CPU has AVX2, FMA and F16C.
        return unsafe { neighbour_avx2::nearest8(list, points, xval, weight, scale) };
    }
    nearest_neighbour_scalar(list, points, xval, weight, scale)
}

/// [`nearest_neighbour`], scalar reference.
pub(crate) fn nearest_neighbour_scalar<const N: usize>(
    list: &[u16],
    points: &[[i8; N]],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
) -> usize {
    let mut best_d2 = f32::MAX;
    let mut best = None;
    for &j in list {
        let pg = &points[j as usize];
        let mut d2 = 0.0f32;
        for i in 0..N {
            let diff = scale * pg[i] as f32 - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if d2 < best_d2 {
            best_d2 = d2;
            best = Some(j as usize);
        }
    }
    best.unwrap_or(list[0] as usize)
}

/// [`nearest_neighbour`] for 8-level grids (IQ2) with AVX2: eight
/// candidates at a time, one per lane, each lane's distance summed over the
/// coordinates in the scalar order with the same separate products and
/// differences (no fused multiply-add), so every distance has the scalar
/// bits; the lanes are then compared in list order as the scalar loop does.
#[cfg(target_arch = "x86_64")]
mod neighbour_avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must support AVX2; `list` is not empty, its entries index
    /// `points`, `xval` and `weight` hold at least 8 values.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn nearest8(list: &[u16], points: &[[i8; 8]], xval: &[f32], weight: &[f32], scale: f32) -> usize {
        let sv = _mm256_set1_ps(scale);
        let xv: [__m256; 8] = std::array::from_fn(|i| _mm256_set1_ps(xval[i]));
        let wv: [__m256; 8] = std::array::from_fn(|i| _mm256_set1_ps(weight[i]));
        // Within each 128-bit half (two candidates), coordinate i of both in word i.
        let pairs = _mm256_setr_epi8(
            0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15,
        );
        let mut best_d2 = f32::MAX;
        let mut best = None;
        for chunk in list.chunks(8) {
            let mut rows = [0u64; 8];
            for (r, &j) in rows.iter_mut().zip(chunk) {
                *r = u64::from_le_bytes(points[j as usize].map(|b| b as u8));
            }
            // SAFETY: `rows` is 8 u64: two loads of 32 bytes.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_si256(rows.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(rows[4..].as_ptr() as *const __m256i),
                )
            };
            let (a, b) = (_mm256_shuffle_epi8(a, pairs), _mm256_shuffle_epi8(b, pairs));
            let (a0, a1) = (_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
            let (b0, b1) = (_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b));
            // Dword k: coordinate k (or k + 4) of candidates 0..4, then 4..8.
            let (x, y) = (_mm_unpacklo_epi16(a0, a1), _mm_unpackhi_epi16(a0, a1));
            let (z, w) = (_mm_unpacklo_epi16(b0, b1), _mm_unpackhi_epi16(b0, b1));
            // Quadword: one coordinate of the 8 candidates.
            let c = [
                _mm_unpacklo_epi32(x, z),
                _mm_unpackhi_epi32(x, z),
                _mm_unpacklo_epi32(y, w),
                _mm_unpackhi_epi32(y, w),
            ];
            let mut d2 = _mm256_setzero_ps();
            for i in 0..8 {
                let q = if i % 2 == 0 { c[i / 2] } else { _mm_srli_si128::<8>(c[i / 2]) };
                let p = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
                let diff = _mm256_sub_ps(_mm256_mul_ps(sv, p), xv[i]);
                d2 = _mm256_add_ps(d2, _mm256_mul_ps(_mm256_mul_ps(wv[i], diff), diff));
            }
            let mut d = [0f32; 8];
            // SAFETY: `d` is 8 floats.
            unsafe { _mm256_storeu_ps(d.as_mut_ptr(), d2) };
            for (&dk, &j) in d.iter().zip(chunk) {
                if dk < best_d2 {
                    best_d2 = dk;
                    best = Some(j as usize);
                }
            }
        }
        best.unwrap_or(list[0] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_neighbour_searches_agree() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let points: Vec<[i8; 8]> = (0..512).map(|_| std::array::from_fn(|_| (2 * (next() % 3) + 1) as i8)).collect();
        for case in 0..3000 {
            let n = 1 + (next() % 40) as usize;
            // Repeated candidates and repeated points give exact ties.
            let list: Vec<u16> = (0..n).map(|_| (next() % if case % 3 == 0 { 8 } else { 512 }) as u16).collect();
            let xval: [f32; 8] = std::array::from_fn(|_| (next() % 1000) as f32 / 97.0);
            let weight: [f32; 8] =
                std::array::from_fn(|_| if case % 5 == 0 { 1.0 } else { (next() % 1000) as f32 / 311.0 });
            let scale = if case % 7 == 0 { 0.0 } else { (next() % 1000) as f32 / 503.0 };
            assert_eq!(
                nearest_neighbour(&list, &points, &xval, &weight, scale),
                nearest_neighbour_scalar(&list, &points, &xval, &weight, scale),
                "case {case}"
            );
        }
    }

    #[test]
    fn best_index_picks_the_nearest_level() {
        for i in -200..200 {
            let x = i as f32 * 0.75;
            let got = best_index(x) as usize;
            let dist = |k: usize| (x - KVALUES_IQ4NL[k] as f32).abs();
            assert!((0..16).all(|k| dist(got) <= dist(k)), "{x}: {got}");
        }
        // Ties go up (ggml compares with `<`).
        assert_eq!(best_index(-4.5), 8);
        assert_eq!(best_index(f32::NAN), 15);
    }

    #[test]
    fn best_index_equals_ggml_bisection() {
        // Every f32 in [-256, 256] with its low 8 mantissa bits zero (every
        // level, midpoint and tie is among them), the ends and NaN.
        let lo = (-256.0f32).to_bits();
        for bits in (0..=u32::MAX).step_by(256) {
            let x = f32::from_bits(bits);
            if x.abs() <= 256.0 || x.is_nan() || bits == lo {
                assert_eq!(best_index(x), best_index_bisect(x), "{x} ({bits:#010x})");
            }
        }
        for x in [f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.0, -0.0] {
            assert_eq!(best_index(x), best_index_bisect(x), "{x}");
        }
    }
}
