//! The mixture-of-experts feed-forward (qwen3moe, Mixtral-style llama),
//! computed the way llama.cpp's `build_moe_ffn` graph runs on its CPU
//! backend:
//!
//! - router logits `ffn_gate_inp · x` (`n_expert` per token). For an F32
//!   router and a batch of two or more tokens ggml hands the product to
//!   llamafile's tinyBLAS, which sums each output in 8 FMA lanes reduced
//!   `((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))` (its AVX2 kernel, as the
//!   reference build runs it); that order is reproduced here, because the
//!   top-k choice below must see the same bits. One token, or another router
//!   type, goes through the ordinary matmul (ggml's `vec_dot`);
//! - softmax over the experts as `ggml_soft_max` computes it (exponentials
//!   of `logit - max` in groups of 8, summed into an f64 total, times
//!   `1/total` in f32);
//! - the `n_expert_used` most probable experts, in decreasing probability,
//!   equal probabilities in index order (ggml's descending argsort: for up
//!   to 16 experts an insertion sort, which keeps that order);
//! - their probabilities as weights, divided by their sum (summed in f64,
//!   clamped below at 2^-14) where the architecture normalises them;
//! - every expert's slices of `ffn_gate_exps`, `ffn_up_exps`,
//!   `ffn_down_exps` used as ordinary 2-D weights through
//!   [`crate::quant::matmul`] on the rows of the tokens routed to it (ggml's
//!   `MUL_MAT_ID`: the same `vec_dot` per output, activations quantized per
//!   row to the weight's `vec_dot_type`), SwiGLU between;
//! - each token's expert outputs times their weights, added in the order of
//!   selection.

use rayon::prelude::*;

use super::arch::{Activation, MoeSpec};
use super::attention::{dot8, exp_ggml, hsum8};
use super::llama::{Hooks, LlamaModel, Mat};
use super::ops::{geglu, swiglu};
use crate::quant::matmul::{matmul_quantized, Activations};

/// One layer's experts.
pub(super) struct Experts {
    /// `ffn_gate_inp`: `n_expert` rows of `n_embd`.
    pub(super) router: Mat,
    /// The router's weights as f32 when it is stored F32 (tinyBLAS order).
    pub(super) router_f32: Option<Vec<f32>>,
    /// `ffn_gate_exps`, `ffn_up_exps` (`n_ff_exp` rows of `n_embd` per
    /// expert) and `ffn_down_exps` (`n_embd` rows of `n_ff_exp`).
    pub(super) gate: Mat,
    pub(super) up: Mat,
    pub(super) down: Mat,
    pub(super) n_used: usize,
    pub(super) spec: MoeSpec,
}

/// The input of one product with a 3-D expert tensor (ggml's `MUL_MAT_ID`),
/// as `llama-imatrix` sees it.
#[derive(Clone, Copy, Debug)]
pub struct ExpertInput<'x> {
    /// The expert tensor's name (`blk.N.ffn_up_exps.weight`, …).
    pub name: &'x str,
    /// Experts in the tensor.
    pub n_expert: usize,
    /// The selected experts, `n_used` per token, most probable first.
    pub ids: &'x [u32],
    pub n_used: usize,
    /// The activations, rows of `cols`: one per token when every selected
    /// expert reads the same row (`per_slot == false`: gate and up), else
    /// one per (token, slot), token-major (down).
    pub x: &'x [f32],
    pub cols: usize,
    pub per_slot: bool,
}

/// Callback receiving the input of every expert product.
pub type ExpertObserver<'a> = dyn FnMut(&ExpertInput<'_>) + 'a;

/// `ggml_soft_max` of one row (no mask, scale 1) into `out`.
fn softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0f64;
    let full = logits.len() / 8 * 8;
    for (o, l) in out[..full].chunks_exact_mut(8).zip(logits[..full].chunks_exact(8)) {
        let mut e = [0f32; 8];
        for (e, &x) in e.iter_mut().zip(l) {
            *e = exp_ggml(x - max);
        }
        total += hsum8(e) as f64;
        o.copy_from_slice(&e);
    }
    for (o, &x) in out[full..].iter_mut().zip(&logits[full..]) {
        *o = (x - max).exp();
        total += *o as f64;
    }
    let inv = (1.0 / total) as f32;
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// The `k` most probable experts, most probable first (ties: lower index
/// first), and their weights.
fn select(probs: &[f32], k: usize, norm: bool, ids: &mut [u32], weights: &mut [f32]) {
    let mut order: Vec<u32> = (0..probs.len() as u32).collect();
    // A stable sort: equal probabilities keep index order, as ggml's
    // insertion sort does.
    order.sort_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]));
    ids.copy_from_slice(&order[..k]);
    for (w, &e) in weights.iter_mut().zip(ids.iter()) {
        *w = probs[e as usize];
    }
    if norm {
        // ggml_sum_rows (f64 accumulation), clamped to F16's smallest
        // normal, then ggml_div.
        let sum = weights.iter().map(|&w| w as f64).sum::<f64>() as f32;
        let sum = sum.max(6.103_515_6e-5);
        for w in weights.iter_mut() {
            *w /= sum;
        }
    }
}

fn observe(hooks: &mut Hooks<'_>, inp: ExpertInput<'_>) {
    if let Some(obs) = hooks.experts.as_mut() {
        obs(&inp);
    }
}

impl LlamaModel {
    /// Router logits, `rows × n_expert`.
    fn router_logits(&self, ex: &Experts, h: &[f32], rows: usize, hooks: &mut Hooks<'_>) -> Vec<f32> {
        let r = &ex.router;
        let overridden = hooks.overrides.iter().any(|o| o.name == r.info.name);
        match &ex.router_f32 {
            // llamafile_sgemm takes F32 × F32 products of two or more
            // tokens when its 8-lane kernel divides the row length and 4
            // divides the rows.
            Some(w) if rows >= 2 && r.cols.is_multiple_of(8) && r.rows.is_multiple_of(4) && !overridden => {
                if let Some(obs) = hooks.observer.as_mut() {
                    obs(&r.info.name, h, rows);
                }
                let mut out = vec![0f32; rows * r.rows];
                out.par_chunks_mut(r.rows).zip(h.par_chunks(r.cols)).for_each(|(o, x)| {
                    for (o, wr) in o.iter_mut().zip(w.chunks_exact(r.cols)) {
                        *o = dot8(wr, x);
                    }
                });
                out
            }
            _ => self.matmul(r, h, rows, hooks),
        }
    }

    /// The feed-forward output (`rows × n_embd`) of the experts `ex` for
    /// the normed input `h`.
    pub(super) fn moe_ffn(&self, ex: &Experts, h: &[f32], rows: usize, hooks: &mut Hooks<'_>) -> Vec<f32> {
        let n_expert = ex.router.rows;
        let (k, d, ff) = (ex.n_used, ex.down.rows, ex.gate.rows);
        let logits = self.router_logits(ex, h, rows, hooks);
        let mut ids = vec![0u32; rows * k];
        let mut weights = vec![0f32; rows * k];
        ids.par_chunks_mut(k).zip(weights.par_chunks_mut(k)).zip(logits.par_chunks(n_expert)).for_each_init(
            || vec![0f32; n_expert],
            |probs, ((ids, w), l)| {
                softmax(l, probs);
                select(probs, k, ex.spec.norm_weights, ids, w);
            },
        );
        // The (token, slot) pairs each expert serves, in token order.
        let mut routed: Vec<Vec<usize>> = vec![Vec::new(); n_expert];
        for (i, &e) in ids.iter().enumerate() {
            routed[e as usize].push(i);
        }
        let input = ExpertInput { name: "", n_expert, ids: &ids, n_used: k, x: h, cols: d, per_slot: false };
        observe(hooks, ExpertInput { name: &ex.up.info.name, ..input });
        observe(hooks, ExpertInput { name: &ex.gate.info.name, ..input });
        let act = match self.hp.spec.activation {
            Activation::Silu => swiglu,
            Activation::GeluTanh => geglu,
        };
        // Gate and up per expert, on its tokens' rows; the activated rows
        // land at their (token, slot) place.
        let mut hidden = vec![0f32; rows * k * ff];
        let mut x = Vec::new();
        for (e, slots) in routed.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            x.clear();
            for &i in slots {
                let t = i / k;
                x.extend_from_slice(&h[t * d..(t + 1) * d]);
            }
            // Quantized once for gate and up when they share a type.
            let mut acts = Activations::new();
            let mut outs = [&ex.gate, &ex.up].map(|m| {
                let w = self.weights_of(m, e, hooks.overrides);
                let aty = crate::quant::vec_dot_type(w.ty()).expect("checked by Weights::new");
                if acts.ty() != Some(aty) {
                    acts.quantize(aty, &x, d).expect("activation shape");
                }
                let mut out = vec![0f32; slots.len() * ff];
                matmul_quantized(&w, &acts, &mut out).expect("shapes checked at load");
                out
            });
            let [g, u] = &mut outs;
            g.par_chunks_mut(ff).zip(u.par_chunks(ff)).for_each(|(g, u)| act(g, u));
            for (&i, row) in slots.iter().zip(g.chunks_exact(ff)) {
                hidden[i * ff..(i + 1) * ff].copy_from_slice(row);
            }
        }
        observe(hooks, ExpertInput { name: &ex.down.info.name, x: &hidden, cols: ff, per_slot: true, ..input });
        let mut y = vec![0f32; rows * k * d];
        for (e, slots) in routed.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            x.clear();
            for &i in slots {
                x.extend_from_slice(&hidden[i * ff..(i + 1) * ff]);
            }
            let w = self.weights_of(&ex.down, e, hooks.overrides);
            let aty = crate::quant::vec_dot_type(w.ty()).expect("checked by Weights::new");
            let mut acts = Activations::new();
            acts.quantize(aty, &x, ff).expect("activation shape");
            let mut out = vec![0f32; slots.len() * d];
            matmul_quantized(&w, &acts, &mut out).expect("shapes checked at load");
            for (&i, row) in slots.iter().zip(out.chunks_exact(d)) {
                y[i * d..(i + 1) * d].copy_from_slice(row);
            }
        }
        // Weighted, then added in slot order (ggml_mul, then ggml_add of the
        // slot views one after another).
        let mut out = vec![0f32; rows * d];
        out.par_chunks_mut(d).enumerate().for_each(|(t, o)| {
            for s in 0..k {
                let w = weights[t * k + s];
                let ys = &y[(t * k + s) * d..(t * k + s + 1) * d];
                if s == 0 {
                    for (o, &v) in o.iter_mut().zip(ys) {
                        *o = v * w;
                    }
                } else {
                    for (o, &v) in o.iter_mut().zip(ys) {
                        *o += v * w;
                    }
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_orders_like_its_input() {
        let l: Vec<f32> = (0..11).map(|i| ((i * 7) % 11) as f32 * 0.37 - 1.0).collect();
        let mut p = vec![0f32; 11];
        softmax(&l, &mut p);
        let s: f32 = p.iter().sum();
        assert!((s - 1.0).abs() < 1e-5, "{s}");
        for i in 0..11 {
            for j in 0..11 {
                assert_eq!(l[i] < l[j], p[i] < p[j], "{i} {j}");
            }
        }
    }

    #[test]
    fn selection_is_descending_with_ties_in_index_order_and_normalised() {
        let p = [0.1f32, 0.3, 0.05, 0.3, 0.25];
        let (mut ids, mut w) = ([0u32; 3], [0f32; 3]);
        select(&p, 3, false, &mut ids, &mut w);
        assert_eq!(ids, [1, 3, 4]);
        assert_eq!(w, [0.3, 0.3, 0.25]);
        select(&p, 3, true, &mut ids, &mut w);
        let sum = (0.3f32 as f64 + 0.3f32 as f64 + 0.25f32 as f64) as f32;
        assert_eq!(w, [0.3 / sum, 0.3 / sum, 0.25 / sum]);
        // Tiny weights: the sum is clamped, not divided by ~0.
        select(&[0.0, 1e-9, 0.0], 1, true, &mut ids[..1], &mut w[..1]);
        assert_eq!((ids[0], w[0]), (1, 1e-9 / 6.103_515_6e-5));
    }
}
