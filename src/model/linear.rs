//! Quantized weight matrix × f32 activations, as ggml's CPU backend computes
//! `mul_mat`: every activation row is quantized once to the weight type's
//! `vec_dot` type (Q8_0, Q8_1, Q8_K, F16, F32), then each output is one
//! `vec_dot` of a weight row with an activation row. Parallel over weight
//! rows; the weights are never dequantized.

use std::borrow::Cow;

use bytemuck::Zeroable;
use rayon::prelude::*;

use half::f16;

use crate::gguf::GgmlType;
use crate::quant::{BlockQ8_0, BlockQ8_1, GgmlBlock, QK8_0};
use crate::with_block_type;

/// A borrowed weight matrix: `rows` rows of `cols` values of type `ty`.
#[derive(Clone, Copy)]
pub struct WeightView<'a> {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
}

/// Tokens per tile: the activation tile stays in L1 while a run of weight
/// rows streams past it.
const TOKEN_TILE: usize = 16;

/// Whether quantmix has a `vec_dot` kernel for weights of type `ty`.
pub fn supported(ty: GgmlType) -> bool {
    crate::quant::caps(ty).vec_dot
}

/// `out[t][r] = Σ_c w[r][c] · x[t][c]` for `n` activation rows `x`
/// (`n × cols`), `out` being `n × rows`. Returns `false` when `w.ty` has
/// no kernel (callers check [`supported`] when loading).
pub fn matmul(w: &WeightView<'_>, x: &[f32], n: usize, out: &mut [f32]) -> bool {
    assert_eq!(x.len(), n * w.cols, "activation shape");
    assert_eq!(out.len(), n * w.rows, "output shape");
    assert_eq!(w.data.len() as u64, w.ty.row_bytes(w.cols as u64).unwrap_or(0) * w.rows as u64, "weight bytes");
    with_block_type!(w.ty, B => matmul_typed::<B>(w, x, n, out)).is_some()
}

fn blocks<B: bytemuck::Pod>(bytes: &[u8]) -> Cow<'_, [B]> {
    match bytemuck::try_cast_slice::<u8, B>(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec::<u8, B>(bytes)),
    }
}

/// Quantize one activation row the way ggml's x86 CPU backend does
/// (`from_float` of the `vec_dot` type): for Q8_0 and Q8_1 that is
/// `q = round_half_even(x · 127/max|x|)`, which differs from the reference
/// quantizer's `round_half_away(x / d)` on ties and in the last bit of the
/// inverse scale; every other type uses its reference quantizer.
pub fn quantize_activations<A: GgmlBlock>(x: &[f32], out: &mut [A]) {
    match A::TYPE {
        GgmlType::Q8_0 => {
            let out: &mut [BlockQ8_0] = bytemuck::cast_slice_mut(out);
            for (xb, y) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
                let (d, id) = q8_scale(xb);
                y.d = f16::from_f32(d);
                for (q, &v) in y.qs.iter_mut().zip(xb) {
                    *q = (v * id).round_ties_even() as i8;
                }
            }
        }
        GgmlType::Q8_1 => {
            let out: &mut [BlockQ8_1] = bytemuck::cast_slice_mut(out);
            for (xb, y) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
                let (d, id) = q8_scale(xb);
                y.d = f16::from_f32(d);
                let mut sum = 0i32;
                for (q, &v) in y.qs.iter_mut().zip(xb) {
                    *q = (v * id).round_ties_even() as i8;
                    sum += *q as i32;
                }
                y.s = f16::from_f32(d * sum as f32);
            }
        }
        _ => A::quantize_row(x, out, None),
    }
}

/// `d = max|x| / 127` and the multiplier `127 / max|x|` (0 for a zero block).
fn q8_scale(x: &[f32]) -> (f32, f32) {
    let amax = x.iter().fold(0f32, |m, &v| m.max(v.abs()));
    (amax / 127.0, if amax != 0.0 { 127.0 / amax } else { 0.0 })
}

fn matmul_typed<B: GgmlBlock>(w: &WeightView<'_>, x: &[f32], n: usize, out: &mut [f32]) {
    type Act<B> = <B as GgmlBlock>::VecDot;
    let (rows, cols) = (w.rows, w.cols);
    let nbw = cols / B::BLCK_SIZE;
    let nba = cols / <Act<B> as GgmlBlock>::BLCK_SIZE;
    let wb: Cow<'_, [B]> = blocks(w.data);
    let mut acts = vec![<Act<B>>::zeroed(); n * nba];
    if n > 1 {
        acts.par_chunks_mut(nba).zip(x.par_chunks(cols)).for_each(|(a, xr)| quantize_activations(xr, a));
    } else {
        quantize_activations(x, &mut acts);
    }
    let threads = rayon::current_num_threads().max(1);
    // Enough tasks to balance the threads, each a run of whole rows.
    let rows_per_task = rows.div_ceil(threads * 8).clamp(1, 256);
    if n == 1 {
        out.par_chunks_mut(rows_per_task).enumerate().for_each(|(ci, o)| {
            let r0 = ci * rows_per_task;
            for (k, v) in o.iter_mut().enumerate() {
                let r = r0 + k;
                *v = B::vec_dot(&wb[r * nbw..(r + 1) * nbw], &acts);
            }
        });
        return;
    }
    // Rows-major result, transposed into `out` afterwards.
    let mut tmp = vec![0f32; rows * n];
    tmp.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(ci, chunk)| {
        let r0 = ci * rows_per_task;
        let nr = chunk.len() / n;
        for t0 in (0..n).step_by(TOKEN_TILE) {
            let t1 = (t0 + TOKEN_TILE).min(n);
            for k in 0..nr {
                let r = r0 + k;
                let wr = &wb[r * nbw..(r + 1) * nbw];
                for t in t0..t1 {
                    chunk[k * n + t] = B::vec_dot(wr, &acts[t * nba..(t + 1) * nba]);
                }
            }
        }
    });
    out.par_chunks_mut(rows).enumerate().for_each(|(t, o)| {
        for (r, v) in o.iter_mut().enumerate() {
            *v = tmp[r * n + t];
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ty: GgmlType, rows: usize, cols: usize, n: usize) {
        let src: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let x: Vec<f32> = (0..n * cols).map(|i| ((i * 104729) % 997) as f32 / 498.0 - 1.0).collect();
        let rb = ty.row_bytes(cols as u64).unwrap() as usize;
        let mut w = vec![0u8; rows * rb];
        crate::quant::quantize_rows(ty, &src, cols, None, &mut w).unwrap();
        let view = WeightView { ty, rows, cols, data: &w };
        let mut out = vec![0f32; n * rows];
        assert!(matmul(&view, &x, n, &mut out));
        // Reference: the byte-level API, one dot product at a time.
        let aty = crate::quant::vec_dot_type(ty).unwrap();
        let arb = aty.row_bytes(cols as u64).unwrap() as usize;
        for t in 0..n {
            let a = with_block_type!(aty, A => {
                let mut blocks = vec![A::zeroed(); cols / A::BLCK_SIZE];
                quantize_activations(&x[t * cols..(t + 1) * cols], &mut blocks);
                bytemuck::cast_slice::<A, u8>(&blocks).to_vec()
            })
            .unwrap();
            assert_eq!(a.len(), arb);
            for r in 0..rows {
                let want = crate::quant::vec_dot(ty, cols, &w[r * rb..(r + 1) * rb], &a).unwrap();
                assert_eq!(out[t * rows + r], want, "{ty} t={t} r={r}");
            }
        }
    }

    #[test]
    fn matches_byte_level_vec_dot() {
        for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16, GgmlType::F32] {
            check(ty, 37, 256, 1);
            check(ty, 37, 256, 21);
        }
    }
}
