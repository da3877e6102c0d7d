//! Scalar reference dot products: the exact integer sums per block, then
//! the float scaling in the order ggml's generic C code uses.

use crate::quant::blocks::*;
use crate::quant::legacy::q5::unpack5;

/// Σ over blocks of `(Σ (q4-8)·q8) · d_x · d_y`.
pub fn q4_0_q8_0(x: &[BlockQ4_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += ((a.qs[j] & 0x0F) as i32 - 8) * b.qs[j] as i32;
            sumi += ((a.qs[j] >> 4) as i32 - 8) * b.qs[j + 16] as i32;
        }
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32());
    }
    sumf
}

/// Σ over blocks of `d_x·d_y·Σ q4·q8 + m_x·s_y` (`s_y = d_y·Σ q8`).
pub fn q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += (a.qs[j] & 0x0F) as i32 * b.qs[j] as i32;
            sumi += (a.qs[j] >> 4) as i32 * b.qs[j + 16] as i32;
        }
        sumf += (a.d.to_f32() * b.d.to_f32()) * sumi as f32 + a.m.to_f32() * b.s.to_f32();
    }
    sumf
}

/// Σ over blocks of `(Σ (q5-16)·q8) · d_x · d_y`.
pub fn q5_0_q8_0(x: &[BlockQ5_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let q = unpack5(&a.qs, &a.qh);
        let sumi: i32 = q.iter().zip(&b.qs).map(|(&u, &v)| (u as i32 - 16) * v as i32).sum();
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32());
    }
    sumf
}

/// Σ over blocks of `d_x·d_y·Σ q5·q8 + m_x·s_y`.
pub fn q5_1_q8_1(x: &[BlockQ5_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let q = unpack5(&a.qs, &a.qh);
        let sumi: i32 = q.iter().zip(&b.qs).map(|(&u, &v)| u as i32 * v as i32).sum();
        sumf += (a.d.to_f32() * b.d.to_f32()) * sumi as f32 + a.m.to_f32() * b.s.to_f32();
    }
    sumf
}

/// Σ over blocks of `(Σ q8·q8) · d_x · d_y`.
pub fn q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let sumi: i32 = a.qs.iter().zip(&b.qs).map(|(&u, &v)| u as i32 * v as i32).sum();
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32());
    }
    sumf
}

/// Q8_1 · Q8_1 (activation type; plain scaled integer dot product).
pub fn q8_1_q8_1(x: &[BlockQ8_1], y: &[BlockQ8_1]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let sumi: i32 = a.qs.iter().zip(&b.qs).map(|(&u, &v)| u as i32 * v as i32).sum();
        sumf += sumi as f32 * (a.d.to_f32() * b.d.to_f32());
    }
    sumf
}

/// Σ over Q1_0 blocks of `d_x · Σ_k d_y,k · Σ ±q8` (four Q8_0 blocks per
/// Q1_0 block; `+q8` where the sign bit is set), in the float order of
/// `ggml_vec_dot_q1_0_q8_0_generic`.
pub fn q1_0_q8_0(x: &[BlockQ1_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b4) in x.iter().zip(y.chunks_exact(4)) {
        let mut sumi = 0.0f32;
        for (k, b) in b4.iter().enumerate() {
            let mut s = 0i32;
            for (j, &q) in b.qs.iter().enumerate() {
                let bit = (a.qs[4 * k + j / 8] >> (j % 8)) & 1;
                s += if bit != 0 { q as i32 } else { -(q as i32) };
            }
            sumi += b.d.to_f32() * s as f32;
        }
        sumf += a.d.to_f32() * sumi;
    }
    sumf
}

/// Σ over Q2_0 blocks of `d_x · Σ_k d_y,k · Σ (code−1)·q8` (two Q8_0 blocks
/// per Q2_0 block), in the float order of `ggml_vec_dot_q2_0_q8_0_generic`.
pub fn q2_0_q8_0(x: &[BlockQ2_0], y: &[BlockQ8_0]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b2) in x.iter().zip(y.chunks_exact(2)) {
        let mut sumi = 0.0f32;
        for (k, b) in b2.iter().enumerate() {
            let s = q2_0_block_sum(a, k, b);
            sumi += b.d.to_f32() * s as f32;
        }
        sumf += a.d.to_f32() * sumi;
    }
    sumf
}

/// Σ (code−1)·q8 over half `k` (values 32k..32k+32) of a Q2_0 block.
#[inline]
pub(crate) fn q2_0_block_sum(a: &BlockQ2_0, k: usize, b: &BlockQ8_0) -> i32 {
    b.qs.iter().enumerate().map(|(j, &q)| (crate::quant::legacy::q1::code2(a, 32 * k + j) - 1) * q as i32).sum()
}
