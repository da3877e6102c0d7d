//! AVX-512 VNNI tile kernels for matrix products of legacy weights (Q4_0,
//! Q4_1, Q5_0, Q5_1, Q8_0) with several tokens of Q8_0 / Q8_1 activations.
//!
//! The AVX2 dot product ([`super::dot::avx2`]) forms, per block, the exact
//! integer sums of 4 consecutive products in 8 i32 lanes, converts them to
//! float and accumulates `d_w·d_a · sum` into 8 float lanes with one FMA per
//! block, then reduces the lanes. Here `vpdpbusd` forms the same integer
//! lane sums for two tokens at once (one 16-lane register: token `t` in
//! lanes 0..8, token `t+1` in lanes 8..16) and a register tile of [`MR`]
//! weight rows (2·`MR` for the types without a minimum) × `2·`[`NP`] tokens
//! is accumulated together. Nothing is decoded in the register tiles: a
//! call first prepares its tokens once for all its rows (token pairs'
//! levels in one register, their scales in halves, the offset's integer
//! start), then decodes each group of rows once for all its tokens (unsigned
//! levels and f32 scales, which the tiles read with broadcast loads). The
//! weights enter `vpdpbusd` as unsigned levels (`q`, or `q + 128` for
//! Q8_0); the offset of the signed types is taken back exactly in the
//! integer accumulator (`− offset · Σ a`, formed once per token and block).
//! Every lane then sees the same integer sum, the same float multiply
//! (`d_w·d_a`), FMA and final reduction as in the AVX2 kernel, so every
//! output is bit-identical to the AVX2 dot product's.
//!
//! The one place the integer sums can differ: ggml's AVX2 kernels (and
//! ours) multiply signed levels with a sign trick that turns an activation
//! level of −128 against a negative weight into −128 instead of +128, where
//! `vpdpbusd` is exact. Q8_0 activations hold −128 only when `127 / amax`
//! overflows (a block whose largest magnitude is below 3.7e-37), and then
//! the block's f16 scale is 0: its term `d_w·0·sum` is a zero that leaves the
//! accumulator unchanged either way, so the outputs still agree bit for bit
//! (`tests/matmul.rs` holds such a block).

/// Weight bytes per tile for these kernels ([`crate::quant::GgmlBlock::GEMM_TILE_BYTES`]):
/// they decode each group of rows once per tile and prepare the tile's
/// tokens once, so taller tiles prepare the tokens less often (`bench
/// matmul` 1024×1024 × 512 tokens, one thread: Q8_0 124 → 138 GFLOP/s from
/// 96 KiB to 384 KiB, Q4_0 132 → 140).
pub const TILE_BYTES: usize = 384 * 1024;

#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use crate::quant::blocks::*;
    use crate::quant::x86::{bits_32, f16x2_to_f32, hsum_ps, nibbles_32};
    use std::arch::x86_64::*;

    /// Weight rows per register tile.
    pub const MR: usize = 4;
    /// Token pairs per register tile.
    pub const NP: usize = 2;

    /// The scale, 32 activation levels and (Q8_1) `d·Σq` of an activation
    /// block.
    pub(crate) trait Act {
        fn d(&self) -> half::f16;
        fn qs(&self) -> &[i8; 32];
        fn s(&self) -> half::f16;
    }

    impl Act for BlockQ8_0 {
        #[inline(always)]
        fn d(&self) -> half::f16 {
            self.d
        }
        #[inline(always)]
        fn qs(&self) -> &[i8; 32] {
            &self.qs
        }
        #[inline(always)]
        fn s(&self) -> half::f16 {
            half::f16::ZERO
        }
    }

    impl Act for BlockQ8_1 {
        #[inline(always)]
        fn d(&self) -> half::f16 {
            self.d
        }
        #[inline(always)]
        fn qs(&self) -> &[i8; 32] {
            &self.qs
        }
        #[inline(always)]
        fn s(&self) -> half::f16 {
            self.s
        }
    }

    /// Q8_0 levels plus 128, as unsigned bytes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn levels_q8_0(b: &BlockQ8_0) -> __m256i {
        // SAFETY: `qs` is exactly 32 bytes.
        let q = unsafe { _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i) };
        _mm256_xor_si256(q, _mm256_set1_epi8(0x80u8 as i8))
    }

    /// Q4_0 / Q4_1 levels (0..16, the offset not taken).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn levels_q4_0(b: &BlockQ4_0) -> __m256i {
        nibbles_32(&b.qs)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn levels_q4_1(b: &BlockQ4_1) -> __m256i {
        nibbles_32(&b.qs)
    }

    /// Q5_0 / Q5_1 levels (0..32): the nibble plus the fifth bit.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn levels_q5_0(b: &BlockQ5_0) -> __m256i {
        _mm256_or_si256(nibbles_32(&b.qs), _mm256_and_si256(bits_32(&b.qh), _mm256_set1_epi8(0x10)))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn levels_q5_1(b: &BlockQ5_1) -> __m256i {
        _mm256_or_si256(nibbles_32(&b.qs), _mm256_and_si256(bits_32(&b.qh), _mm256_set1_epi8(0x10)))
    }

    /// A 16-lane register with `a` in lanes 0..8 and `b` in lanes 8..16.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn halves(a: f32, b: f32) -> __m512 {
        _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(a), _mm512_set1_ps(b))
    }

    /// A call's activations, prepared once for all its weight rows. Element
    /// `p·n + b` belongs to token pair `p` (tokens `2p` and `2p+1`, the
    /// last token repeated when the count is odd) and block `b`.
    struct Acts {
        /// The two tokens' levels: token `2p` in bytes 0..32.
        q: Vec<__m512i>,
        /// `−offset · Σ` of each 4 consecutive levels, where the integer
        /// sums start (types with an offset).
        base: Vec<__m512i>,
        /// The two tokens' scales, in halves.
        d: Vec<__m512>,
        /// Their `d·Σq` (Q8_1), in halves.
        s: Vec<__m512>,
    }

    /// Prepare `a` (`a.len() / n` tokens of `n` blocks).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    fn prepare<A: Act>(a: &[A], n: usize, offset: u8, min: bool) -> Acts {
        let tokens = a.len() / n;
        let pairs = tokens.div_ceil(2);
        let zero = _mm512_setzero_si512();
        let len = pairs * n;
        let mut acts = Acts {
            q: vec![zero; len],
            base: vec![zero; if offset != 0 { len } else { 0 }],
            d: vec![_mm512_setzero_ps(); len],
            s: vec![_mm512_setzero_ps(); if min { len } else { 0 }],
        };
        let off = _mm512_set1_epi8(offset as i8);
        let mut i = 0;
        for p in 0..pairs {
            let (x, y) = (&a[2 * p * n..][..n], &a[(2 * p + 1).min(tokens - 1) * n..][..n]);
            for (x, y) in x.iter().zip(y) {
                // SAFETY: `qs` is exactly 32 bytes.
                let (qx, qy) = unsafe {
                    (
                        _mm256_loadu_si256(x.qs().as_ptr() as *const __m256i),
                        _mm256_loadu_si256(y.qs().as_ptr() as *const __m256i),
                    )
                };
                let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qx), qy);
                acts.q[i] = q;
                if offset != 0 {
                    acts.base[i] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, off, q));
                }
                // SAFETY: F16C is enabled here.
                let (dx, dy) = unsafe { f16x2_to_f32(x.d(), y.d()) };
                acts.d[i] = halves(dx, dy);
                if min {
                    // SAFETY: as above.
                    let (sx, sy) = unsafe { f16x2_to_f32(x.s(), y.s()) };
                    acts.s[i] = halves(sx, sy);
                }
                i += 1;
            }
        }
        acts
    }

    /// One register tile: `R` decoded weight rows (row `k`, block `b` at
    /// `k·n + b` of `lv`, `dw`, `mw`: unsigned levels, scale, minimum) ×
    /// the token pairs `p0..p0+P` of `acts`, into `out[t·stride + k]` for
    /// the `nt` real tokens. `MIN`: the `_1` types (the sums of minimum ×
    /// `d·Σq` kept apart, no offset); otherwise the integer sums start at
    /// `acts.base`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the running CPU; `out`
    /// holds `(nt−1)·stride + R` values.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn tile<const R: usize, const P: usize, const MIN: bool>(
        lv: &[__m256i],
        dw: &[f32],
        mw: &[f32],
        acts: &Acts,
        p0: usize,
        nt: usize,
        n: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let (lv, dw) = (&lv[..R * n], &dw[..R * n]);
        let zero = _mm512_setzero_si512();
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let mut mins = [[_mm512_setzero_ps(); P]; R];
        let (aq, ad) = (&acts.q[p0 * n..(p0 + P) * n], &acts.d[p0 * n..(p0 + P) * n]);
        let ab = if MIN { &[][..] } else { &acts.base[p0 * n..(p0 + P) * n] };
        let (asum, mw) = if MIN { (&acts.s[p0 * n..(p0 + P) * n], &mw[..R * n]) } else { (&[][..], &[][..]) };
        for b in 0..n {
            let mut q = [zero; P];
            let mut base = [zero; P];
            let mut d = [_mm512_setzero_ps(); P];
            let mut s = [_mm512_setzero_ps(); P];
            for p in 0..P {
                q[p] = aq[p * n + b];
                d[p] = ad[p * n + b];
                if MIN {
                    s[p] = asum[p * n + b];
                } else {
                    base[p] = ab[p * n + b];
                }
            }
            for r in 0..R {
                let wq = _mm512_broadcast_i64x4(lv[r * n + b]);
                let dwr = _mm512_set1_ps(dw[r * n + b]);
                for p in 0..P {
                    let sum = _mm512_dpbusd_epi32(base[p], wq, q[p]);
                    acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dwr, d[p]), _mm512_cvtepi32_ps(sum), acc[r][p]);
                    if MIN {
                        mins[r][p] = _mm512_add_ps(mins[r][p], _mm512_mul_ps(_mm512_set1_ps(mw[r * n + b]), s[p]));
                    }
                }
            }
        }
        for r in 0..R {
            for p in 0..P {
                for h in 0..2 {
                    let t = 2 * p + h;
                    if t >= nt {
                        continue;
                    }
                    let (lanes, m) = if h == 0 {
                        (_mm512_castps512_ps256(acc[r][p]), _mm512_cvtss_f32(mins[r][p]))
                    } else {
                        let hi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc[r][p]));
                        let mhi = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(mins[r][p]));
                        (_mm256_castpd_ps(hi), _mm256_cvtss_f32(_mm256_castpd_ps(mhi)))
                    };
                    // SAFETY: AVX2 is enabled here.
                    let v = unsafe {
                        if MIN {
                            hsum_ps(lanes) + m
                        } else {
                            hsum_ps(lanes)
                        }
                    };
                    // SAFETY: t < nt, r < R: inside `out`.
                    unsafe { *out.add(t * stride + r) = v };
                }
            }
        }
    }

    /// Products of the weight rows `w` (`w.len() / n` rows of `n` blocks)
    /// with the tokens `a` (`a.len() / n` tokens), `out[t · rows + r]`
    /// receiving row `r` · token `t`: the tokens are prepared once for all
    /// rows, each group of rows decoded once for all tokens by `decode`
    /// (a block's levels as unsigned bytes, its scale and its minimum).
    /// `offset`: what `decode` added to signed levels (taken back in the
    /// integer sums); `MIN`: the `_1` types. IQ4_NL, whose tinyBLAS
    /// arithmetic is the same per 32 values, runs it too.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub(crate) unsafe fn run<W, A: Act, const MIN: bool>(
        w: &[W],
        a: &[A],
        n: usize,
        out: crate::quant::GemmOut,
        offset: u8,
        decode: impl Fn(&W) -> (__m256i, f32, f32),
    ) {
        if n == 0 {
            return;
        }
        let (rows, tokens) = (w.len() / n, a.len() / n);
        if rows == 0 || tokens == 0 {
            return;
        }
        let acts = prepare(a, n, offset, MIN);
        // Types without a minimum keep 8 rows × 2 token pairs of
        // accumulators in registers, the others 4.
        let group = if MIN { MR } else { 2 * MR };
        let mut lv = vec![_mm256_setzero_si256(); group * n];
        let mut dw = vec![0f32; group * n];
        let mut mw = vec![0f32; group * n];
        let mut r = 0;
        while r < rows {
            let left = rows - r;
            let nr = if !MIN && left >= 2 * MR { 2 * MR } else { left.min(MR) };
            let blocks = &w[r * n..(r + nr) * n];
            for (((blk, l), d), m) in blocks.iter().zip(&mut lv).zip(&mut dw).zip(&mut mw) {
                (*l, *d, *m) = decode(blk);
            }
            let mut t = 0;
            while t < tokens {
                let nt = (tokens - t).min(2 * NP);
                let p0 = t / 2;
                // SAFETY: rows r..r+nr and tokens t..t+nt exist; `out` holds
                // their outputs (the caller's).
                unsafe {
                    let (o, stride) = (out.at(t, r), out.stride);
                    let (lv, dw, mw) = (&lv[..], &dw[..], &mw[..]);
                    match (nr, nt > 2) {
                        (8, true) => tile::<8, 2, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (8, false) => tile::<8, 1, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (4, true) => tile::<4, 2, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (4, false) => tile::<4, 1, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (3, true) => tile::<3, 2, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (3, false) => tile::<3, 1, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (2, true) => tile::<2, 2, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (2, false) => tile::<2, 1, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (_, true) => tile::<1, 2, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                        (_, false) => tile::<1, 1, MIN>(lv, dw, mw, &acts, p0, nt, n, o, stride),
                    }
                }
                t += nt;
            }
            r += nr;
        }
    }

    macro_rules! vnni_gemm {
        ($(#[$doc:meta])* $name:ident, $W:ty, $A:ty, $levels:ident, offset: $offset:expr, min: $min:expr) => {
            $(#[$doc])*
            ///
            /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of
            /// `n` blocks; `out.at(t, r)` receives row `r` · token `t`,
            /// bit-identical to the AVX2 dot product of the two (see the
            /// module documentation).
            ///
            /// # Safety
            /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C;
            /// `out` as [`crate::quant::GemmOut`] says.
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            pub unsafe fn $name(w: &[$W], a: &[$A], n: usize, out: crate::quant::GemmOut) {
                // SAFETY: the features `run` needs are enabled here.
                unsafe {
                    run::<$W, $A, $min>(w, a, n, out, $offset as u8, |blk| {
                        let (d, m) = f16x2_to_f32(blk.d, weight_min(blk));
                        ($levels(blk), d, m)
                    })
                }
            }
        };
    }

    /// The minimum of a `_1` block, zero for the symmetric types.
    trait WeightMin {
        fn min(&self) -> half::f16;
    }
    #[inline(always)]
    fn weight_min<B: WeightMin>(b: &B) -> half::f16 {
        b.min()
    }
    macro_rules! no_min {
        ($($B:ty),*) => {$(
            impl WeightMin for $B {
                #[inline(always)]
                fn min(&self) -> half::f16 {
                    half::f16::ZERO
                }
            }
        )*};
    }
    no_min!(BlockQ4_0, BlockQ5_0, BlockQ8_0);
    impl WeightMin for BlockQ4_1 {
        #[inline(always)]
        fn min(&self) -> half::f16 {
            self.m
        }
    }
    impl WeightMin for BlockQ5_1 {
        #[inline(always)]
        fn min(&self) -> half::f16 {
            self.m
        }
    }

    vnni_gemm!(
        /// Products of Q8_0 weight rows with Q8_0 tokens.
        q8_0_q8_0, BlockQ8_0, BlockQ8_0, levels_q8_0, offset: 128, min: false
    );
    vnni_gemm!(
        /// Products of Q4_0 weight rows with Q8_0 tokens.
        q4_0_q8_0, BlockQ4_0, BlockQ8_0, levels_q4_0, offset: 8, min: false
    );
    vnni_gemm!(
        /// Products of Q5_0 weight rows with Q8_0 tokens.
        q5_0_q8_0, BlockQ5_0, BlockQ8_0, levels_q5_0, offset: 16, min: false
    );
    vnni_gemm!(
        /// Products of Q4_1 weight rows with Q8_1 tokens.
        q4_1_q8_1, BlockQ4_1, BlockQ8_1, levels_q4_1, offset: 0, min: true
    );
    vnni_gemm!(
        /// Products of Q5_1 weight rows with Q8_1 tokens.
        q5_1_q8_1, BlockQ5_1, BlockQ8_1, levels_q5_1, offset: 0, min: true
    );
}

/// The AVX2 twin of [`vnni`] for CPUs without AVX-512 VNNI: the same
/// driver shape (each group of rows decoded once per call, register tiles
/// of rows × tokens), with the AVX2 dot product's own arithmetic per (row,
/// token): per block, ggml's sign trick (`vpmaddubsw` of the weight levels'
/// magnitudes with the token levels negated where the weight is negative,
/// then `vpmaddwd` by 1: 8 lanes of 4 products), converted, multiplied by
/// `d_w·d_a` with one FMA into 8 float lanes, reduced at the end (plus the
/// `_1` types' minimum terms, summed apart). Decoded weights are signed
/// levels (Q4_0 `q − 8`, Q5_0 `q − 16`, Q8_0 as stored; Q4_1 and Q5_1
/// unsigned, where the sign trick is the plain product), so the integer
/// lanes, the −128 case included, are the AVX2 dot product's and every
/// output is bit-identical to it (tests/matmul.rs).
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::vnni::Act;
    use crate::quant::blocks::*;
    use crate::quant::x86::{bits_32, f16x2_to_f32, hsum_ps, nibbles_32};
    use std::arch::x86_64::*;

    /// Weight rows per register tile.
    const MR: usize = 4;
    /// Tokens per register tile.
    const NT: usize = 2;

    /// A group of rows, decoded: row `k`, block `b` at `b·MR + k` (the
    /// rows of one block side by side, one pointer for a register tile).
    struct Rows {
        /// Signed levels (the sign trick's second operand).
        q: Vec<__m256i>,
        /// Their magnitudes (its first).
        abs: Vec<__m256i>,
        d: Vec<f32>,
        m: Vec<f32>,
    }

    /// One register tile: `R` decoded rows × `T` tokens (`t0..t0+T` of
    /// `a`, their scales and `_1` sums in `ad`, `asum`), into
    /// `out[t·stride + k]`.
    ///
    /// # Safety
    /// AVX2, FMA and F16C on the running CPU; `rows` holds `MR·n` blocks,
    /// `a`, `ad` (and with `MIN` `asum`) `(t0 + T)·n`; `out` holds
    /// `(T−1)·stride + R` values.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn tile<A: Act, const R: usize, const T: usize, const MIN: bool>(
        rows: &Rows,
        a: &[A],
        ad: &[f32],
        asum: &[f32],
        t0: usize,
        n: usize,
        out: *mut f32,
        stride: usize,
    ) {
        debug_assert!(rows.q.len() >= MR * n && a.len() >= (t0 + T) * n && ad.len() >= (t0 + T) * n);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        let mut mins = [[0f32; T]; R];
        let (rq, rabs, rd, rm) = (rows.q.as_ptr(), rows.abs.as_ptr(), rows.d.as_ptr(), rows.m.as_ptr());
        // SAFETY (every access below): block b < n of token t0 + t < t0 + T
        // and of row k < R ≤ MR, inside the lengths the caller gives.
        let (ta, tad, tas) =
            unsafe { (a.as_ptr().add(t0 * n), ad.as_ptr().add(t0 * n), asum.as_ptr().wrapping_add(t0 * n)) };
        for b in 0..n {
            let y: [__m256i; T] =
                std::array::from_fn(|t| unsafe { _mm256_loadu_si256((*ta.add(t * n + b)).qs().as_ptr().cast()) });
            let da: [__m256; T] = std::array::from_fn(|t| unsafe { _mm256_set1_ps(*tad.add(t * n + b)) });
            for r in 0..R {
                let i = b * MR + r;
                let (q, abs, dw) = unsafe { (*rq.add(i), *rabs.add(i), _mm256_set1_ps(*rd.add(i))) };
                for t in 0..T {
                    let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(abs, _mm256_sign_epi8(y[t], q)), ones);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, da[t]), _mm256_cvtepi32_ps(dot), acc[r][t]);
                    if MIN {
                        mins[r][t] += unsafe { *rm.add(i) * *tas.add(t * n + b) };
                    }
                }
            }
        }
        for r in 0..R {
            for t in 0..T {
                // SAFETY: AVX2 is enabled here.
                let v = unsafe { hsum_ps(acc[r][t]) };
                let v = if MIN { v + mins[r][t] } else { v };
                // SAFETY: t < T, r < R: inside `out`.
                unsafe { *out.add(t * stride + r) = v };
            }
        }
    }

    /// Products of the weight rows `w` (`w.len() / n` rows of `n` blocks)
    /// with the tokens `a` (`a.len() / n` tokens), `out.at(t, r)` receiving
    /// row `r` · token `t`: the tokens' scales converted once, each group
    /// of rows decoded once for all tokens by `decode` (a block's signed
    /// levels, scale and minimum). `MIN`: the `_1` types. IQ4_NL, whose
    /// tinyBLAS arithmetic is the same per 32 values, runs it too.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `out` as
    /// [`crate::quant::GemmOut`] says.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(crate) unsafe fn run<W, A: Act, const MIN: bool>(
        w: &[W],
        a: &[A],
        n: usize,
        out: crate::quant::GemmOut,
        decode: impl Fn(&W) -> (__m256i, f32, f32),
    ) {
        if n == 0 {
            return;
        }
        let (nrows, tokens) = (w.len() / n, a.len() / n);
        if nrows == 0 || tokens == 0 {
            return;
        }
        let mut ad = vec![0f32; a.len()];
        let mut asum = vec![0f32; if MIN { a.len() } else { 0 }];
        for (i, blk) in a.iter().enumerate() {
            // SAFETY: F16C is enabled here.
            let (d, s) = unsafe { f16x2_to_f32(blk.d(), blk.s()) };
            ad[i] = d;
            if MIN {
                asum[i] = s;
            }
        }
        let zero = _mm256_setzero_si256();
        let mut rows =
            Rows { q: vec![zero; MR * n], abs: vec![zero; MR * n], d: vec![0f32; MR * n], m: vec![0f32; MR * n] };
        let mut r = 0;
        while r < nrows {
            let nr = (nrows - r).min(MR);
            for (i, blk) in w[r * n..(r + nr) * n].iter().enumerate() {
                let (q, d, m) = decode(blk);
                let j = (i % n) * MR + i / n;
                (rows.q[j], rows.abs[j], rows.d[j], rows.m[j]) = (q, _mm256_abs_epi8(q), d, m);
            }
            let mut t = 0;
            while t < tokens {
                let nt = (tokens - t).min(NT);
                // SAFETY: rows r..r+nr and tokens t..t+nt exist; `out` holds
                // their outputs (the caller's).
                unsafe {
                    let (o, stride) = (out.at(t, r), out.stride);
                    let (rs, ad, asum) = (&rows, &ad[..], &asum[..]);
                    match (nr, nt) {
                        (4, 2) => tile::<A, 4, 2, MIN>(rs, a, ad, asum, t, n, o, stride),
                        (4, _) => tile::<A, 4, 1, MIN>(rs, a, ad, asum, t, n, o, stride),
                        (3, 2) => tile::<A, 3, 2, MIN>(rs, a, ad, asum, t, n, o, stride),
                        (3, _) => tile::<A, 3, 1, MIN>(rs, a, ad, asum, t, n, o, stride),
                        (2, 2) => tile::<A, 2, 2, MIN>(rs, a, ad, asum, t, n, o, stride),
                        (2, _) => tile::<A, 2, 1, MIN>(rs, a, ad, asum, t, n, o, stride),
                        (_, 2) => tile::<A, 1, 2, MIN>(rs, a, ad, asum, t, n, o, stride),
                        (_, _) => tile::<A, 1, 1, MIN>(rs, a, ad, asum, t, n, o, stride),
                    }
                }
                t += nt;
            }
            r += nr;
        }
    }

    macro_rules! avx2_gemm {
        ($(#[$doc:meta])* $name:ident, $W:ty, $A:ty, min: $min:expr, |$b:ident| $levels:expr, $m:expr) => {
            $(#[$doc])*
            ///
            /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of
            /// `n` blocks; `out.at(t, r)` receives row `r` · token `t`,
            /// bit-identical to the AVX2 dot product of the two (see the
            /// module documentation).
            ///
            /// # Safety
            /// The CPU must support AVX2, FMA and F16C; `out` as
            /// [`crate::quant::GemmOut`] says.
            #[target_feature(enable = "avx2,fma,f16c")]
            pub unsafe fn $name(w: &[$W], a: &[$A], n: usize, out: crate::quant::GemmOut) {
                // SAFETY: the features `run` and the decoders need are enabled here.
                unsafe {
                    run::<$W, $A, $min>(w, a, n, out, |$b| {
                        let (d, m) = f16x2_to_f32($b.d, $m);
                        ($levels, d, m)
                    })
                }
            }
        };
    }

    avx2_gemm!(
        /// Products of Q8_0 weight rows with Q8_0 tokens.
        q8_0_q8_0, BlockQ8_0, BlockQ8_0, min: false,
        |b| _mm256_loadu_si256(b.qs.as_ptr().cast()), half::f16::ZERO
    );
    avx2_gemm!(
        /// Products of Q4_0 weight rows with Q8_0 tokens.
        q4_0_q8_0, BlockQ4_0, BlockQ8_0, min: false,
        |b| _mm256_sub_epi8(nibbles_32(&b.qs), _mm256_set1_epi8(8)), half::f16::ZERO
    );
    avx2_gemm!(
        /// Products of Q5_0 weight rows with Q8_0 tokens.
        q5_0_q8_0, BlockQ5_0, BlockQ8_0, min: false,
        |b| _mm256_sub_epi8(
            _mm256_or_si256(nibbles_32(&b.qs), _mm256_and_si256(bits_32(&b.qh), _mm256_set1_epi8(0x10))),
            _mm256_set1_epi8(16)
        ),
        half::f16::ZERO
    );
    avx2_gemm!(
        /// Products of Q4_1 weight rows with Q8_1 tokens.
        q4_1_q8_1, BlockQ4_1, BlockQ8_1, min: true,
        |b| nibbles_32(&b.qs), b.m
    );
    avx2_gemm!(
        /// Products of Q5_1 weight rows with Q8_1 tokens.
        q5_1_q8_1, BlockQ5_1, BlockQ8_1, min: true,
        |b| _mm256_or_si256(nibbles_32(&b.qs), _mm256_and_si256(bits_32(&b.qh), _mm256_set1_epi8(0x10))),
        b.m
    );
}
