//! AVX-512 tile kernels for matrix products of float weights (F32, F16,
//! BF16) with several tokens.
//!
//! The AVX2 dot product ([`super::dot::avx2`]) sums a row in four 8-lane
//! FMA chains over 32-value chunks: two loads per FMA, so a product of many
//! tokens is bound by loads, not arithmetic. Here one 16-lane register holds
//! two of those chains side by side (values `16h..16h+16` of every chunk are
//! chains `2h` and `2h+1`), and a tile of [`MR`] weight rows × [`NR`] tokens
//! is accumulated at once, each weight and activation vector loaded once for
//! the whole tile. Every lane sees the same fused multiply-adds in the same
//! order as in the AVX2 kernel, and the chains are reduced as it reduces
//! them, so every output is bit-identical to the AVX2 dot product's — the
//! forward pass gives the same numbers whichever kernel runs (the scalar
//! twin of that order is [`super::dot::scalar::dot_lanes`]).

#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use crate::quant::x86::hsum_ps;
    use half::{bf16, f16};
    use std::arch::x86_64::*;

    /// Weight rows per register tile.
    pub const MR: usize = 3;
    /// Tokens per register tile.
    pub const NR: usize = 4;

    /// 16 f32 values at `p`.
    #[inline(always)]
    unsafe fn load16_f32(p: *const f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable values at `p`.
        unsafe { _mm512_loadu_ps(p) }
    }

    /// 16 f16 values at `p`, widened.
    #[inline(always)]
    unsafe fn load16_f16(p: *const f16) -> __m512 {
        // SAFETY: as above, 16 values of 2 bytes.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }

    /// 16 bf16 values at `p`, widened (a bf16 is the top half of an f32).
    #[inline(always)]
    unsafe fn load16_bf16(p: *const bf16) -> __m512 {
        // SAFETY: as above, 16 values of 2 bytes.
        let h = unsafe { _mm256_loadu_si256(p as *const __m256i) };
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }

    macro_rules! gemm_by {
        ($(#[$doc:meta])* $name:ident, $tile:ident, $T:ty, $load:ident) => {
            /// One register tile: rows `w[r·n..]` (`R` of them) × tokens
            /// `x[t·n..]` (`T` of them), into `out[t·stride + r]`.
            ///
            /// # Safety
            /// AVX-512 F/BW/VL, AVX2, FMA and F16C on the running CPU; `w`
            /// holds `R·n` and `x` `T·n` values; `out` holds
            /// `(T−1)·stride + R` values.
            #[inline]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
            unsafe fn $tile<const R: usize, const T: usize>(
                w: *const $T,
                x: *const $T,
                n: usize,
                out: *mut f32,
                stride: usize,
            ) {
                let chunks = n / 32;
                let mut acc = [[[_mm512_setzero_ps(); 2]; R]; T];
                for c in 0..chunks {
                    for h in 0..2 {
                        let off = 32 * c + 16 * h;
                        // SAFETY: off + 16 ≤ 32·chunks ≤ n, rows r < R and
                        // tokens t < T are in `w` and `x`.
                        let wv: [__m512; R] = std::array::from_fn(|r| unsafe { $load(w.add(r * n + off)) });
                        for t in 0..T {
                            // SAFETY: as above.
                            let xv = unsafe { $load(x.add(t * n + off)) };
                            for r in 0..R {
                                acc[t][r][h] = _mm512_fmadd_ps(wv[r], xv, acc[t][r][h]);
                            }
                        }
                    }
                }
                for t in 0..T {
                    for r in 0..R {
                        // Chains 0..3 of the AVX2 kernel: lo/hi halves of
                        // the two accumulators, reduced in its order.
                        let [a, b] = acc[t][r];
                        let c0 = _mm512_castps512_ps256(a);
                        let c1 = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)));
                        let c2 = _mm512_castps512_ps256(b);
                        let c3 = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(b)));
                        let sum = _mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3));
                        let mut s = hsum_ps(sum) as f64;
                        for k in 32 * chunks..n {
                            // SAFETY: k < n, in row r and token t.
                            let (p, q) = unsafe { (*w.add(r * n + k), *x.add(t * n + k)) };
                            s += f32::from(p) as f64 * f32::from(q) as f64;
                        }
                        // SAFETY: t·stride + r < (T−1)·stride + R.
                        unsafe { *out.add(t * stride + r) = s as f32 };
                    }
                }
            }

            $(#[$doc])*
            ///
            /// `w` holds `w.len() / n` rows and `x` `x.len() / n` tokens of
            /// `n` values; `out[t · rows + r]` receives row `r` · token `t`,
            /// bit-identical to the AVX2 dot product of the two.
            ///
            /// # Safety
            /// The CPU must support AVX-512 F/BW/VL, AVX2, FMA and F16C.
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
            pub unsafe fn $name(w: &[$T], x: &[$T], n: usize, out: &mut [f32]) {
                if n == 0 {
                    return;
                }
                let (rows, tokens) = (w.len() / n, x.len() / n);
                assert!(out.len() >= rows * tokens, "output of {} for {rows} × {tokens}", out.len());
                let (wp, xp, op) = (w.as_ptr(), x.as_ptr(), out.as_mut_ptr());
                let mut t = 0;
                while t < tokens {
                    let nt = (tokens - t).min(NR);
                    let mut r = 0;
                    while r < rows {
                        let nr = (rows - r).min(MR);
                        // SAFETY: rows r..r+nr and tokens t..t+nt exist; the
                        // output index (t+i)·rows + r + j < tokens·rows.
                        unsafe {
                            let (wr, xt, o) = (wp.add(r * n), xp.add(t * n), op.add(t * rows + r));
                            match (nr, nt) {
                                (3, 4) => $tile::<3, 4>(wr, xt, n, o, rows),
                                (3, 3) => $tile::<3, 3>(wr, xt, n, o, rows),
                                (3, 2) => $tile::<3, 2>(wr, xt, n, o, rows),
                                (3, _) => $tile::<3, 1>(wr, xt, n, o, rows),
                                (2, 4) => $tile::<2, 4>(wr, xt, n, o, rows),
                                (2, 3) => $tile::<2, 3>(wr, xt, n, o, rows),
                                (2, 2) => $tile::<2, 2>(wr, xt, n, o, rows),
                                (2, _) => $tile::<2, 1>(wr, xt, n, o, rows),
                                (_, 4) => $tile::<1, 4>(wr, xt, n, o, rows),
                                (_, 3) => $tile::<1, 3>(wr, xt, n, o, rows),
                                (_, 2) => $tile::<1, 2>(wr, xt, n, o, rows),
                                (_, _) => $tile::<1, 1>(wr, xt, n, o, rows),
                            }
                        }
                        r += nr;
                    }
                    t += nt;
                }
            }
        };
    }

    gemm_by!(
        /// Products of f32 weight rows with f32 tokens.
        gemm_f32, tile_f32, f32, load16_f32
    );
    gemm_by!(
        /// Products of f16 weight rows with f16 tokens.
        gemm_f16, tile_f16, f16, load16_f16
    );
    gemm_by!(
        /// Products of bf16 weight rows with bf16 tokens.
        gemm_bf16, tile_bf16, bf16, load16_bf16
    );
}
