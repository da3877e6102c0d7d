//! AVX2 dequantizers of IQ4_NL, IQ4_XS, IQ3_XXS and IQ3_S: the 32 table
//! levels of a (sub-)block looked up with `pshufb` (IQ3: grid entries
//! gathered, signs flipped afterwards), converted to f32 eight at a time
//! and multiplied by the block scale, one product per value as the scalar
//! references (`dequantize_row_scalar`) do, so the outputs are
//! bit-identical.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use super::dot::avx2::{entries, levels_32, sign_mask, table};
use super::iq4xs::sub_scale;
use crate::quant::blocks::*;
use crate::quant::x86::*;

/// `d · level` for the 32 levels of `qs`, stored to `y[..32]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_block(y: &mut [f32], table: __m256i, qs: &[u8; 16], d: __m256) {
    store_scaled_i8x32(y, levels_32(table, qs), d);
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq4nl(src: &[BlockIQ4NL], dst: &mut [f32]) {
    let table = table();
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK4_NL)) {
        store_block(y, table, &b.qs, f16_splat(b.d));
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq4xs(src: &[BlockIQ4XS], dst: &mut [f32]) {
    let table = table();
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for ib in 0..8 {
            let dl = _mm256_set1_ps(d * sub_scale(b, ib) as f32);
            let qs: &[u8; 16] = b.qs[16 * ib..16 * ib + 16].try_into().unwrap();
            store_block(&mut y[32 * ib..32 * ib + 32], table, qs, dl);
        }
    }
}

/// The 32 magnitudes of `grid` as f32 and, per value, the sign bit to flip
/// (`-0.0` where `mask` is 0xFF, else `0.0`), 8 at a time.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn signed_ps(grid: __m256i, mask: __m256i) -> ([__m256; 4], [__m256; 4]) {
    let m = _mm256_and_si256(mask, _mm256_set1_epi8(i8::MIN));
    (i8x32_to_ps(grid), i8x32_to_ps(m).map(|f| _mm256_and_ps(f, _mm256_set1_ps(-0.0))))
}

/// `±(db · level)` for the 32 magnitudes of `grid`, negated (sign bit
/// flipped, as the scalar `-v`) where `mask` is 0xFF, stored to `y[..32]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_signed(y: &mut [f32], grid: __m256i, mask: __m256i, db: __m256) {
    let (v, m) = signed_ps(grid, mask);
    for k in 0..4 {
        store_ps(&mut y[8 * k..], _mm256_xor_ps(_mm256_mul_ps(db, v[k]), m[k]));
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3xxs(src: &[BlockIQ3XXS], dst: &mut [f32]) {
    use super::iq3xxs::{aux, entry, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for ib in 0..8 {
            let db = _mm256_set1_ps(d * (0.5 + (aux(b, ib) >> 28) as f32) * 0.5);
            let grid = entries(|k| entry(b, ib, k));
            store_signed(&mut y[32 * ib..32 * ib + 32], grid, sign_mask(signs(b, ib)), db);
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3s(src: &[BlockIQ3S], dst: &mut [f32]) {
    use super::iq3s::{entry, scale, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for ib in 0..8 {
            let db = _mm256_set1_ps(d * scale(b, ib) as f32);
            let grid = entries(|k| entry(b, ib, k));
            store_signed(&mut y[32 * ib..32 * ib + 32], grid, sign_mask(signs(b, ib)), db);
        }
    }
}

/// `d·(0.5 + ls)·0.25·±level` for one 2-bit grid super-block from its grid
/// entries, sign bits and 4-bit scales `ls` per 16 values (IQ2_XXS, IQ2_XS,
/// IQ2_S), one product per value as the scalar dequantizers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_block(
    y: &mut [f32],
    d: f32,
    entry: impl Fn(usize, usize) -> u64,
    signs: impl Fn(usize) -> u32,
    ls: impl Fn(usize) -> u8,
) {
    for ib32 in 0..8 {
        let g = |l: usize| entry(ib32, l) as i64;
        let grid = _mm256_setr_epi64x(g(0), g(1), g(2), g(3));
        let mask = sign_mask(signs(ib32));
        let (v, m) = signed_ps(grid, mask);
        let y = &mut y[32 * ib32..32 * ib32 + 32];
        for k in 0..4 {
            let dl = _mm256_set1_ps(d * (0.5 + ls(2 * ib32 + k / 2) as f32) * 0.25);
            store_ps(&mut y[8 * k..], _mm256_xor_ps(_mm256_mul_ps(dl, v[k]), m[k]));
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2s(src: &[BlockIQ2S], dst: &mut [f32]) {
    use super::iq2s::{entry, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let ls = |i: usize| (b.scales[i / 2] >> (4 * (i % 2))) & 0x0F;
        iq2_block(y, b.d.to_f32(), |ib32, l| entry(b, 4 * ib32 + l), |ib32| signs(b, ib32), ls);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xs(src: &[BlockIQ2XS], dst: &mut [f32]) {
    use super::iq2xs::{entry, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let ls = |i: usize| (b.scales[i / 2] >> (4 * (i % 2))) & 0x0F;
        iq2_block(y, b.d.to_f32(), |ib32, l| entry(b, 4 * ib32 + l), |ib32| signs(b, ib32), ls);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xxs(src: &[BlockIQ2XXS], dst: &mut [f32]) {
    use super::iq2xxs::{entry, scale, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let ls = |i: usize| ((scale(b, i / 2) - 1) / 2) as u8;
        iq2_block(y, b.d.to_f32(), |ib32, l| entry(b, ib32, l), |ib32| signs(b, ib32), ls);
    }
}

/// `dl·(level + delta)` for the 8 levels of each of 4 grid entries, one
/// `(dl, delta)` per entry, stored to `y[..32]` (the sum is exact, the
/// product rounded once, as the scalar references).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store_iq1(y: &mut [f32], grid: [u64; 4], f: impl Fn(usize) -> (f32, f32)) {
    let v = i8x32_to_ps(_mm256_setr_epi64x(grid[0] as i64, grid[1] as i64, grid[2] as i64, grid[3] as i64));
    for k in 0..4 {
        let (dl, delta) = f(k);
        store_ps(&mut y[8 * k..], _mm256_mul_ps(_mm256_set1_ps(dl), _mm256_add_ps(v[k], _mm256_set1_ps(delta))));
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq1s(src: &[BlockIQ1S], dst: &mut [f32]) {
    use super::iq1::IQ1S_DELTA;
    use super::iq1s::{entry, negative_shift, scale};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for ib in 0..8 {
            let dl = d * scale(b, ib) as f32;
            let delta = if negative_shift(b, ib) { -IQ1S_DELTA } else { IQ1S_DELTA };
            let grid = std::array::from_fn(|k| entry(b, ib, k));
            store_iq1(&mut y[32 * ib..32 * ib + 32], grid, |_| (dl, delta));
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq1m(src: &[BlockIQ1M], dst: &mut [f32]) {
    use super::iq1::IQ1S_DELTA;
    use super::iq1m::{entry, negative_shift, scale, scale_words, super_scale};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let sc = scale_words(b);
        let d = super_scale(&sc).to_f32();
        for ib in 0..8 {
            let grid = std::array::from_fn(|k| entry(b, 4 * ib + k));
            store_iq1(&mut y[32 * ib..32 * ib + 32], grid, |k| {
                let g = 4 * ib + k;
                (d * scale(&sc, g / 2) as f32, if negative_shift(b, g) { -IQ1S_DELTA } else { IQ1S_DELTA })
            });
        }
    }
}
