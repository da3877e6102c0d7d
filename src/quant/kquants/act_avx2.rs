//! AVX2 activation quantizer of Q8_K (`kquants::q8k`): per super-block the
//! value of largest magnitude (the first of equals; NaNs skipped), `iscale =
//! −127/max`, each level `nearest_int(iscale · x)` capped at 127, and the
//! sums of each 16 levels, the float operations of the scalar reference in
//! its order. A block with a product of magnitude 128 or more (or NaN:
//! only when the scale overflowed or the input is not finite) takes the
//! scalar path, so every byte equals the scalar one.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use crate::quant::blocks::{BlockQ8K, QK_K};
use crate::quant::x86::*;
use crate::quant::GgmlBlock;

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8k(src: &[f32], dst: &mut [BlockQ8K]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
        let mut acc = _mm256_setzero_ps();
        for c in x.chunks_exact(32) {
            for r in load_ps_32(c) {
                acc = max_abs(acc, r);
            }
        }
        let amax = hmax_ps(acc);
        if amax == 0.0 {
            y.d = 0.0;
            y.qs = [0; QK_K];
            y.bsums = [0; QK_K / 16];
            continue;
        }
        // The first value of magnitude `amax`.
        let sign = _mm256_set1_ps(-0.0);
        let target = _mm256_set1_ps(amax);
        let mut max = amax;
        for (k, c) in x.chunks_exact(8).enumerate() {
            // SAFETY: `c` is 8 floats.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(_mm256_andnot_ps(sign, v), target));
            if hit != 0 {
                max = x[8 * k + hit.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let s = _mm256_set1_ps(iscale);
        let products: [[__m256; 4]; 8] = std::array::from_fn(|c| load_ps_32(&x[32 * c..]).map(|r| _mm256_mul_ps(s, r)));
        if !products.iter().all(|p| all_abs_below(p, 128.0)) {
            BlockQ8K::quantize_row(x, std::slice::from_mut(y), None);
            continue;
        }
        let cap = _mm256_set1_epi32(127);
        for (c, p) in products.iter().enumerate() {
            let l = p.map(|r| _mm256_min_epi32(nearest_int_8(r), cap));
            y.bsums[2 * c] = hsum_epi32(_mm256_add_epi32(l[0], l[1])) as i16;
            y.bsums[2 * c + 1] = hsum_epi32(_mm256_add_epi32(l[2], l[3])) as i16;
            store_i8_32(&mut y.qs[32 * c..], pack_i32x32(l));
        }
        y.d = 1.0 / iscale;
    }
}
