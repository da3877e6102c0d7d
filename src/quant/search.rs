//! The scale searches that ggml's quantizers share.
//!
//! Each function picks a scale (and for the asymmetric ones a minimum) for a
//! small group of values and the integer levels that go with it. The searches
//! compare errors that are often nearly equal, so the floating-point
//! operations happen in exactly the order ggml performs them (left to right,
//! one `f32` accumulator, no fused multiply-add): any reordering changes
//! output bytes. Integer levels are converted to `f32` where ggml converts
//! them.

/// Groups whose largest magnitude is below this are treated as all zero.
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// Round to the nearest integer, ties to even, as ggml's `nearest_int` does
/// by adding 1.5·2²³ and reading the mantissa. Meant for |x| ≤ 2²²; larger
/// or non-finite inputs give an unspecified (but never panicking) value.
#[inline(always)]
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0f32;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// The per-element weight of `make_qx_quants` when no weights are given.
#[inline(always)]
fn qx_weight(rmse_type: i32, x: f32) -> f32 {
    match rmse_type {
        1 => x * x,
        2 => 1.0,
        3 => x.abs(),
        _ => x.abs().sqrt(),
    }
}

/// Symmetric quantization of `x` to levels `-nmax..nmax-1` (stored in `l`
/// shifted by `nmax`), returning the scale.
///
/// `rmse_type` 0: plain rounding with `scale = max / -nmax`. Otherwise a
/// weighted least-squares scale (weights `qw`, or `x²`, 1, |x|, √|x| for
/// `rmse_type` 1, 2, 3, other) refined over 18 trial inverse scales around
/// `-nmax / max`; a negative `rmse_type` returns right after the first fit.
pub fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8], rmse_type: i32, qw: Option<&[f32]>) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let mut iscale = -(nmax as f32) / max;
    if rmse_type == 0 {
        for (li, &v) in l.iter_mut().zip(x) {
            let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
            *li = (nmax + q) as i8;
        }
        return 1.0 / iscale;
    }
    let (rmse_type, return_early) = if rmse_type < 0 { (-rmse_type, true) } else { (rmse_type, false) };
    let weight = |i: usize| qw.map_or_else(|| qx_weight(rmse_type, x[i]), |w| w[i]);
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = (q + nmax) as i8;
        let w = weight(i);
        let qf = q as f32;
        sumlx += w * x[i] * qf;
        suml2 += w * qf * qf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 { 0.5 * (scale + 1.0 / iscale) } else { 1.0 / iscale };
    }
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for i in 0..n {
            let qf = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1) as f32;
            let w = weight(i);
            sumlx += w * x[i] * qf;
            suml2 += w * qf * qf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
                l[i] = (nmax + q) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Q3_K's symmetric search: levels `-nmax..nmax-1` (stored shifted by
/// `nmax`); with `do_rmse`, up to five passes of coordinate descent on the
/// `x²`-weighted error.
pub fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8], do_rmse: bool) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    if do_rmse {
        let mut sumlx = 0.0f32;
        let mut suml2 = 0.0f32;
        for i in 0..n {
            let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
            l[i] = q as i8;
            let w = x[i] * x[i];
            let qf = q as f32;
            sumlx += w * x[i] * qf;
            suml2 += w * qf * qf;
        }
        for _ in 0..5 {
            let mut n_changed = 0;
            for i in 0..n {
                let w = x[i] * x[i];
                let li = l[i] as f32;
                let mut slx = sumlx - w * x[i] * li;
                if slx > 0.0 {
                    let mut sl2 = suml2 - w * li * li;
                    let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                    if new_l != l[i] as i32 {
                        let nf = new_l as f32;
                        slx += w * x[i] * nf;
                        sl2 += w * nf * nf;
                        if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            l[i] = new_l as i8;
                            sumlx = slx;
                            suml2 = sl2;
                            n_changed += 1;
                        }
                    }
                }
            }
            if n_changed == 0 {
                break;
            }
        }
        for li in l[..n].iter_mut() {
            *li += nmax as i8;
        }
        return if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    }
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = (q + nmax) as i8;
    }
    1.0 / iscale
}

/// Which of ggml's two asymmetric searches to run; they differ only in how
/// the weights default and in the "all equal" test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Qkx {
    /// `make_qkx2_quants`: weights required; degenerate when `max == min`.
    V2,
    /// `make_qkx3_quants`: weights default to `x²`; degenerate when `max <= min`.
    V3,
}

/// Parameters of the asymmetric (scale + min) searches.
#[derive(Clone, Copy, Debug)]
pub struct QkxParams {
    pub rmin: f32,
    pub rdelta: f32,
    pub nstep: i32,
    pub use_mad: bool,
}

#[allow(clippy::too_many_arguments)]
fn make_qkx_impl(
    kind: Qkx,
    nmax: i32,
    x: &[f32],
    weights: Option<&[f32]>,
    l: &mut [u8],
    laux: &mut [u8],
    p: QkxParams,
) -> (f32, f32) {
    let n = x.len();
    let w = |i: usize| weights.map_or_else(|| x[i] * x[i], |w| w[i]);
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = w(0);
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let wi = w(i);
        sum_w += wi;
        sum_x += wi * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    let degenerate = match kind {
        Qkx::V2 => max == min,
        Qkx::V3 => max <= min,
    };
    if degenerate {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * l[i] as f32 + min - x[i];
        let diff = if p.use_mad { diff.abs() } else { diff * diff };
        best += w(i) * diff;
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let wi = w(i);
            let qf = q as f32;
            sum_l += wi * qf;
            sum_l2 += wi * qf * qf;
            sum_xl += wi * qf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut err = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                let diff = if p.use_mad { diff.abs() } else { diff * diff };
                err += w(i) * diff;
            }
            if err < best {
                l[..n].copy_from_slice(&laux[..n]);
                best = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// ggml's `make_qkx2_quants`: asymmetric levels `0..=nmax` for
/// `x ≈ scale·l - min`; returns `(scale, min)` (the min as a positive
/// offset, ggml's `the_min`).
pub fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    p: QkxParams,
) -> (f32, f32) {
    make_qkx_impl(Qkx::V2, nmax, x, Some(weights), l, laux, p)
}

/// ggml's `make_qkx3_quants`: as [`make_qkx2_quants`] with weights
/// defaulting to `x²`.
pub fn make_qkx3_quants(
    nmax: i32,
    x: &[f32],
    weights: Option<&[f32]>,
    l: &mut [u8],
    laux: &mut [u8],
    p: QkxParams,
) -> (f32, f32) {
    make_qkx_impl(Qkx::V3, nmax, x, weights, l, laux, p)
}

/// ggml's `make_qp_quants`: quantize non-negative values (sub-block scales)
/// to `0..=nmax` with importance weights, a scan of 8 trial scales and up to
/// five passes of coordinate descent. Returns the scale.
pub fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], quant_weights: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for i in 0..n {
        l[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * l[i] as f32;
        best_mse += quant_weights[i] * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1f32 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let q = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * q as f32;
            mse += quant_weights[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    // The sums use the level before it is stored as a byte, as ggml does.
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).min(nmax);
        l[i] = q as u8;
        let w = quant_weights[i];
        let qf = q as f32;
        sumlx += w * x[i] * qf;
        suml2 += w * qf * qf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = quant_weights[i];
            let li = l[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != l[i] as i32 {
                    let nf = new_l as f32;
                    slx += w * x[i] * nf;
                    sl2 += w * nf * nf;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(3.49), 3);
        assert_eq!(nearest_int(-7.51), -8);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
    }

    #[test]
    fn qx_quants_fit_a_symmetric_grid_exactly() {
        // Values on the grid 0.5·(-8..7) are recovered exactly.
        let x: Vec<f32> = (0..32).map(|i| 0.5 * ((i % 16) as f32 - 8.0)).collect();
        let mut l = [0i8; 32];
        let d = make_qx_quants(8, &x, &mut l, 1, None);
        for (v, q) in x.iter().zip(l) {
            assert!((d * (q as f32 - 8.0) - v).abs() < 1e-6, "{d} {q} {v}");
        }
    }

    #[test]
    fn qkx_all_zero_and_constant_groups() {
        let p = QkxParams { rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
        let (mut l, mut aux) = ([9u8; 32], [0u8; 32]);
        let x = [0.0f32; 32];
        assert_eq!(make_qkx2_quants(15, &x, &[1.0; 32], &mut l, &mut aux, p), (0.0, 0.0));
        assert!(l.iter().all(|&q| q == 0));
        // A constant positive group: min is clamped to 0, scale·15 ≈ value.
        let x = [3.0f32; 32];
        let (s, m) = make_qkx3_quants(15, &x, None, &mut l, &mut aux, p);
        assert_eq!(m, 0.0);
        assert!((s * l[0] as f32 - 3.0).abs() < 1e-5);
    }

    #[test]
    fn qp_quants_nonnegative_scales() {
        let x: Vec<f32> = (0..16).map(|i| i as f32 * 0.25).collect();
        let mut l = [0u8; 16];
        let d = make_qp_quants(15, &x, &mut l, &[1.0; 16]);
        for (v, q) in x.iter().zip(l) {
            assert!(q <= 15);
            assert!((d * q as f32 - v).abs() <= 0.5 * d + 1e-6);
        }
    }
}
