//! ggml's ternary types (BitNet b1.58 / TriLM weights): values −1, 0, 1
//! times one f16 scale per super-block of 256, with Q8_K activations.
//!
//! - [`tq1_0`]: TQ1_0, 1.6875 bits per value: five trits per byte as a
//!   fixed-point fraction of 3^5 (a trit is read by multiplying the byte by
//!   a power of 3 and taking the top of `3·byte`), four in the last bytes.
//! - [`tq2_0`]: TQ2_0, 2.0625 bits per value: 2-bit codes `trit + 1`.
//! - [`dot`]: their dot products (scalar reference and AVX2).
//! - `dequant_avx2`: AVX2 dequantizers, bit-identical to the scalar ones.
//!
//! Both quantizers are ggml's reference ones (`quantize_row_tq{1,2}_0_ref`):
//! the scale is the block's largest magnitude, every value rounds to the
//! nearest of −d, 0, d. ggml ignores importance weights for both.

#[cfg(target_arch = "x86_64")]
pub mod dequant_avx2;
pub mod dot;
pub mod tq1_0;
pub mod tq2_0;

/// C's `lroundf(v) + 1` stored in an `int` as x86-64 glibc gives it:
/// rounding half away from zero; NaN and values outside the `long` range
/// give `LONG_MIN`, whose low 32 bits plus one are 1 (the zero trit). An
/// all-subnormal block has an infinite inverse scale and meets this.
#[inline]
pub(crate) fn lround_plus_one(v: f32) -> i32 {
    let l = if (-9.223_372e18..9.223_372e18).contains(&v) { v.round() as i64 } else { i64::MIN };
    l.wrapping_add(1) as i32
}

/// The largest magnitude of a super-block and its inverse (0 for an
/// all-zero block), as both reference quantizers compute them.
#[inline]
pub(crate) fn scale_and_inverse(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    for &v in x {
        // ggml's MAX(a, b): `a > b ? a : b`
        amax = if amax > v.abs() { amax } else { v.abs() };
    }
    (amax, if amax != 0.0 { 1.0 / amax } else { 0.0 })
}

/// Trit `n` (0..5) of a TQ1_0 byte: `(u8)(byte·3^n)·3 >> 8`, in 0..3.
#[inline]
pub(crate) fn trit(byte: u8, n: usize) -> i32 {
    const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];
    let q = byte.wrapping_mul(POW3[n]);
    ((q as u16 * 3) >> 8) as i32
}
