//! The element-wise and row operations of the llama forward pass, each as
//! ggml computes it: SwiGLU, GeGLU, RoPE rotation, RMSNorm, scaling,
//! soft-capping, bias, residual add and row selection.

use half::f16;
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
    use std::arch::x86_64::*;
    // Eight at a time with ggml's vectorized exponential (what its AVX2
    // `ggml_vec_swiglu_f32` does), each lane the scalar expression's steps.
    let full = g.len() / 8 * 8;
    let (zero, one) = (_mm256_setzero_ps(), _mm256_set1_ps(1.0));
    for (a, b) in g[..full].chunks_exact_mut(8).zip(u[..full].chunks_exact(8)) {
        // SAFETY: `a` and `b` are 8 floats each; AVX2 and FMA are enabled.
        unsafe {
            let x = _mm256_loadu_ps(a.as_ptr());
            let s = _mm256_div_ps(x, _mm256_add_ps(one, attention::exp8(_mm256_sub_ps(zero, x))));
            _mm256_storeu_ps(a.as_mut_ptr(), _mm256_mul_ps(s, _mm256_loadu_ps(b.as_ptr())));
        }
    }
    swiglu_tail(&mut g[full..], &u[full..]);
}

#[inline(always)]
fn swiglu_impl(g: &mut [f32], u: &[f32]) {
    let full = g.len() / 8 * 8;
    for (a, &b) in g[..full].iter_mut().zip(&u[..full]) {
        *a = *a / (1.0 + attention::exp_ggml(0.0 - *a)) * b;
    }
    swiglu_tail(&mut g[full..], &u[full..]);
}

/// The values past the last multiple of 8 (ggml's scalar loop, libm's `exp`).
#[inline(always)]
fn swiglu_tail(g: &mut [f32], u: &[f32]) {
    for (a, &b) in g.iter_mut().zip(u) {
        *a = *a / (1.0 + (-*a).exp()) * b;
    }
}

/// GELU (tanh approximation) as ggml's CPU backend computes it for f32
/// tensors: the argument rounded to F16 and looked up in a table of F16
/// results (`ggml_table_gelu_f16`, filled from the f32 formula), except
/// below −10 (0) and from 10 on (the argument itself).
fn gelu_table() -> &'static [f32] {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        const GELU_COEF_A: f32 = 0.044715;
        const SQRT_2_OVER_PI: f32 = 0.797_884_6;
        (0..=u16::MAX)
            .map(|bits| {
                let x = f16::from_bits(bits).to_f32();
                // ggml's formula as GCC contracts it with FMA enabled.
                let inner = (GELU_COEF_A * x).mul_add(x, 1.0);
                let y = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * inner).tanh());
                f16::from_f32(y).to_f32()
            })
            .collect()
    })
}

/// `g ← gelu(g) · u` (ggml's `geglu` on f32 rows).
pub(super) fn geglu(g: &mut [f32], u: &[f32]) {
    let table = gelu_table();
    for (a, &b) in g.iter_mut().zip(u) {
        let x = *a;
        *a = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * b
        } else {
            table[f16::from_f32(x).to_bits() as usize] * b
        };
    }
}

/// Elements per parallel piece of the element-wise steps: a generated
/// token's vectors (a few thousand values) stay on the calling thread,
/// where splitting them cost more in waking the pool than it saved.
const MIN_PIECE: usize = 16 * 1024;

/// `x ← x · s` (ggml's `scale`).
pub(super) fn scale(x: &mut [f32], s: f32) {
    x.par_iter_mut().with_min_len(MIN_PIECE).for_each(|v| *v *= s);
}

/// `x ← cap · tanh(x / cap)` (llama.cpp's logit soft-capping: scale,
/// `tanh`, scale).
pub(super) fn softcap(x: &mut [f32], cap: f32) {
    let inv = 1.0 / cap;
    x.par_iter_mut().with_min_len(MIN_PIECE).for_each(|v| *v = (*v * inv).tanh() * cap);
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
    x.par_iter_mut().zip(y.par_iter()).with_min_len(MIN_PIECE).for_each(|(a, &b)| *a += b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_scalar_swiglu_agree_bit_for_bit() {
        for n in [1usize, 7, 8, 9, 64, 1536, 1539] {
            let g: Vec<f32> = (0..n).map(|i| ((i * 7919 % 4001) as f32 - 2000.0) * 0.0517).collect();
            let u: Vec<f32> = (0..n).map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 211.0).collect();
            let (mut fast, mut slow) = (g.clone(), g);
            swiglu(&mut fast, &u);
            swiglu_impl(&mut slow, &u);
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "n={n} value {i}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn geglu_is_gelu_times_up() {
        let xs: Vec<f32> = (-240..=240).map(|i| i as f32 * 0.05).collect();
        let mut g = xs.clone();
        let u: Vec<f32> = xs.iter().map(|&x| 1.0 + x * 0.1).collect();
        geglu(&mut g, &u);
        for ((&x, &y), &b) in xs.iter().zip(&g).zip(&u) {
            // The formula at the F16-rounded argument, the result rounded to F16.
            let h = f16::from_f32(x).to_f32() as f64;
            let exact = 0.5 * h * (1.0 + (0.7978845608 * h * (1.0 + 0.044715 * h * h)).tanh());
            let want = exact * b as f64;
            assert!((y as f64 - want).abs() <= 1e-3 * want.abs() + 1e-7, "x={x}: {y} vs {want}");
        }
        let mut g = vec![-10.0, 10.0, -20.0, 12.5];
        geglu(&mut g, &[2.0; 4]);
        assert_eq!(g, [0.0, 20.0, 0.0, 25.0]);
    }

    /// The table equals ggml's `ggml_table_gelu_f16` entry for entry (read
    /// from llama-cpp-python's libggml-cpu through ctypes when the venv of
    /// `.ci/setup` is there; required with `QUANTMIX_REQUIRE_ASSETS=1`).
    #[test]
    fn gelu_table_equals_ggml() {
        let cache = std::env::var("QUANTMIX_CACHE").map(std::path::PathBuf::from).unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/quantmix")
        });
        let py = cache.join("venv/bin/python");
        if !py.exists() {
            assert!(std::env::var("QUANTMIX_REQUIRE_ASSETS").as_deref() != Ok("1"), "no venv at {}", py.display());
            eprintln!("skipping: no Python venv at {} (run .ci/setup)", py.display());
            return;
        }
        let script = "import ctypes, os, sys, importlib.util\n\
            lib = os.path.join(os.path.dirname(importlib.util.find_spec('llama_cpp').origin), 'lib')\n\
            ctypes.CDLL(os.path.join(lib, 'libggml-base.so'), mode=ctypes.RTLD_GLOBAL)\n\
            cpu = ctypes.CDLL(os.path.join(lib, 'libggml-cpu.so'), mode=ctypes.RTLD_GLOBAL)\n\
            cpu.ggml_cpu_init()\n\
            sys.stdout.buffer.write(bytes((ctypes.c_uint16 * 65536).in_dll(cpu, 'ggml_table_gelu_f16')))\n";
        let out = std::process::Command::new(&py).args(["-c", script]).output().expect("run python");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout.len(), 2 * 65536);
        let table = gelu_table();
        for (i, b) in out.stdout.chunks_exact(2).enumerate() {
            let g = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            assert!(
                g.to_bits() == table[i].to_bits() || (g.is_nan() && table[i].is_nan()),
                "{i:#06x}: {g} vs {}",
                table[i]
            );
        }
    }

    #[test]
    fn softcap_bounds_values() {
        let mut x = vec![-1e6, -3.0, 0.0, 3.0, 1e6];
        softcap(&mut x, 30.0);
        assert_eq!(x[0], -30.0);
        assert_eq!(x[4], 30.0);
        assert_eq!(x[2], 0.0);
        assert!((x[3] - 30.0 * (0.1f32).tanh()).abs() < 1e-6);
    }
}
