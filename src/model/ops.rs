//! The element-wise and row operations of the llama forward pass, each as
//! ggml computes it: SwiGLU, RoPE rotation, RMSNorm, bias, residual add and
//! row selection.

use rayon::prelude::*;

use super::attention;
use super::llama::RopeStyle;

/// `g ← silu(g) · u` as ggml's AVX2 `swiglu`: its vector exponential for
/// whole groups of 8, the C library's for the rest.
pub(super) fn swiglu(g: &mut [f32], u: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        unsafe { swiglu_fma(g, u) };
        return;
    }
    swiglu_impl(g, u)
}

/// [`swiglu`] compiled with FMA instructions (same results).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_fma(g: &mut [f32], u: &[f32]) {
    swiglu_impl(g, u)
}

#[inline(always)]
fn swiglu_impl(g: &mut [f32], u: &[f32]) {
    let full = g.len() / 8 * 8;
    for (a, &b) in g[..full].iter_mut().zip(&u[..full]) {
        *a = *a / (1.0 + attention::exp_ggml(0.0 - *a)) * b;
    }
    for (a, &b) in g[full..].iter_mut().zip(&u[full..]) {
        *a = *a / (1.0 + (-*a).exp()) * b;
    }
}

/// Rotate the pairs of one head by the angles whose cos/sin are `cs`.
pub(super) fn rotate(head: &mut [f32], cs: &[(f32, f32)], style: RopeStyle) {
    #[cfg(target_arch = "x86_64")]
    if crate::quant::simd::use_avx2() {
        // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C were detected.
        unsafe { rotate_fma(head, cs, style) };
        return;
    }
    rotate_impl(head, cs, style)
}

/// [`rotate`] compiled with FMA instructions (same results).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rotate_fma(head: &mut [f32], cs: &[(f32, f32)], style: RopeStyle) {
    rotate_impl(head, cs, style)
}

#[inline(always)]
fn rotate_impl(head: &mut [f32], cs: &[(f32, f32)], style: RopeStyle) {
    let half = cs.len();
    for (j, &(c, s)) in cs.iter().enumerate() {
        let (a, b) = match style {
            RopeStyle::Normal => (2 * j, 2 * j + 1),
            RopeStyle::Neox => (j, j + half),
        };
        let (x0, x1) = (head[a], head[b]);
        // ggml's rotation as its compiler contracts it into fused multiply-adds.
        head[a] = x0.mul_add(c, -(x1 * s));
        head[b] = x0.mul_add(s, x1 * c);
    }
}

/// RMSNorm of each row of `x` (rows of `d`), times `w`.
pub(super) fn rms_norm(x: &[f32], d: usize, eps: f32, w: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(d).zip(x.par_chunks(d)).for_each(|(o, r)| {
        let sum: f64 = r.iter().map(|&v| (v * v) as f64).sum();
        let mean = (sum / d as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for ((o, &v), &g) in o.iter_mut().zip(r).zip(w) {
            *o = (v * scale) * g;
        }
    });
    out
}

/// The rows `keep` (of `width` values) of `x`.
pub(super) fn select_rows(x: &[f32], width: usize, keep: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(keep.len() * width);
    for &r in keep {
        out.extend_from_slice(&x[r * width..(r + 1) * width]);
    }
    out
}

pub(super) fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
    if let Some(b) = b {
        for row in x.chunks_mut(b.len()) {
            for (a, &c) in row.iter_mut().zip(b) {
                *a += c;
            }
        }
    }
}

pub(super) fn add_into(x: &mut [f32], y: &[f32]) {
    x.par_iter_mut().zip(y.par_iter()).for_each(|(a, &b)| *a += b);
}
