//! ggml's k-quants: super-blocks of 256 values split into sub-blocks of 16
//! or 32, each with its own quantized scale (and minimum for Q2_K, Q4_K,
//! Q5_K), plus Q8_K, their activation type.
//!
//! One file per type. Without importance weights each quantizer is ggml's
//! `quantize_row_qX_K_ref`; with them, what `ggml_quantize_chunk` does with
//! `quant_weights` (`quantize_row_qX_K_impl`). Every search runs in ggml's
//! floating-point order; see [`super::search`].

#[cfg(target_arch = "x86_64")]
pub mod act_avx2;
#[cfg(target_arch = "x86_64")]
pub mod dequant_avx2;
pub mod dot;
pub mod gemm;
pub mod q2k;
pub mod q3k;
pub mod q4k;
pub mod q5k;
pub mod q6k;
pub mod q8k;

/// Sum of squares of a slice, left to right in f32 (ggml's loop).
#[inline]
pub(crate) fn sum_sq(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// Pack 256 2-bit levels the way Q2_K and Q3_K store them: byte `l` of each
/// 32-byte half holds values `l`, `l+32`, `l+64`, `l+96` of its 128 values.
#[inline]
pub(crate) fn pack_2bit(l: &[u8; 256], qs: &mut [u8; 64]) {
    for half in 0..2 {
        let (lv, q) = (&l[128 * half..], &mut qs[32 * half..]);
        for i in 0..32 {
            q[i] = lv[i] | (lv[i + 32] << 2) | (lv[i + 64] << 4) | (lv[i + 96] << 6);
        }
    }
}

/// The 2-bit level of value `i` (0..256) of a Q2_K/Q3_K `qs` array.
#[inline(always)]
pub(crate) fn unpack_2bit(qs: &[u8; 64], i: usize) -> u8 {
    let (half, r) = (i / 128, i % 128);
    (qs[32 * half + r % 32] >> (2 * (r / 32))) & 3
}

/// Scale and min (6 bits each) of sub-block `j` (0..8) of Q4_K/Q5_K.
#[inline(always)]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Store 6-bit scale `ls` and min `lm` of sub-block `j`, in increasing `j`
/// order into a zeroed array (the inverse of [`get_scale_min_k4`]). Values
/// above 63 are stored as ggml stores them: whole bytes for `j < 4`, low
/// nibble and bits 4..6 for `j >= 4`.
#[inline(always)]
pub(crate) fn set_scale_min_k4(j: usize, ls: u8, lm: u8, q: &mut [u8; 12]) {
    if j < 4 {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4);
        q[j - 4] |= (ls >> 4) << 6;
        q[j] |= (lm >> 4) << 6;
    }
}
