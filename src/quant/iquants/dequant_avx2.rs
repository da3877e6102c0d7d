//! AVX2 dequantizers of the i-quants. IQ4_NL/IQ4_XS: the 32 table levels of
//! a (sub-)block looked up with `pshufb`, converted to f32 eight at a time.
//! IQ3 and IQ2: each grid entry is loaded as floats from a copy of the grid
//! made at compile time ([`Grid8`], [`Grid4`]; the levels are small
//! integers, exact in f32) and its signs as an xor mask from [`SIGNS`];
//! IQ3_S and IQ2_XS form the byte offsets of a super-block's entries 16 at a
//! time in a vector first (their 9-bit indices cost several scalar steps
//! each), IQ3_S shifts its sign bits into the lanes, IQ2_XS reads each sign
//! mask by its 7-bit code ([`KSIGN_MASKS`], as IQ3_XXS does), and IQ2_XS/IQ2_S convert their
//! 16 scales eight at a time ([`iq2_scales`]). IQ1:
//! grid entries gathered and converted. Every value is then multiplied by
//! its scale, one product per value as the scalar references
//! (`dequantize_row_scalar`) do, and negated after the product where its
//! sign bit is set (the scalar `-v`), so the outputs are bit-identical.
//!
//! # Safety
//! Every function requires AVX2, FMA and F16C on the running CPU.

use std::arch::x86_64::*;

use super::dot::avx2::{iq3s_offsets, levels_32, table};
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

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3xxs(src: &[BlockIQ3XXS], dst: &mut [f32]) {
    use super::iq3xxs::aux;
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        for ib in 0..8 {
            let a = aux(b, ib);
            let db = _mm256_set1_ps(d * (0.5 + (a >> 28) as f32) * 0.5);
            let q = &b.qs[8 * ib..8 * ib + 8];
            for k in 0..4 {
                let v = load4x2(&IQ3XXS_F32.0[q[2 * k] as usize], &IQ3XXS_F32.0[q[2 * k + 1] as usize]);
                // SAFETY: an entry of `KSIGN_MASKS` is 8 u32.
                let m =
                    unsafe { _mm256_load_ps(KSIGN_MASKS.0[((a >> (7 * k)) & 127) as usize].as_ptr() as *const f32) };
                store_ps(&mut y[32 * ib + 8 * k..], _mm256_xor_ps(_mm256_mul_ps(db, v), m));
            }
        }
    }
}

/// The 4 levels of the [`IQ3S_F32`] entry at byte offset `o`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq3s_entry(o: u16) -> __m128 {
    debug_assert!((o as usize) < std::mem::size_of::<Grid4<512>>() && o.is_multiple_of(16));
    // SAFETY: `o` comes from `iq3s_offsets::<4>`: 16 times an index below 512,
    // so the 16 bytes read are one aligned entry of the 512.
    unsafe { _mm_load_ps((IQ3S_F32.0.as_ptr() as *const u8).add(o as usize) as *const f32) }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq3s(src: &[BlockIQ3S], dst: &mut [f32]) {
    use super::iq3s::{scale, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        // 16-byte entries of the f32 grid.
        let o = iq3s_offsets::<4>(b);
        for ib in 0..8 {
            let db = _mm256_set1_ps(d * scale(b, ib) as f32);
            let s = _mm256_set1_epi32(signs(b, ib) as i32);
            for k in 0..4 {
                let v = _mm256_set_m128(iq3s_entry(o[8 * ib + 2 * k + 1]), iq3s_entry(o[8 * ib + 2 * k]));
                // Sign bit 8k + j of the sub-block moved to the f32 sign bit of lane j.
                let j = _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(8 * k as i32));
                let m = _mm256_castsi256_ps(_mm256_slli_epi32::<31>(_mm256_srlv_epi32(s, j)));
                store_ps(&mut y[32 * ib + 8 * k..], _mm256_xor_ps(_mm256_mul_ps(db, v), m));
            }
        }
    }
}

/// `dl·±level` for one 2-bit grid super-block from the grid indices
/// `idx(ib32, l)` of its groups, its sign bits and the scale `dl(i)` of the
/// 16 values `i` (`d·(0.5 + ls)·0.25` of IQ2_XXS and IQ2_S), one product per
/// value as the scalar dequantizers.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_block<const N: usize>(
    y: &mut [f32],
    dl: impl Fn(usize) -> f32,
    grid: &Grid8<N>,
    idx: impl Fn(usize, usize) -> usize,
    signs: impl Fn(usize) -> u32,
) {
    for ib32 in 0..8 {
        let s = signs(ib32);
        let y = &mut y[32 * ib32..32 * ib32 + 32];
        for h in 0..2 {
            let dl = _mm256_set1_ps(dl(2 * ib32 + h));
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
        let dls = iq2_scales(b.d.to_f32(), b.scales);
        iq2_block(y, |i| dls[i], &IQ2S_F32, |ib32, l| index(b, 4 * ib32 + l), |ib32| signs(b, ib32));
    }
}

/// Per 7-bit sign code of IQ2_XXS and IQ2_XS, the xor masks of its 8
/// values: ggml's `ksigns_iq2xs` byte (the eighth bit making the number of
/// negatives even) expanded as in [`SIGNS`].
#[repr(C, align(64))]
struct KsignMasks([[u32; 8]; 128]);

static KSIGN_MASKS: KsignMasks = {
    let mut out = [[0u32; 8]; 128];
    let mut c = 0;
    while c < 128 {
        let byte = c | ((c as u32).count_ones() as usize & 1) << 7;
        out[c] = SIGNS.0[byte];
        c += 1;
    }
    KsignMasks(out)
};

/// Byte offsets of the 32 groups of an IQ2_XS super-block: into
/// [`IQ2XS_F32`] (`32·(code & 511)`) and into [`KSIGN_MASKS`]
/// (`32·(code >> 9)`), formed 16 at a time.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2xs_offsets(b: &BlockIQ2XS) -> ([u16; 32], [u16; 32]) {
    let (mut og, mut os) = ([0u16; 32], [0u16; 32]);
    for h in 0..2 {
        // SAFETY: `qs[32h..32h + 32]` is in bounds (64 bytes): 16 codes.
        let c = unsafe { _mm256_loadu_si256(b.qs[32 * h..].as_ptr() as *const __m256i) };
        let g = _mm256_slli_epi16::<5>(_mm256_and_si256(c, _mm256_set1_epi16(511)));
        let s = _mm256_and_si256(_mm256_srli_epi16::<4>(c), _mm256_set1_epi16(0x0FE0));
        // SAFETY: `og`/`os[16h..16h + 16]` are 32 bytes in bounds.
        unsafe {
            _mm256_storeu_si256(og[16 * h..].as_mut_ptr() as *mut __m256i, g);
            _mm256_storeu_si256(os[16 * h..].as_mut_ptr() as *mut __m256i, s);
        }
    }
    (og, os)
}

/// `d·(0.5 + ls)·0.25` for the 16 4-bit scales `ls` of `scales` (low
/// nibble first), eight at a time, rounded as the scalar expression.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn iq2_scales(d: f32, scales: [u8; 8]) -> [f32; 16] {
    let sc = _mm_cvtsi64_si128(i64::from_le_bytes(scales));
    let nib = _mm_set1_epi8(0x0F);
    let ls = _mm_unpacklo_epi8(_mm_and_si128(sc, nib), _mm_and_si128(_mm_srli_epi16::<4>(sc), nib));
    let mut out = [0f32; 16];
    for (h, o) in out.chunks_exact_mut(8).enumerate() {
        let l = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(if h == 0 { ls } else { _mm_srli_si128::<8>(ls) }));
        let dl = _mm256_mul_ps(
            _mm256_mul_ps(_mm256_set1_ps(d), _mm256_add_ps(_mm256_set1_ps(0.5), l)),
            _mm256_set1_ps(0.25),
        );
        store_ps(o, dl);
    }
    out
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xs(src: &[BlockIQ2XS], dst: &mut [f32]) {
    let grid = IQ2XS_F32.0.as_ptr() as *const u8;
    let masks = KSIGN_MASKS.0.as_ptr() as *const u8;
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let (og, os) = iq2xs_offsets(b);
        let dls = iq2_scales(d, b.scales);
        for ib16 in 0..16 {
            let dl = _mm256_set1_ps(dls[ib16]);
            for g in 2 * ib16..2 * ib16 + 2 {
                // SAFETY: `og[g]` is 32 times an index below 512 and `os[g]`
                // 32 times a code below 128: each read is one aligned entry.
                let (v, m) = unsafe {
                    (
                        _mm256_load_ps(grid.add(og[g] as usize) as *const f32),
                        _mm256_load_ps(masks.add(os[g] as usize) as *const f32),
                    )
                };
                store_ps(&mut y[8 * g..], _mm256_xor_ps(_mm256_mul_ps(dl, v), m));
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn iq2xxs(src: &[BlockIQ2XXS], dst: &mut [f32]) {
    use super::iq2xxs::{index, scale, signs};
    for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
        let d = b.d.to_f32();
        let dl = |i: usize| d * (0.5 + ((scale(b, i / 2) - 1) / 2) as f32) * 0.25;
        iq2_block(y, dl, &IQ2XXS_F32, |ib32, l| index(b, ib32, l), |ib32| signs(b, ib32));
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
