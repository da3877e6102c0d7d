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

/// C's float → `uint8_t` conversion: the low byte of [`c_float_to_int`].
#[inline]
pub(crate) fn trunc_u8(v: f32) -> u8 {
    c_float_to_int(v) as u8
}
