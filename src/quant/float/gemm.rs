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
//!
//! F16 and BF16 weights and tokens are widened to f32 first (exactly: the
//! weights once per call, each group of [`avx512::NR`] tokens once for all
//! rows) and multiplied by the f32 tiles: converting inside the tile took
//! two instructions per loaded vector, as many as its products.

#[cfg(target_arch = "x86_64")]
pub mod avx512 {
    use crate::quant::x86::hsum_ps;
    use crate::quant::GemmOut;
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

    /// One register tile: rows `w[r·n..]` (`R` of them) × tokens
    /// `x[t·n..]` (`T` of them), into `out[t·stride + r]`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL, AVX2, FMA and F16C on the running CPU; `w` holds
    /// `R·n` and `x` `T·n` values; `out` holds `(T−1)·stride + R` values.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn tile<const R: usize, const T: usize>(
        w: *const f32,
        x: *const f32,
        n: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let chunks = n / 32;
        let mut acc = [[[_mm512_setzero_ps(); 2]; R]; T];
        for c in 0..chunks {
            for h in 0..2 {
                let off = 32 * c + 16 * h;
                // SAFETY: off + 16 ≤ 32·chunks ≤ n, rows r < R and tokens
                // t < T are in `w` and `x`.
                let wv: [__m512; R] = std::array::from_fn(|r| unsafe { load16_f32(w.add(r * n + off)) });
                for t in 0..T {
                    // SAFETY: as above.
                    let xv = unsafe { load16_f32(x.add(t * n + off)) };
                    for r in 0..R {
                        acc[t][r][h] = _mm512_fmadd_ps(wv[r], xv, acc[t][r][h]);
                    }
                }
            }
        }
        for t in 0..T {
            for r in 0..R {
                // Chains 0..3 of the AVX2 kernel: lo/hi halves of the two
                // accumulators, reduced in its order.
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
                    s += p as f64 * q as f64;
                }
                // SAFETY: t·stride + r < (T−1)·stride + R.
                unsafe { *out.add(t * stride + r) = s as f32 };
            }
        }
    }

    /// Every row of `w` (`rows` of `n` values) × `nt ≤ NR` tokens of `x`,
    /// into `out[t·stride + r]`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL, AVX2, FMA and F16C on the running CPU; `w` holds
    /// `rows·n` and `x` `nt·n` values; `out` holds `(nt−1)·stride + rows`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn rows_by_tokens(
        w: *const f32,
        x: *const f32,
        rows: usize,
        nt: usize,
        n: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let mut r = 0;
        while r < rows {
            let nr = (rows - r).min(MR);
            // SAFETY: rows r..r+nr and the nt tokens exist; the output
            // index i·stride + r + j < (nt−1)·stride + rows.
            unsafe {
                let (wr, o) = (w.add(r * n), out.add(r));
                match (nr, nt) {
                    (3, 4) => tile::<3, 4>(wr, x, n, o, stride),
                    (3, 3) => tile::<3, 3>(wr, x, n, o, stride),
                    (3, 2) => tile::<3, 2>(wr, x, n, o, stride),
                    (3, _) => tile::<3, 1>(wr, x, n, o, stride),
                    (2, 4) => tile::<2, 4>(wr, x, n, o, stride),
                    (2, 3) => tile::<2, 3>(wr, x, n, o, stride),
                    (2, 2) => tile::<2, 2>(wr, x, n, o, stride),
                    (2, _) => tile::<2, 1>(wr, x, n, o, stride),
                    (_, 4) => tile::<1, 4>(wr, x, n, o, stride),
                    (_, 3) => tile::<1, 3>(wr, x, n, o, stride),
                    (_, 2) => tile::<1, 2>(wr, x, n, o, stride),
                    (_, _) => tile::<1, 1>(wr, x, n, o, stride),
                }
            }
            r += nr;
        }
    }

    /// A 16-bit float type the tiles widen to f32 before multiplying.
    trait Half: Copy {
        /// The value as f32 (exact).
        fn widen(self) -> f32;
        /// 16 values at `p` as f32 (exact).
        ///
        /// # Safety
        /// AVX-512 F/BW, AVX2 and F16C on the running CPU; 16 readable
        /// values at `p`.
        unsafe fn widen16(p: *const Self) -> __m512;
    }

    impl Half for f16 {
        fn widen(self) -> f32 {
            self.to_f32()
        }
        #[inline(always)]
        unsafe fn widen16(p: *const Self) -> __m512 {
            // SAFETY: the caller guarantees the features and 16 values of 2 bytes.
            unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
        }
    }

    impl Half for bf16 {
        fn widen(self) -> f32 {
            self.to_f32()
        }
        #[inline(always)]
        unsafe fn widen16(p: *const Self) -> __m512 {
            // SAFETY: as above. A bf16 is the top half of an f32.
            unsafe {
                let h = _mm256_loadu_si256(p as *const __m256i);
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            }
        }
    }

    /// 16 f32 on a cache line of their own: widened copies start on a line,
    /// so that no 16-value load of the tiles spans two (the heap gives
    /// 16-byte alignment, and split loads halved the tiles' speed).
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Line([f32; 16]);

    /// `src` widened into `dst` (resized to hold it); returns its first value.
    ///
    /// # Safety
    /// AVX-512 F/BW, AVX2 and F16C on the running CPU.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn widen<H: Half>(src: &[H], dst: &mut Vec<Line>) -> *const f32 {
        dst.clear();
        dst.resize(src.len().div_ceil(16), Line([0.0; 16]));
        let full = src.len() / 16 * 16;
        let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr() as *mut f32);
        let mut i = 0;
        while i < full {
            // SAFETY: i + 16 ≤ full ≤ src.len() ≤ the f32 values of `dst`.
            unsafe { _mm512_storeu_ps(dp.add(i), H::widen16(sp.add(i))) };
            i += 16;
        }
        for k in full..src.len() {
            // SAFETY: k < src.len() ≤ the f32 values of `dst`.
            unsafe { *dp.add(k) = src[k].widen() };
        }
        dp
    }

    thread_local! {
        /// Per thread: a tile's weights and one token group, widened.
        static WIDE: std::cell::RefCell<(Vec<Line>, Vec<Line>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }

    /// Products of f32 weight rows with f32 tokens.
    ///
    /// `w` holds `w.len() / n` rows and `x` `x.len() / n` tokens of `n`
    /// values; `out.at(t, r)` receives row `r` · token `t`, bit-identical
    /// to the AVX2 dot product of the two.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL, AVX2, FMA and F16C; `out` as
    /// [`GemmOut`] says.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn gemm_f32(w: &[f32], x: &[f32], n: usize, out: GemmOut) {
        if n == 0 {
            return;
        }
        let (rows, tokens) = (w.len() / n, x.len() / n);
        let mut t = 0;
        while t < tokens {
            let nt = (tokens - t).min(NR);
            // SAFETY: the rows and tokens t..t+nt exist; `out` holds their
            // outputs (the caller's).
            unsafe { rows_by_tokens(w.as_ptr(), x[t * n..].as_ptr(), rows, nt, n, out.at(t, 0), out.stride) };
            t += nt;
        }
    }

    /// [`gemm_f32`] of 16-bit weights and tokens: the weights widened once
    /// per call, each group of [`NR`] tokens once for all rows (exact
    /// conversions: the f32 tiles' arithmetic and bits). Converting every
    /// vector inside the tile cost as many instructions as its products.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL, AVX2, FMA and F16C; `out` as
    /// [`GemmOut`] says.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    unsafe fn gemm_half<H: Half>(w: &[H], x: &[H], n: usize, out: GemmOut) {
        if n == 0 {
            return;
        }
        let (rows, tokens) = (w.len() / n, x.len() / n);
        WIDE.with_borrow_mut(|(ww, xw)| {
            // SAFETY: the features are the caller's.
            let wp = unsafe { widen(&w[..rows * n], ww) };
            let mut t = 0;
            while t < tokens {
                let nt = (tokens - t).min(NR);
                // SAFETY: as in `gemm_f32`, on the widened copies (`wp` is
                // still `ww`'s: only `xw` is written again).
                unsafe {
                    let xp = widen(&x[t * n..(t + nt) * n], xw);
                    rows_by_tokens(wp, xp, rows, nt, n, out.at(t, 0), out.stride)
                };
                t += nt;
            }
        });
    }

    /// Products of f16 weight rows with f16 tokens ([`gemm_half`]).
    ///
    /// # Safety
    /// As [`gemm_f32`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn gemm_f16(w: &[f16], x: &[f16], n: usize, out: GemmOut) {
        // SAFETY: the features are the caller's.
        unsafe { gemm_half(w, x, n, out) }
    }

    /// Products of bf16 weight rows with bf16 tokens ([`gemm_half`]).
    ///
    /// # Safety
    /// As [`gemm_f32`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    pub unsafe fn gemm_bf16(w: &[bf16], x: &[bf16], n: usize, out: GemmOut) {
        // SAFETY: the features are the caller's.
        unsafe { gemm_half(w, x, n, out) }
    }
}
