//! Scalar reference dot products: the exact integer sums per block, then
//! the float scaling in the order ggml's generic C code uses.

use crate::quant::blocks::*;
use crate::quant::kquants::{get_scale_min_k4, q3k, q6k, unpack_2bit};

/// Σ over super-blocks of `d_y·(d_x·Σ_j sc_j·Σ q·q8 − dmin_x·Σ_j m_j·bsum_j)`.
pub fn q2k_q8k(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let (isum, summs) = q2k_sums(a, b);
        let dall = b.d * a.d.to_f32();
        let dmin = b.d * a.dmin.to_f32();
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Σ over super-blocks of `d_x·d_y·Σ_j sc_j·Σ q3·q8` (signed 3-bit levels).
pub fn q3k_q8k(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let isum = q3k_sums(a, b).0;
        sumf += a.d.to_f32() * b.d * isum as f32;
    }
    sumf
}

/// Shared by Q4_K and Q5_K: `level(i)` gives the unsigned level of value `i`.
#[inline(always)]
fn dot_k4(d: f32, dmin: f32, scales: &[u8; 12], b: &BlockQ8K, level: impl Fn(usize) -> i32) -> f32 {
    let (isum, summs) = k4_sums(scales, b, level);
    d * b.d * isum as f32 - dmin * b.d * summs as f32
}

/// Level of value `i` of a Q4_K block: chunk `i/64`, low or high nibble.
#[inline(always)]
fn q4_level(qs: &[u8; 128], i: usize) -> i32 {
    let (c, r) = (i / 64, i % 64);
    let q = qs[32 * c + r % 32];
    (if r < 32 { q & 0x0F } else { q >> 4 }) as i32
}

pub fn q4k_q8k(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).map(|(a, b)| dot_k4(a.d.to_f32(), a.dmin.to_f32(), &a.scales, b, |i| q4_level(&a.qs, i))).sum()
}

pub fn q5k_q8k(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    x.iter()
        .zip(y)
        .map(|(a, b)| {
            dot_k4(a.d.to_f32(), a.dmin.to_f32(), &a.scales, b, |i| {
                let (c, r) = (i / 64, i % 64);
                let bit = 2 * c + usize::from(r >= 32);
                q4_level(&a.qs, i) + (((a.qh[r % 32] >> bit) & 1) as i32) * 16
            })
        })
        .sum()
}

/// Σ over super-blocks of `d_x·d_y·Σ_j sc_j·Σ q6·q8` (signed 6-bit levels).
pub fn q6k_q8k(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let isum = q6k_sums(a, b).0;
        sumf += a.d.to_f32() * b.d * isum as f32;
    }
    sumf
}

/// Q8_K · Q8_K (activation type; plain scaled integer dot product).
pub fn q8k_q8k(x: &[BlockQ8K], y: &[BlockQ8K]) -> f32 {
    x.iter()
        .zip(y)
        .map(|(a, b)| {
            let s: i32 = a.qs.iter().zip(&b.qs).map(|(&u, &v)| u as i32 * v as i32).sum();
            s as f32 * a.d * b.d
        })
        .sum()
}

// ---- Integer block sums and ggml's prompt-GEMM float steps ----
//
// ggml-cpu's tiled matmul (`ggml-cpu/tiled`, taken for k-quant weights when
// a product has 8 or more tokens) forms per super-block the exact integers
// `s1 = Σ_j sc_j·Σ q·q8` (signed levels) and `s2 = Σ_j m_j·bsum_j`, then
// `res = d_w·s1`, `res = res − dmin_w·s2` (one FMA), `acc = acc + res·d_y`
// (one FMA), block after block. [`batch_step`] is that, the `*_sums`
// functions the integers.

/// One super-block of ggml's tiled-GEMM float arithmetic (see above).
#[inline(always)]
pub fn batch_step(acc: f32, d: f32, dmin: Option<f32>, s1: i32, s2: i32, d_y: f32) -> f32 {
    let mut res = d * s1 as f32;
    if let Some(m) = dmin {
        res = (-m).mul_add(s2 as f32, res);
    }
    res.mul_add(d_y, acc)
}

pub fn q2k_sums(a: &BlockQ2K, b: &BlockQ8K) -> (i32, i32) {
    let (mut s1, mut s2) = (0i32, 0i32);
    for j in 0..16 {
        s2 += b.bsums[j] as i32 * (a.scales[j] >> 4) as i32;
        let s: i32 = (16 * j..16 * j + 16).map(|i| unpack_2bit(&a.qs, i) as i32 * b.qs[i] as i32).sum();
        s1 += (a.scales[j] & 0x0F) as i32 * s;
    }
    (s1, s2)
}

pub fn q3k_sums(a: &BlockQ3K, b: &BlockQ8K) -> (i32, i32) {
    let mut s1 = 0i32;
    for j in 0..16 {
        let s: i32 = (16 * j..16 * j + 16).map(|i| q3k::get_q(a, i) * b.qs[i] as i32).sum();
        s1 += q3k::get_scale(j, &a.scales) * s;
    }
    (s1, 0)
}

fn k4_sums(scales: &[u8; 12], b: &BlockQ8K, level: impl Fn(usize) -> i32) -> (i32, i32) {
    let (mut s1, mut s2) = (0i32, 0i32);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, scales);
        let s: i32 = (32 * j..32 * j + 32).map(|i| level(i) * b.qs[i] as i32).sum();
        s1 += sc as i32 * s;
        s2 += m as i32 * (b.bsums[2 * j] as i32 + b.bsums[2 * j + 1] as i32);
    }
    (s1, s2)
}

pub fn q4k_sums(a: &BlockQ4K, b: &BlockQ8K) -> (i32, i32) {
    k4_sums(&a.scales, b, |i| q4_level(&a.qs, i))
}

pub fn q5k_sums(a: &BlockQ5K, b: &BlockQ8K) -> (i32, i32) {
    k4_sums(&a.scales, b, |i| {
        let (c, r) = (i / 64, i % 64);
        let bit = 2 * c + usize::from(r >= 32);
        q4_level(&a.qs, i) + (((a.qh[r % 32] >> bit) & 1) as i32) * 16
    })
}

pub fn q6k_sums(a: &BlockQ6K, b: &BlockQ8K) -> (i32, i32) {
    let mut s1 = 0i32;
    for j in 0..16 {
        let s: i32 = (16 * j..16 * j + 16).map(|i| q6k::get_q(a, i) * b.qs[i] as i32).sum();
        s1 += a.scales[j] as i32 * s;
    }
    (s1, 0)
}

/// ggml's tiled-GEMM dot products (the scalar twins of the batch kernels).
pub fn q2k_batch(x: &[BlockQ2K], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let (s1, s2) = q2k_sums(a, b);
        batch_step(acc, a.d.to_f32(), Some(a.dmin.to_f32()), s1, s2, b.d)
    })
}

pub fn q3k_batch(x: &[BlockQ3K], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| batch_step(acc, a.d.to_f32(), None, q3k_sums(a, b).0, 0, b.d))
}

pub fn q4k_batch(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let (s1, s2) = q4k_sums(a, b);
        batch_step(acc, a.d.to_f32(), Some(a.dmin.to_f32()), s1, s2, b.d)
    })
}

pub fn q5k_batch(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| {
        let (s1, s2) = q5k_sums(a, b);
        batch_step(acc, a.d.to_f32(), Some(a.dmin.to_f32()), s1, s2, b.d)
    })
}

pub fn q6k_batch(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    x.iter().zip(y).fold(0.0, |acc, (a, b)| batch_step(acc, a.d.to_f32(), None, q6k_sums(a, b).0, 0, b.d))
}
