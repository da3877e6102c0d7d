//! ggml's legacy block types: 32 values per block, one f16 scale (plus an
//! f16 minimum for the `_1` variants).
//!
//! - [`q4`]: Q4_0 (symmetric 4-bit) and Q4_1 (4-bit with minimum).
//! - [`q5`]: Q5_0 and Q5_1 (a fifth bit per value in `qh`).
//! - [`q8`]: Q8_0 (weights and activations) and Q8_1 (activations of the
//!   `_1` types, carrying `d · Σq`).
//! - [`q1`]: Q1_0 (signs only, blocks of 128) and Q2_0 (2-bit codes,
//!   blocks of 64), ggml's newer low-bit types with Q8_0 activations.
//! - [`dot`]: their dot products with Q8_0 / Q8_1 activations.
//! - [`gemm`]: AVX-512 VNNI tile kernels of those products for several
//!   tokens, bit-identical to the AVX2 dot products.
//!
//! Without importance weights the quantizers are ggml's `quantize_row_*_ref`;
//! with them, ggml's weighted searches (`quantize_row_*_impl`), where each
//! value's weight is `w_j · sqrt(σ² + x_j²)` with σ² the row's mean square.

#[cfg(target_arch = "x86_64")]
pub mod act_avx2;
#[cfg(target_arch = "x86_64")]
pub mod dequant_avx2;
pub mod dot;
pub mod gemm;
pub mod q1;
pub mod q4;
pub mod q5;
pub mod q8;
#[cfg(target_arch = "x86_64")]
pub mod quant_avx2;

/// [`min_max`] of a block of 32 (AVX2 when available, the same values).
#[inline]
pub(crate) fn block_min_max(x: &[f32]) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if x.len() == 32 && crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` holds (AVX2, FMA, F16C); the block has 32 values.
        return unsafe { quant_avx2::min_max(x) };
    }
    min_max(x)
}

/// [`signed_absmax`] of a block of 32 (AVX2 when available, the same value).
#[inline]
pub(crate) fn block_signed_absmax(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if x.len() == 32 && crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` holds (AVX2, FMA, F16C); the block has 32 values.
        return unsafe { quant_avx2::signed_absmax(x) };
    }
    signed_absmax(x)
}

/// The 32 levels of a legacy reference quantizer (AVX2 when available,
/// the same bytes as [`block_levels_scalar`]).
#[inline]
pub(crate) fn block_levels(x: &[f32], m: f32, id: f32, add: f32, cap: Option<i32>) -> [u8; 32] {
    #[cfg(target_arch = "x86_64")]
    if x.len() == 32 && crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` holds (AVX2, FMA, F16C); the block has 32 values.
        return unsafe { quant_avx2::levels(x, m, id, add, cap) };
    }
    block_levels_scalar(x, m, id, add, cap)
}

/// The levels `(x_j − m)·id + add` of a block of 32 as the legacy reference
/// quantizers form them: C's float → int conversion ([`c_float_to_int`]),
/// the low byte as i8 ([`trunc_i8`]), at most `cap` (`None`: no cap, as
/// Q5_1's straight `uint8_t` conversion), as a byte. `m = 0` gives
/// `x_j·id + add` exactly (`x − 0.0` is `x`, signed zeros included).
pub(crate) fn block_levels_scalar(x: &[f32], m: f32, id: f32, add: f32, cap: Option<i32>) -> [u8; 32] {
    std::array::from_fn(|j| {
        let q = trunc_i8((x[j] - m) * id + add);
        cap.map_or(q, |c| q.min(c)) as u8
    })
}

/// The per-value weights ggml's legacy imatrix quantizers use for one block:
/// `qw[j] · sqrt(sigma2 + x[j]²)`.
#[inline]
pub(crate) fn block_weights(x: &[f32], qw: &[f32], sigma2: f32, out: &mut [f32; 32]) {
    for j in 0..32 {
        out[j] = qw[j] * (sigma2 + x[j] * x[j]).sqrt();
    }
}

/// Mean square of a whole row, accumulated left to right in f32 as ggml does.
#[inline]
pub(crate) fn row_sigma2(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s / x.len() as f32
}

/// Largest magnitude of a block and the signed value that has it (the first
/// one when several tie), as the symmetric legacy quantizers pick it.
#[inline]
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Minimum and maximum of a block (starting from ±f32::MAX, as ggml).
#[inline]
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `1/d`, or 0 for a zero scale.
#[inline]
pub(crate) fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// C's float → `int` conversion as x86-64 compilers emit it (`cvttss2si`):
/// truncation toward zero; NaN and values outside the `i32` range give
/// `i32::MIN` (the "integer indefinite" value). ggml relies on this when a
/// tiny block scale makes the inverse scale infinite.
#[inline]
pub(crate) fn c_float_to_int(v: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    }
}

/// C's float → `int8_t` conversion: the low byte of [`c_float_to_int`],
/// sign-extended.
#[inline]
pub(crate) fn trunc_i8(v: f32) -> i32 {
    c_float_to_int(v) as i8 as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks with the cases the vector steps must match the scalar ones on:
    /// zeros of both signs as extrema, ties in magnitude, NaN and infinities,
    /// values whose levels overflow the int conversion, and plain noise.
    fn blocks() -> Vec<[f32; 32]> {
        let mut seed = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let mut out = Vec::new();
        for case in 0..4000 {
            let mut b: [f32; 32] = std::array::from_fn(|_| next());
            match case % 10 {
                0 => b.iter_mut().for_each(|v| *v = v.abs()),
                1 => b.iter_mut().for_each(|v| *v = -v.abs()),
                2 => b.iter_mut().for_each(|v| *v = (*v * 3.0).round() * 0.5),
                3 => b.iter_mut().for_each(|v| *v = if *v > 0.0 { 0.0 } else { -0.0 }),
                4 => b[(case / 10) % 32] = f32::NAN,
                5 => b[(case / 10) % 32] = if case % 20 == 5 { f32::INFINITY } else { f32::NEG_INFINITY },
                6 => b.iter_mut().for_each(|v| *v *= 1e-38),
                7 => b.iter_mut().for_each(|v| *v = f32::NAN),
                _ => {}
            }
            if case % 3 == 0 {
                // Zeros of both signs next to positive or negative values.
                b[(case / 3) % 32] = 0.0;
                b[(case / 7) % 32] = -0.0;
            }
            out.push(b);
        }
        out
    }

    #[test]
    fn simd_and_scalar_block_steps_agree_bit_for_bit() {
        for (i, b) in blocks().iter().enumerate() {
            let (lo, hi) = block_min_max(b);
            let (slo, shi) = min_max(b);
            assert_eq!((lo.to_bits(), hi.to_bits()), (slo.to_bits(), shi.to_bits()), "block {i}: min/max");
            assert_eq!(block_signed_absmax(b).to_bits(), signed_absmax(b).to_bits(), "block {i}: absmax");
            let d = (hi - lo) / 15.0;
            for (m, id, add, cap) in [
                (0.0, inv(signed_absmax(b) / -8.0), 8.5, Some(15)),
                (0.0, inv(signed_absmax(b) / -16.0), 16.5, Some(31)),
                (lo, inv(d), 0.5, Some(15)),
                (lo, inv((hi - lo) / 31.0), 0.5, None),
                (lo, 3e38, 0.5, None),
            ] {
                assert_eq!(block_levels(b, m, id, add, cap), block_levels_scalar(b, m, id, add, cap), "block {i}");
            }
        }
    }
}
