//! AVX2 conversions of F16 and BF16 rows to f32, eight values per step
//! (F16C's `vcvtph2ps`, BF16 by a 16-bit shift), the rest one at a time.
//! Both conversions are exact, so the outputs are the scalar ones bit for bit.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use half::{bf16, f16};

use crate::quant::x86::store_ps;

/// Eight 16-bit values from the start of `src`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_8x16<T: bytemuck::Pod>(src: &[T]) -> __m128i {
    let bytes: &[u8] = bytemuck::cast_slice(&src[..8]);
    assert_eq!(bytes.len(), 16);
    // SAFETY: `bytes` is 16 bytes long (checked above).
    unsafe { _mm_loadu_si128(bytes.as_ptr() as *const __m128i) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16(src: &[f16], dst: &mut [f32]) {
    let mut xs = src.chunks_exact(8);
    let mut ys = dst.chunks_exact_mut(8);
    for (x, y) in (&mut xs).zip(&mut ys) {
        store_ps(y, _mm256_cvtph_ps(load_8x16(x)));
    }
    for (y, x) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
        *y = x.to_f32();
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn bf16(src: &[bf16], dst: &mut [f32]) {
    let mut xs = src.chunks_exact(8);
    let mut ys = dst.chunks_exact_mut(8);
    for (x, y) in (&mut xs).zip(&mut ys) {
        let wide = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(load_8x16(x)));
        store_ps(y, _mm256_castsi256_ps(wide));
    }
    for (y, x) in ys.into_remainder().iter_mut().zip(xs.remainder()) {
        *y = x.to_f32();
    }
}
