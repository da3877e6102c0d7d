//! The attention stage of the forward pass: every query head of a batch
//! over the cached keys and values, four queries of a head at a time where
//! it can ([`attention::attend4`]), the rest one by one.

use super::*;

impl LlamaModel {
    /// Causal grouped-query attention of the `n` query rows at positions
    /// `p0..p0+n` over the cached keys and values `0..p0+n`; with a
    /// `window` > 0 the query at position `p` sees only the positions after
    /// `p - window` (llama.cpp's standard sliding-window mask).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn attention(
        &self,
        q: &[f32],
        kc: &[f32],
        vt: &[f32],
        p0: usize,
        n: usize,
        kv_dim: usize,
        vs: usize,
        window: usize,
    ) -> Vec<f32> {
        let hp = &self.hp;
        let (hd, nh) = (hp.head_dim, hp.n_head);
        let group = nh / hp.n_head_kv;
        let mut out = vec![0f32; n * nh * hd];
        let first_of = |pos: usize| if window > 0 { (pos + 1).saturating_sub(window) } else { 0 };
        // Four consecutive queries of a head at a time (each key and value
        // row read once for the four); the rest, and a single query (its own
        // summation order), one by one.
        let quads = if n > 1 { n / 4 } else { 0 };
        let blocks: Vec<(usize, Vec<f32>)> = (0..quads * nh)
            .into_par_iter()
            .map_init(<[Scratch; 4]>::default, |scratch, idx| {
                let (g, h) = (idx / nh, idx % nh);
                let kvh = h / group;
                let i0 = 4 * g;
                let mut o = vec![0f32; 4 * hd];
                let (a, b) = o.split_at_mut(2 * hd);
                let (o0, o1) = a.split_at_mut(hd);
                let (o2, o3) = b.split_at_mut(hd);
                attention::attend4(
                    std::array::from_fn(|m| &q[((i0 + m) * nh + h) * hd..][..hd]),
                    &kc[kvh * hd..],
                    kv_dim,
                    &vt[kvh * hd * vs..],
                    vs,
                    std::array::from_fn(|m| first_of(p0 + i0 + m)),
                    std::array::from_fn(|m| p0 + i0 + m + 1),
                    hp.kq_scale,
                    hp.attn_softcap.unwrap_or(0.0),
                    [o0, o1, o2, o3],
                    scratch,
                );
                (idx, o)
            })
            .collect();
        for (idx, o) in blocks {
            let (g, h) = (idx / nh, idx % nh);
            for (m, om) in o.chunks_exact(hd).enumerate() {
                let i = 4 * g + m;
                out[(i * nh + h) * hd..][..hd].copy_from_slice(om);
            }
        }
        let done = 4 * quads * nh * hd;
        out[done..].par_chunks_mut(hd).enumerate().for_each_init(Scratch::default, |scratch, (idx, o)| {
            let idx = idx + 4 * quads * nh;
            let (i, h) = (idx / nh, idx % nh);
            let kvh = h / group;
            let pos = p0 + i;
            let first = first_of(pos);
            attention::attend(
                &q[(i * nh + h) * hd..][..hd],
                &kc[kvh * hd..],
                kv_dim,
                &vt[kvh * hd * vs..],
                vs,
                first,
                pos + 1,
                hp.kq_scale,
                hp.attn_softcap.unwrap_or(0.0),
                n == 1,
                o,
                scratch,
            );
        });
        out
    }
}
