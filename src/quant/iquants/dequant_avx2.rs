//! AVX2 dequantizers of the i-quants. IQ4_NL/IQ4_XS: the 32 table levels of
//! a (sub-)block looked up with `pshufb`, converted to f32 eight at a time.
//! IQ3 and IQ2: each grid entry is loaded as floats from a copy of the grid
//! made at compile time ([`Grid8`], [`Grid4`]; the levels are small
//! integers, exact in f32) and its signs as an xor mask from [`SIGNS`]. IQ1:
//! grid entries gathered and converted. Every value is then multiplied by
//! its scale, one product per value as the scalar references
//! (`dequantize_row_scalar`) do, and negated after the product where its
//! sign bit is set (the scalar `-v`), so the outputs are bit-identical.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use super::dot::avx2::{levels_32, table};
use super::iq2_tables::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};
use super::iq3_tables::{IQ3S_GRID, IQ3XXS_GRID};
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

/// A grid of 8-level entries as f32, aligned so that no entry crosses a
/// cache line.
#[repr(C, align(64))]
struct Grid8<const N: usize>([[f32; 8]; N]);

/// A grid of 4-level entries as f32.
#[repr(C, align(64))]
struct Grid4<const N: usize>([[f32; 4]; N]);

const fn grid8<const N: usize>(g: &[u64; N]) -> Grid8<N> {
    let mut out = [[0f32; 8]; N];
    let mut i = 0;
    while i < N {
        let mut j = 0;
        while j < 8 {
            out[i][j] = ((g[i] >> (8 * j)) & 0xFF) as f32;
            j += 1;
        }
        i += 1;
    }
    Grid8(out)
}

const fn grid4<const N: usize>(g: &[u32; N]) -> Grid4<N> {
    let mut out = [[0f32; 4]; N];
    let mut i = 0;
    while i < N {
        let mut j = 0;
        while j < 4 {
            out[i][j] = ((g[i] >> (8 * j)) & 0xFF) as f32;
            j += 1;
        }
        i += 1;
    }
    Grid4(out)
}

static IQ2XXS_F32: Grid8<256> = grid8(&IQ2XXS_GRID);
static IQ2XS_F32: Grid8<512> = grid8(&IQ2XS_GRID);
static IQ2S_F32: Grid8<1024> = grid8(&IQ2S_GRID);
static IQ3XXS_F32: Grid4<256> = grid4(&IQ3XXS_GRID);
static IQ3S_F32: Grid4<512> = grid4(&IQ3S_GRID);

/// Per sign byte, the xor masks of its 8 values: the f32 sign bit where the
/// value's bit is set.
#[repr(C, align(64))]
struct Signs([[u32; 8]; 256]);

static SIGNS: Signs = {
    let mut out = [[0u32; 8]; 256];
    let mut i = 0;
    while i < 256 {
        let mut j = 0;
        while j < 8 {
            out[i][j] = if (i >> j) & 1 == 1 { 0x8000_0000 } else { 0 };
            j += 1;
        }
        i += 1;
    }
    Signs(out)
};

/// `±(dl · level)` for the 8 levels `v`, negated where bit `j` of `sign`
/// is set, stored to `y[..8]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store8(y: &mut [f32], v: __m256, sign: u32, dl: __m256) {
    // SAFETY: an entry of `SIGNS` is 8 u32.
    let m = unsafe { _mm256_loadu_ps(SIGNS.0[(sign & 0xFF) as usize].as_ptr() as *const f32) };
    store_ps(y, _mm256_xor_ps(_mm256_mul_ps(dl, v), m));
}

/// The 8 levels of an entry of an 8-level grid.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(e: &[f32; 8]) -> __m256 {
    // SAFETY: `e` is 8 floats.
    unsafe { _mm256_loadu_ps(e.as_ptr()) }
}

/// The 8 levels of two entries of a 4-level grid.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load4x2(a: &[f32; 4], b: &[f32; 4]) -> __m256 {
    // SAFETY: `a` and `b` are 4 floats each.
    unsafe { _mm256_set_m128(_mm_loadu_ps(b.as_ptr()), _mm_loadu_ps(a.as_ptr())) }
}

/// `±(db · level)` for one IQ3 sub-block of 32 values: grid indices `idx(k)`
/// of its 8 entries and its 4 sign bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3_block<const N: usize>(
    y: &mut [f32],
    grid: &Grid4<N>,
    idx: impl Fn(usize) -> usize,
    signs: u32,
    db: __m256,
) {
    for k in 0..4 {
        let v = load4x2(&grid.0[idx(2 * k)], &grid.0[idx(2 * k + 1)]);
        store8(&mut y[8 * k..], v, signs >> (8 * k), db);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3xxs(src: &[BlockIQ3XXS], dst: &mut [f32]) {
    use super::iq3xxs::{aux, index, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for ib in 0..8 {
            let db = _mm256_set1_ps(d * (0.5 + (aux(b, ib) >> 28) as f32) * 0.5);
            iq3_block(&mut y[32 * ib..32 * ib + 32], &IQ3XXS_F32, |k| index(b, ib, k), signs(b, ib), db);
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3s(src: &[BlockIQ3S], dst: &mut [f32]) {
    use super::iq3s::{index, scale, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for ib in 0..8 {
            let db = _mm256_set1_ps(d * scale(b, ib) as f32);
            iq3_block(&mut y[32 * ib..32 * ib + 32], &IQ3S_F32, |k| index(b, ib, k), signs(b, ib), db);
        }
    }
}

/// `d·(0.5 + ls)·0.25·±level` for one 2-bit grid super-block from the grid
/// indices `idx(ib32, l)` of its groups, its sign bits and its 4-bit scales
/// `ls` per 16 values (IQ2_XXS, IQ2_XS, IQ2_S), one product per value as
/// the scalar dequantizers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_block<const N: usize>(
    y: &mut [f32],
    d: f32,
    grid: &Grid8<N>,
    idx: impl Fn(usize, usize) -> usize,
    signs: impl Fn(usize) -> u32,
    ls: impl Fn(usize) -> u8,
) {
    for ib32 in 0..8 {
        let s = signs(ib32);
        let y = &mut y[32 * ib32..32 * ib32 + 32];
        for h in 0..2 {
            let dl = _mm256_set1_ps(d * (0.5 + ls(2 * ib32 + h) as f32) * 0.25);
            for l in 2 * h..2 * h + 2 {
                store8(&mut y[8 * l..], load8(&grid.0[idx(ib32, l)]), s >> (8 * l), dl);
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2s(src: &[BlockIQ2S], dst: &mut [f32]) {
    use super::iq2s::{index, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let ls = |i: usize| (b.scales[i / 2] >> (4 * (i % 2))) & 0x0F;
        iq2_block(y, b.d.to_f32(), &IQ2S_F32, |ib32, l| index(b, 4 * ib32 + l), |ib32| signs(b, ib32), ls);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xs(src: &[BlockIQ2XS], dst: &mut [f32]) {
    use super::iq2xs::{index, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let ls = |i: usize| (b.scales[i / 2] >> (4 * (i % 2))) & 0x0F;
        iq2_block(y, b.d.to_f32(), &IQ2XS_F32, |ib32, l| index(b, 4 * ib32 + l), |ib32| signs(b, ib32), ls);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xxs(src: &[BlockIQ2XXS], dst: &mut [f32]) {
    use super::iq2xxs::{index, scale, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let ls = |i: usize| ((scale(b, i / 2) - 1) / 2) as u8;
        iq2_block(y, b.d.to_f32(), &IQ2XXS_F32, |ib32, l| index(b, ib32, l), |ib32| signs(b, ib32), ls);
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
        // The 16 scales and 32 shifts of the super-block first (each scale
        // serves two groups; computed per group they were a third of the time).
        let dl: [f32; 16] = std::array::from_fn(|i| d * scale(&sc, i) as f32);
        let delta: [f32; 32] = std::array::from_fn(|g| if negative_shift(b, g) { -IQ1S_DELTA } else { IQ1S_DELTA });
        for ib in 0..8 {
            let grid = std::array::from_fn(|k| entry(b, 4 * ib + k));
            store_iq1(&mut y[32 * ib..32 * ib + 32], grid, |k| (dl[(4 * ib + k) / 2], delta[4 * ib + k]));
        }
    }
}
