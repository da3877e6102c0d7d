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
    make_qx_impl(nmax, x, l, rmse_type, qw, Some(LaneIsa::best()))
}

/// [`make_qx_quants`], its 18 trials evaluated side by side on `lanes` (for
/// groups of up to [`MAX_LANE_GROUP`]) or one after another.
fn make_qx_impl(nmax: i32, x: &[f32], l: &mut [i8], rmse_type: i32, qw: Option<&[f32]>, lanes: Option<LaneIsa>) -> f32 {
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
    if let Some(isa) = lanes.filter(|_| n <= MAX_LANE_GROUP) {
        let mut wv = [0f32; MAX_LANE_GROUP];
        for (i, wi) in wv[..n].iter_mut().enumerate() {
            *wi = weight(i);
        }
        if let Some((iscale, s)) = qx_search(isa, nmax, x, &wv[..n], max, best) {
            for i in 0..n {
                let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
                l[i] = (nmax + q) as i8;
            }
            scale = s;
        }
        return scale;
    }
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
    lanes: Option<LaneIsa>,
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
    let lanes = lanes.filter(|_| n <= MAX_LANE_GROUP);
    if let Some(isa) = lanes {
        let mut wv = [0f32; MAX_LANE_GROUP];
        for (i, wi) in wv[..n].iter_mut().enumerate() {
            *wi = w(i);
        }
        let mut trial = Trial { nmax, x, w: &wv[..n], min, max, sum_w, sum_x };
        let won = qkx_search(isa, &mut trial, p, &mut best, &mut l[..n]);
        if let Some(s) = won {
            scale = s;
            min = trial.min;
        }
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

/// Groups of up to this many values take the lane-parallel trial search.
const MAX_LANE_GROUP: usize = 32;
/// Trial scales evaluated side by side.
const LANES: usize = 16;

/// The trial scales of the asymmetric search, evaluated `LANES` at a time.
///
/// Each lane is one trial scale and runs exactly the operations the
/// one-trial-at-a-time loop runs, in the same order (its sums accumulate over
/// the values left to right, no fused multiply-add); only trials are
/// interleaved, so the compiler can keep them in vector registers. The
/// trials are then compared in their original order. ggml's loop is not
/// quite a set of independent trials: a winning trial's min becomes the
/// offset (and changes the range) of every later trial, so after a win that
/// moves the min, the lanes after it are evaluated again from there.
/// Checked against the one-at-a-time loop by
/// `tests::lane_search_equals_the_sequential_one` and by the golden vectors.
struct Trial<'a> {
    nmax: i32,
    x: &'a [f32],
    w: &'a [f32],
    /// The current offset (ggml's `min`, negative or zero).
    min: f32,
    max: f32,
    sum_w: f32,
    sum_x: f32,
}

/// The instruction set the lane search is compiled for (the same Rust, so
/// the same results; wider registers hold more trials at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LaneIsa {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl LaneIsa {
    fn best() -> LaneIsa {
        #[cfg(target_arch = "x86_64")]
        {
            if super::simd::use_avx512() {
                return LaneIsa::Avx512;
            }
            if super::simd::use_avx2() {
                return LaneIsa::Avx2;
            }
        }
        LaneIsa::Baseline
    }
}

/// `$name(isa, args…)` runs the `#[inline(always)]` function `$body` with
/// the registers of `isa` (which this CPU must support): the same Rust, so
/// the same results, compiled once per level.
macro_rules! on_lane_isa {
    ($vis:vis fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:path) => {
        $vis fn $name(isa: LaneIsa, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
                fn avx512($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                match isa {
                    // SAFETY: `LaneIsa::best` (or a test that checked
                    // `simd::avx512_detected`) chose this level on this CPU.
                    LaneIsa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above, AVX2 detected.
                    LaneIsa::Avx2 => return unsafe { avx2($($arg),*) },
                    LaneIsa::Baseline => {}
                }
            }
            $body($($arg),*)
        }
    };
}

on_lane_isa!(fn qkx_search(t: &mut Trial<'_>, p: QkxParams, best: &mut f32, l: &mut [u8]) -> Option<f32> = Trial::search_any);

on_lane_isa!(fn qx_search(nmax: i32, x: &[f32], w: &[f32], max: f32, best: f32) -> Option<(f32, f32)> = qx_trials);

/// The trials of `make_qx_quants` (inverse scales `-(nmax + 0.1·is)/max`,
/// `is` = -9..=9 without 0), side by side: each lane runs the operations of
/// one trial in ggml's order; the trials do not depend on each other (only
/// the comparison does, made afterwards in order). The last trial that beats
/// `best` and every earlier winner: its inverse scale and scale.
#[inline(always)]
fn qx_trials(nmax: i32, x: &[f32], w: &[f32], max: f32, mut best: f32) -> Option<(f32, f32)> {
    const TRIALS: usize = 18;
    let mut iscale = [0f32; TRIALS];
    for (k, v) in iscale.iter_mut().enumerate() {
        let is = if k < 9 { k as i32 - 9 } else { k as i32 - 8 };
        *v = -(nmax as f32 + 0.1f32 * is as f32) / max;
    }
    let (mut slx, mut sl2) = ([0f32; TRIALS], [0f32; TRIALS]);
    for (&xi, &wi) in x.iter().zip(w) {
        for k in 0..TRIALS {
            let qf = nearest_int(iscale[k] * xi).clamp(-nmax, nmax - 1) as f32;
            slx[k] += wi * xi * qf;
            sl2[k] += wi * qf * qf;
        }
    }
    let mut won = None;
    for k in 0..TRIALS {
        if sl2[k] > 0.0 && slx[k] * slx[k] > best * sl2[k] {
            let scale = slx[k] / sl2[k];
            best = scale * slx[k];
            won = Some((iscale[k], scale));
        }
    }
    won
}

impl Trial<'_> {
    #[inline(always)]
    fn search_any(&mut self, p: QkxParams, best: &mut f32, l: &mut [u8]) -> Option<f32> {
        if p.use_mad {
            self.search::<true>(p, best, l)
        } else {
            self.search::<false>(p, best, l)
        }
    }

    /// The last winning trial's scale (`self.min` then holds its min) with
    /// its levels in `l`, `best` lowered to its error; `None` if no trial
    /// beats the starting `best`.
    #[inline(always)]
    fn search<const MAD: bool>(&mut self, p: QkxParams, best: &mut f32, l: &mut [u8]) -> Option<f32> {
        let mut won = None;
        let mut is0 = 0;
        while is0 <= p.nstep {
            let (min, range) = (self.min, self.max - self.min);
            let mut iscale = [0f32; LANES];
            for (k, v) in iscale.iter_mut().enumerate() {
                *v = (p.rmin + p.rdelta * (is0 + k as i32) as f32 + self.nmax as f32) / range;
            }
            let (mut sl, mut sl2, mut sxl) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
            for (&xi, &wi) in self.x.iter().zip(self.w) {
                let xm = xi - min;
                for k in 0..LANES {
                    let q = nearest_int(iscale[k] * xm).clamp(0, self.nmax) as f32;
                    sl[k] += wi * q;
                    sl2[k] += wi * q * q;
                    sxl[k] += wi * q * xi;
                }
            }
            let (mut det, mut ts, mut tm) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
            for k in 0..LANES {
                det[k] = self.sum_w * sl2[k] - sl[k] * sl[k];
                ts[k] = (self.sum_w * sxl[k] - self.sum_x * sl[k]) / det[k];
                tm[k] = (sl2[k] * self.sum_x - sl[k] * sxl[k]) / det[k];
                if tm[k] > 0.0 {
                    tm[k] = 0.0;
                    ts[k] = sxl[k] / sl2[k];
                }
            }
            let mut err = [0f32; LANES];
            for (&xi, &wi) in self.x.iter().zip(self.w) {
                let xm = xi - min;
                for k in 0..LANES {
                    let q = nearest_int(iscale[k] * xm).clamp(0, self.nmax) as f32;
                    let diff = ts[k] * q + tm[k] - xi;
                    let diff = if MAD { diff.abs() } else { diff * diff };
                    err[k] += wi * diff;
                }
            }
            let mut next = is0 + LANES as i32;
            for k in 0..LANES {
                let is = is0 + k as i32;
                if is > p.nstep || !(det[k] > 0.0 && err[k] < *best) {
                    continue;
                }
                *best = err[k];
                won = Some(ts[k]);
                for (li, &xi) in l.iter_mut().zip(self.x) {
                    *li = nearest_int(iscale[k] * (xi - min)).clamp(0, self.nmax) as u8;
                }
                if tm[k].to_bits() != self.min.to_bits() {
                    // Later trials use the new min: evaluate them again.
                    self.min = tm[k];
                    next = is + 1;
                    break;
                }
            }
            is0 = next;
        }
        won
    }
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
    make_qkx_impl(Qkx::V2, nmax, x, Some(weights), l, laux, p, Some(LaneIsa::best()))
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
    make_qkx_impl(Qkx::V3, nmax, x, weights, l, laux, p, Some(LaneIsa::best()))
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
    fn qx_lane_trials_equal_the_sequential_ones() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for case in 0..4000 {
            let n = [16, 32, 8, 31][case % 4];
            let nmax = [4, 8, 16, 32][(case / 4) % 4];
            let rmse_type = [1, 2, 3, 4, 1][(case / 16) % 5];
            let style = (case / 80) % 4;
            let x: Vec<f32> = (0..n)
                .map(|i| match style {
                    0 => next() - 0.5,
                    1 => (next() * 8.0).round() / 8.0 - 0.5, // grid values: rounding ties
                    2 if i % 3 == 0 => 0.0,
                    2 => (next() - 0.3) * 1e-3,
                    _ => (next() - 0.5).powi(3) * 100.0,
                })
                .collect();
            let w: Vec<f32> = (0..n).map(|i| if i % 7 == 0 && style == 2 { 0.0 } else { next() + 0.01 }).collect();
            let qw = if case % 2 == 0 { Some(&w[..]) } else { None };
            let mut l1 = [0i8; 32];
            let a = make_qx_impl(nmax, &x, &mut l1, rmse_type, qw, None);
            for &isa in &lane_isas() {
                let mut l2 = [0i8; 32];
                let b = make_qx_impl(nmax, &x, &mut l2, rmse_type, qw, Some(isa));
                assert_eq!(a.to_bits(), b.to_bits(), "case {case} {isa:?}: {x:?}");
                assert_eq!(l1[..n], l2[..n], "case {case} {isa:?}");
            }
        }
    }

    /// Every lane level this CPU runs.
    fn lane_isas() -> Vec<LaneIsa> {
        #[allow(unused_mut)]
        let mut isas = vec![LaneIsa::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                isas.push(LaneIsa::Avx2);
            }
            if super::super::simd::avx512_detected() {
                isas.push(LaneIsa::Avx512);
            }
        }
        isas
    }

    #[test]
    fn lane_search_equals_the_sequential_one() {
        // A small deterministic generator (no dependency in unit tests).
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let params = [
            QkxParams { rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: true },
            QkxParams { rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false },
            QkxParams { rmin: -0.9, rdelta: 0.05, nstep: 36, use_mad: false },
            QkxParams { rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: false },
        ];
        let isas = lane_isas();
        for case in 0..4000 {
            let n = [16, 32, 8, 31][case % 4];
            let nmax = [3, 15, 31, 63][(case / 4) % 4];
            let p = params[(case / 16) % params.len()];
            let kind = if case % 3 == 0 { Qkx::V3 } else { Qkx::V2 };
            let style = (case / 64) % 5;
            let x: Vec<f32> = (0..n)
                .map(|i| match style {
                    0 => next() - 0.5,
                    1 => (next() * 8.0).round() / 8.0 - 0.25, // grid values: rounding ties
                    2 => next() * 3.0,                        // all positive: min stays 0
                    3 if i % 5 == 0 => 0.0,
                    3 => (next() - 0.7) * 1e-3,
                    _ => (next() - 0.5).powi(3) * 100.0,
                })
                .collect();
            let w: Vec<f32> = (0..n).map(|i| if style == 3 && i % 7 == 0 { 0.0 } else { next() + 0.01 }).collect();
            let weights = if case % 6 == 0 { None } else { Some(&w[..]) };
            let weights = if kind == Qkx::V2 { Some(&w[..]) } else { weights };
            let (mut l1, mut aux) = ([0u8; 32], [0u8; 32]);
            let a = make_qkx_impl(kind, nmax, &x, weights, &mut l1, &mut aux, p, None);
            for &isa in &isas {
                let mut l2 = [0u8; 32];
                let b = make_qkx_impl(kind, nmax, &x, weights, &mut l2, &mut aux, p, Some(isa));
                assert_eq!(
                    (a.0.to_bits(), a.1.to_bits()),
                    (b.0.to_bits(), b.1.to_bits()),
                    "case {case} {isa:?}: {x:?}"
                );
                assert_eq!(l1[..n], l2[..n], "case {case} {isa:?}");
            }
        }
    }

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
