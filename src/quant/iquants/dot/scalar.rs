//! Scalar reference dot products, in the float order of ggml's generic C
//! kernels (`ggml_vec_dot_iq4_nl_q8_0_generic`,
//! `ggml_vec_dot_iq4_xs_q8_K_generic`, `ggml_vec_dot_iq3_xxs_q8_K_generic`,
//! `ggml_vec_dot_iq3_s_q8_K_generic`, `ggml_vec_dot_iq2_s_q8_K_generic`,
//! `ggml_vec_dot_iq1_s_q8_K_generic`, `ggml_vec_dot_iq1_m_q8_K_generic`), and
//! the batch products.

use crate::quant::blocks::*;
use crate::quant::iquants::iq4xs::sub_scale;
use crate::quant::iquants::KVALUES_IQ4NL;
use crate::quant::iquants::{iq1m, iq1s, iq2s, iq2xs, iq2xxs, iq3s, iq3xxs};

/// Σ of `level(q4)·q8` over 32 values: 16 bytes of nibbles (low: values
/// 0..16, high: 16..32) against 32 activation levels.
#[inline(always)]
fn block_sum(qs: &[u8], q8: &[i8]) -> i32 {
    let (mut s1, mut s2) = (0i32, 0i32);
    for j in 0..16 {
        s1 += q8[j] as i32 * KVALUES_IQ4NL[(qs[j] & 0x0F) as usize] as i32;
        s2 += q8[j + 16] as i32 * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as i32;
    }
    s1 + s2
}

/// Σ over blocks of `d_x·d_y·Σ level·q8`.
pub fn iq4nl_q8_0(x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let d = b.d.to_f32() * a.d.to_f32();
        sumf += d * block_sum(&a.qs, &b.qs) as f32;
    }
    sumf
}

/// Σ over super-blocks and sub-blocks of `d_x·d_y·(ls−32)·Σ level·q8`.
pub fn iq4xs_q8k(x: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let d4d8 = a.d.to_f32() * b.d;
        for ib in 0..8 {
            let dl = d4d8 * sub_scale(a, ib) as f32;
            sumf += dl * block_sum(&a.qs[16 * ib..16 * ib + 16], &b.qs[32 * ib..32 * ib + 32]) as f32;
        }
    }
    sumf
}

/// llamafile's tinyBLAS IQ4_NL product (llama.cpp's products of 2 or more
/// tokens): per block 8 integer lanes of 4 consecutive products (values
/// 0..16 from the low nibbles, 16..32 from the high ones, as the AVX2
/// kernels lay them out), each accumulated as `lane = fma(d_x·d_y, sum,
/// lane)` over all blocks, then ggml's 8-lane horizontal sum.
pub fn iq4nl_batch(x: &[BlockIQ4NL], y: &[BlockQ8_0]) -> f32 {
    let mut acc = [0f32; 8];
    for (a, b) in x.iter().zip(y) {
        let d = a.d.to_f32() * b.d.to_f32();
        for (k, l) in acc.iter_mut().enumerate() {
            let s: i32 = (4 * k..4 * k + 4)
                .map(|v| {
                    let q = if v < 16 { a.qs[v] & 0x0F } else { a.qs[v - 16] >> 4 };
                    KVALUES_IQ4NL[q as usize] as i32 * b.qs[v] as i32
                })
                .sum();
            *l = d.mul_add(s as f32, *l);
        }
    }
    let h: [f32; 4] = std::array::from_fn(|i| acc[i + 4] + acc[i]);
    (h[0] + h[2]) + (h[1] + h[3])
}

/// ggml's tiled-GEMM IQ4_XS product (llama.cpp's products of 8 or more
/// tokens): per super-block the exact `s = Σ_ib (ls_ib−32)·Σ level·q8`, then
/// `acc = fma(d_x·s, d_y, acc)`.
pub fn iq4xs_batch(x: &[BlockIQ4XS], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let s: i32 = (0..8)
            .map(|ib| sub_scale(a, ib) * block_sum(&a.qs[16 * ib..16 * ib + 16], &b.qs[32 * ib..32 * ib + 32]))
            .sum();
        (a.d.to_f32() * s as f32).mul_add(b.d, acc)
    })
}

/// `Σ_ib (2·ls+1)·Σ level·sign·q8` of an IQ3 super-block: exact integers.
#[inline(always)]
fn iq3_sum(sub_block: impl Fn(usize) -> ([i8; 32], i32), q8: &[i8]) -> i32 {
    (0..8)
        .map(|ib| {
            let (v, ls) = sub_block(ib);
            let s: i32 = v.iter().zip(&q8[32 * ib..32 * ib + 32]).map(|(&a, &b)| a as i32 * b as i32).sum();
            s * ls
        })
        .sum()
}

/// ggml's generic IQ3_XXS·Q8_K: `0.25·Σ d_x·d_y·Σ_ib (2·ls+1)·Σ level·q8`.
pub fn iq3xxs_q8k(x: &[BlockIQ3XXS], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let d = a.d.to_f32() * b.d;
        sumf += d * iq3_sum(|ib| iq3xxs::sub_block(a, ib), &b.qs) as f32;
    }
    0.25 * sumf
}

/// ggml's generic IQ3_S·Q8_K: `Σ d_x·d_y·Σ_ib (1+2·ls)·Σ level·q8`.
pub fn iq3s_q8k(x: &[BlockIQ3S], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let d = a.d.to_f32() * b.d;
        sumf += d * iq3_sum(|ib| iq3s::sub_block(a, ib), &b.qs) as f32;
    }
    sumf
}

/// ggml's tiled-GEMM IQ3_XXS product (8 or more tokens): per super-block
/// the exact integer sum `s`, then `acc = fma(d_x/4·s, d_y, acc)` (the tile
/// stores `d_x·0.25`).
pub fn iq3xxs_batch(x: &[BlockIQ3XXS], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let s = iq3_sum(|ib| iq3xxs::sub_block(a, ib), &b.qs);
        (a.d.to_f32() * 0.25 * s as f32).mul_add(b.d, acc)
    })
}

/// ggml's tiled-GEMM IQ3_S product (8 or more tokens): per super-block the
/// exact integer sum `s`, then `acc = fma(d_x·s, d_y, acc)`.
pub fn iq3s_batch(x: &[BlockIQ3S], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let s = iq3_sum(|ib| iq3s::sub_block(a, ib), &b.qs);
        (a.d.to_f32() * s as f32).mul_add(b.d, acc)
    })
}

/// `Σ_ib16 (2·ls+1)·Σ level·sign·q8` of a 2-bit grid super-block (IQ2_XXS,
/// IQ2_XS, IQ2_S) from its signed levels per 32 values and its odd scales
/// per 16: exact integers.
#[inline(always)]
fn iq2_sum(values: impl Fn(usize) -> [i8; 32], scale: impl Fn(usize) -> i32, q8: &[i8]) -> i32 {
    (0..8)
        .map(|ib32| {
            let v = values(ib32);
            let half =
                |h: usize| -> i32 { (16 * h..16 * h + 16).map(|i| v[i] as i32 * q8[32 * ib32 + i] as i32).sum() };
            scale(2 * ib32) * half(0) + scale(2 * ib32 + 1) * half(1)
        })
        .sum()
}

#[inline(always)]
fn iq2s_sum(a: &BlockIQ2S, q8: &[i8]) -> i32 {
    iq2_sum(|ib| iq2s::values(a, ib), |i| iq2s::scale(a, i), q8)
}

#[inline(always)]
fn iq2xs_sum(a: &BlockIQ2XS, q8: &[i8]) -> i32 {
    iq2_sum(|ib| iq2xs::values(a, ib), |i| iq2xs::scale(a, i), q8)
}

#[inline(always)]
fn iq2xxs_sum(a: &BlockIQ2XXS, q8: &[i8]) -> i32 {
    iq2_sum(|ib| iq2xxs::values(a, ib), |i| iq2xxs::scale(a, i / 2), q8)
}

/// ggml's generic 2-bit grid products (`ggml_vec_dot_iq2_{xxs,xs,s}_q8_K_generic`):
/// `0.125·Σ d_x·d_y·(integer sum)`.
#[inline(always)]
fn iq2_q8k<B>(x: &[B], y: &[BlockQ8K], d: impl Fn(&B) -> f32, sum: impl Fn(&B, &[i8]) -> i32) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        sumf += d(a) * b.d * sum(a, &b.qs) as f32;
    }
    0.125 * sumf
}

/// ggml's tiled-GEMM products of the 2-bit grid types (8 or more tokens):
/// per super-block the exact integer sum `s`, then
/// `acc = fma(d_x/8·s, d_y, acc)` (the tile stores `d_x·0.125`).
#[inline(always)]
fn iq2_batch<B>(x: &[B], y: &[BlockQ8K], d: impl Fn(&B) -> f32, sum: impl Fn(&B, &[i8]) -> i32) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| (d(a) * 0.125 * sum(a, &b.qs) as f32).mul_add(b.d, acc))
}

/// ggml's generic IQ2_S·Q8_K.
pub fn iq2s_q8k(x: &[BlockIQ2S], y: &[BlockQ8K]) -> f32 {
    iq2_q8k(x, y, |a| a.d.to_f32(), iq2s_sum)
}

/// ggml's tiled-GEMM IQ2_S product.
pub fn iq2s_batch(x: &[BlockIQ2S], y: &[BlockQ8K]) -> f32 {
    iq2_batch(x, y, |a| a.d.to_f32(), iq2s_sum)
}

/// ggml's generic IQ2_XS·Q8_K.
pub fn iq2xs_q8k(x: &[BlockIQ2XS], y: &[BlockQ8K]) -> f32 {
    iq2_q8k(x, y, |a| a.d.to_f32(), iq2xs_sum)
}

/// ggml's tiled-GEMM IQ2_XS product.
pub fn iq2xs_batch(x: &[BlockIQ2XS], y: &[BlockQ8K]) -> f32 {
    iq2_batch(x, y, |a| a.d.to_f32(), iq2xs_sum)
}

/// ggml's generic IQ2_XXS·Q8_K.
pub fn iq2xxs_q8k(x: &[BlockIQ2XXS], y: &[BlockQ8K]) -> f32 {
    iq2_q8k(x, y, |a| a.d.to_f32(), iq2xxs_sum)
}

/// ggml's tiled-GEMM IQ2_XXS product.
pub fn iq2xxs_batch(x: &[BlockIQ2XXS], y: &[BlockQ8K]) -> f32 {
    iq2_batch(x, y, |a| a.d.to_f32(), iq2xxs_sum)
}

/// `Σ level·q8` over the 8 values of grid entry `e`.
#[inline(always)]
fn group_sum(e: u64, q8: &[i8]) -> i32 {
    e.to_le_bytes().iter().zip(q8).map(|(&g, &q)| g as i8 as i32 * q as i32).sum()
}

/// The exact integer sums of an IQ1_S super-block: `Σ_ib (2·ls+1)·Σ level·q8`
/// and `Σ_ib (2·ls+1)·±1·Σ q8` (the shifts, from Q8_K's `bsums`).
#[inline(always)]
pub(crate) fn iq1s_sums(a: &BlockIQ1S, b: &BlockQ8K) -> (i32, i32) {
    let (mut sumi, mut sumi1) = (0i32, 0i32);
    for ib in 0..8 {
        let ls = iq1s::scale(a, ib);
        let delta = if iq1s::negative_shift(a, ib) { -1 } else { 1 };
        let lsum: i32 = (0..4).map(|l| group_sum(iq1s::entry(a, ib, l), &b.qs[32 * ib + 8 * l..])).sum();
        sumi += ls * lsum;
        sumi1 += ls * delta * (b.bsums[2 * ib] as i32 + b.bsums[2 * ib + 1] as i32);
    }
    (sumi, sumi1)
}

/// ggml's generic IQ1_S·Q8_K: `Σ d_x·d_y·(sumi + IQ1S_DELTA·sumi1)`.
pub fn iq1s_q8k(x: &[BlockIQ1S], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let (sumi, sumi1) = iq1s_sums(a, b);
        sumf += a.d.to_f32() * b.d * (sumi as f32 + crate::quant::iquants::iq1::IQ1S_DELTA * sumi1 as f32);
    }
    sumf
}

/// The exact integer sums of an IQ1_M super-block: `Σ (2·ls+1)·Σ level·q8`
/// and `Σ (2·ls+1)·±1·Σ q8` per 16 values.
#[inline(always)]
pub(crate) fn iq1m_sums(a: &BlockIQ1M, b: &BlockQ8K) -> (i32, i32) {
    let sc = iq1m::scale_words(a);
    let (mut sumi1, mut sumi2) = (0i32, 0i32);
    for ib16 in 0..16 {
        let (mut s1, mut s2) = (0i32, 0i32);
        for g in 2 * ib16..2 * ib16 + 2 {
            let q8 = &b.qs[8 * g..8 * g + 8];
            s1 += group_sum(iq1m::entry(a, g), q8);
            let lsum2: i32 = q8.iter().map(|&q| q as i32).sum();
            s2 += if iq1m::negative_shift(a, g) { -lsum2 } else { lsum2 };
        }
        let ls = iq1m::scale(&sc, ib16);
        sumi1 += s1 * ls;
        sumi2 += s2 * ls;
    }
    (sumi1, sumi2)
}

/// ggml's generic IQ1_M·Q8_K: `Σ d_x·d_y·(sumi1 + IQ1M_DELTA·sumi2)`.
pub fn iq1m_q8k(x: &[BlockIQ1M], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let (sumi1, sumi2) = iq1m_sums(a, b);
        let d = iq1m::super_scale(&iq1m::scale_words(a)).to_f32();
        sumf += d * b.d * (sumi1 as f32 + crate::quant::iquants::iq1::IQ1M_DELTA * sumi2 as f32);
    }
    sumf
}

/// `Σ ls·Σ (8·level + δ)·q8` over a super-block's groups of 8: the codes
/// `8·level ± 1` ggml's tiled GEMM stores for IQ1_S and IQ1_M, `code(g)`
/// the grid entry, shift sign and scale of group `g` (0..32). Exact.
#[inline(always)]
fn iq1_code_sum(code: impl Fn(usize) -> (u64, bool, i32), q8: &[i8]) -> i32 {
    (0..32)
        .map(|g| {
            let (e, negative, ls) = code(g);
            let delta = if negative { -1 } else { 1 };
            let s: i32 = e
                .to_le_bytes()
                .iter()
                .zip(&q8[8 * g..8 * g + 8])
                .map(|(&l, &q)| (8 * l as i8 as i32 + delta) * q as i32)
                .sum();
            ls * s
        })
        .sum()
}

/// `iq1_code_sum` of an IQ1_S super-block (one shift and scale per 32 values).
#[inline(always)]
pub(crate) fn iq1s_code_sum(a: &BlockIQ1S, q8: &[i8]) -> i32 {
    iq1_code_sum(|g| (iq1s::entry(a, g / 4, g % 4), iq1s::negative_shift(a, g / 4), iq1s::scale(a, g / 4)), q8)
}

/// `iq1_code_sum` of an IQ1_M super-block (a shift per 8, a scale per 16 values).
#[inline(always)]
pub(crate) fn iq1m_code_sum(a: &BlockIQ1M, q8: &[i8]) -> i32 {
    let sc = iq1m::scale_words(a);
    iq1_code_sum(|g| (iq1m::entry(a, g), iq1m::negative_shift(a, g), iq1m::scale(&sc, g / 2)), q8)
}

/// ggml's tiled-GEMM IQ1_S product (8 or more tokens): per super-block the
/// exact sum `s` of the codes `8·level ± 1` (the tile stores `d_x·0.125`),
/// then `acc = fma(d_x/8·s, d_y, acc)`.
pub fn iq1s_batch(x: &[BlockIQ1S], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let s = iq1s_code_sum(a, &b.qs);
        (a.d.to_f32() * 0.125 * s as f32).mul_add(b.d, acc)
    })
}

/// ggml's tiled-GEMM IQ1_M product (8 or more tokens), as [`iq1s_batch`].
pub fn iq1m_batch(x: &[BlockIQ1M], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let s = iq1m_code_sum(a, &b.qs);
        let d = iq1m::super_scale(&iq1m::scale_words(a)).to_f32();
        (d * 0.125 * s as f32).mul_add(b.d, acc)
    })
}
