//! MXFP4 (OCP microscaling, as ggml stores it): blocks of 32 E2M1 values
//! (4-bit codes into [`KVALUES_FP4`], which holds the E2M1 values doubled)
//! sharing one E8M0 exponent byte `e`; a value is `KVALUES_FP4[code] ·
//! 2^(e − 128)` (ggml's `GGML_E8M0_TO_FP32_HALF`). Q8_0 activations.
//!
//! The quantizer is ggml's `quantize_row_mxfp4_ref`: `e = ⌊log2 amax⌋ − 2 +
//! 127`, so the block maximum lies in `[8, 16)` times the step `2^(e−128)`
//! (the largest level, E2M1's 6 doubled, is 12), each value the nearest
//! level (the first on a tie).
//! ggml ignores importance weights for MXFP4.
//!
//! The dot products ([`dot`]) follow ggml's: the scalar reference its
//! generic C code, the AVX2 kernel its AVX2 kernel (levels looked up with
//! `pshufb`, blocks in pairs into two float accumulators).

#[cfg(target_arch = "x86_64")]
pub mod dequant_avx2;
pub mod dot;

use crate::quant::blocks::{BlockMXFP4, BlockQ8_0, QK_MXFP4};
use crate::quant::legacy::c_float_to_int;
use crate::quant::{GgmlBlock, GgmlType};

/// ggml's `kvalues_mxfp4`: the E2M1 values times two, codes 8..16 negative.
pub const KVALUES_FP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `2^(e − 128)`, half of the E8M0 value `2^(e − 127)` (ggml's
/// `ggml_e8m0_to_fp32_half`, subnormal for `e < 2`).
#[inline]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000u32 << e } else { ((e as u32) - 1) << 23 };
    f32::from_bits(bits)
}

/// The code of the level nearest to `x` on the grid `d·KVALUES_FP4` (the
/// first of equally near ones; `|level·d − x|` in f32 as ggml).
#[inline]
fn best_index(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (KVALUES_FP4[0] as f32 * d - x).abs();
    for (i, &k) in KVALUES_FP4.iter().enumerate().skip(1) {
        let err = (k as f32 * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// The shared exponent ggml picks for a block whose largest magnitude is
/// `amax`: C's `(uint8_t)(floorf(log2f(amax)) − 2 + 127)` (the low byte of
/// the x86 conversion, so blocks below 2^−125 wrap), 0 for an all-zero block.
#[inline]
pub(crate) fn shared_exponent(amax: f32) -> u8 {
    if amax > 0.0 {
        c_float_to_int(amax.log2().floor() - 2.0 + 127.0) as u8
    } else {
        0
    }
}

impl GgmlBlock for BlockMXFP4 {
    const TYPE: GgmlType = GgmlType::MXFP4;
    const BLCK_SIZE: usize = QK_MXFP4;
    type VecDot = BlockQ8_0;
    #[cfg(target_arch = "x86_64")]
    const VEC_DOT_AVX2: Option<crate::quant::VecDotKernel<Self>> = Some(dot::avx2::mxfp4_q8_0);
    #[cfg(target_arch = "x86_64")]
    const DEQUANTIZE_AVX2: Option<crate::quant::DequantizeKernel<Self>> = Some(dequant_avx2::mxfp4);

    fn quantize_row(src: &[f32], dst: &mut [Self], _imatrix: Option<&[f32]>) {
        for (x, y) in src.chunks_exact(QK_MXFP4).zip(dst.iter_mut()) {
            let mut amax = 0.0f32;
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                }
            }
            y.e = shared_exponent(amax);
            let d = e8m0_to_f32_half(y.e);
            for j in 0..QK_MXFP4 / 2 {
                y.qs[j] = best_index(x[j], d) | (best_index(x[j + QK_MXFP4 / 2], d) << 4);
            }
        }
    }

    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]) {
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_MXFP4)) {
            let d = e8m0_to_f32_half(b.e);
            for j in 0..QK_MXFP4 / 2 {
                y[j] = KVALUES_FP4[(b.qs[j] & 0x0F) as usize] as f32 * d;
                y[j + QK_MXFP4 / 2] = KVALUES_FP4[(b.qs[j] >> 4) as usize] as f32 * d;
            }
        }
    }

    fn vec_dot_scalar(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        dot::scalar::mxfp4_q8_0(x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        for e in 0..=254u8 {
            assert_eq!(e8m0_to_f32_half(e) as f64, 2f64.powi(e as i32 - 128), "e = {e}");
        }
    }

    #[test]
    fn block_maximum_lands_in_the_top_binade() {
        for &amax in &[1.0f32, 0.75, 6.0, 5.99, 1e-3, 3e38] {
            let d = e8m0_to_f32_half(shared_exponent(amax));
            // d·KVALUES_FP4 reaches 12·d: the maximum is in [8·d, 16·d).
            assert!(amax / d >= 8.0 && amax / d < 16.0, "{amax}: {}", amax / d);
        }
        assert_eq!(shared_exponent(0.0), 0);
    }
}
