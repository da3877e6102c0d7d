//! AVX-512 VNNI tile kernels for matrix products of k-quant weights (Q2_K,
//! Q3_K, Q4_K, Q5_K, Q6_K) with 8 or more tokens of Q8_K activations, in the
//! arithmetic of ggml's tiled GEMM (what llama.cpp computes these products
//! with; [`super::dot::scalar::batch_step`]): per super-block the exact
//! integers `s1 = Σ_j sc_j·Σ q·q8` and `s2 = Σ_j m_j·bsum_j`, then
//! `res = d_w·s1 − dmin_w·s2` (one FMA) and `acc += res·d_a` (one FMA).
//!
//! Each super-block of a strip's [`MR`] rows is unpacked to unsigned levels
//! once for all of the strip's tokens (up to 2·[`NP`]; unpacking per few
//! tokens cost as much as the products) and multiplied with the activations
//! by `vpdpbusd` (4 products per i32 lane, at most 4·63·127 in magnitude, so
//! they fit 16 bits); two chunks' lanes are packed to i16 (`vpackssdw`,
//! exact) and `vpdpwssd` weights them by the sub-block scales and adds them
//! into 8 i32 lanes per token — one multiply instruction per 64 products
//! where `maddubs` + `vpdpwssd` took two. Q2_K needs neither pack nor
//! `vpdpwssd`: its levels times their sub-block scales (at most 3·15) are
//! still bytes, formed once at decoding, and `vpdpbusd` sums `sc·q·q8`
//! straight into 8 i32 lanes per token. One 16-lane register holds two
//! tokens; Q3_K's levels are multiplied as `low + 4·high` (0..8) and Q6_K's
//! as 0..64, their offsets `4·Σ sc·bsum` and `32·Σ sc·bsum` taken off the
//! lanes by one `madd` with the activations' block sums. The lanes of 8 rows × 2 tokens are then summed into one
//! register (lane `8·(r/4) + 4h + r mod 4`: row `r`, token `h`), where the float steps run
//! for all sixteen at once. Integer sums do not depend on their order, so every
//! output is bit-identical to the batch dot product (tests/matmul.rs).

#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use crate::quant::blocks::*;
    use crate::quant::kquants::dot::avx2::{crumbs, scales_mins_k4, scales_q3k};
    use crate::quant::x86::{load_16, load_i16x16, load_i8, load_u8, scale_pair};
    use std::arch::x86_64::*;

    /// Weight rows per strip (fewer only at the end of the rows).
    pub const MR: usize = 8;
    /// Token pairs per strip (at most 64 tokens: the activations of a
    /// strip stay in L2).
    pub const NP: usize = 32;

    /// A weight super-block unpacked for the tile: the 8 chunks of 32
    /// unsigned levels and their i16 scales (each broadcast to both halves),
    /// the scales `d` and `dmin`, the minimum multipliers per 16 values
    /// (Q2_K, Q4_K, Q5_K; `madd` with the block sums gives ggml's lanes) and
    /// Q3_K's and Q6_K's 16 scales times their level offset as i16.
    #[derive(Clone, Copy)]
    struct Dec {
        q: [__m512i; 8],
        sc: [__m512i; 8],
        d: f32,
        dmin: f32,
        mins: __m512i,
        off: __m512i,
    }

    /// How a type's integer lanes and minimum are formed.
    #[derive(PartialEq, Eq)]
    enum Kind {
        /// A minimum term `dmin·Σ m·bsum` (Q4_K, Q5_K).
        Mins,
        /// As `Mins`, with the levels already multiplied by their sub-block
        /// scales (Q2_K: at most 3·15, still a byte), so that `vpdpbusd`
        /// alone forms `Σ sc·q·q8`: 8 multiply instructions per row and
        /// token pair instead of 12.
        Scaled,
        /// Unsigned levels whose value is `q − o` (Q3_K: `low + 4·high`,
        /// `o` = 4; Q6_K: 0..64, `o` = 32): `o·Σ sc·bsum` is taken off the
        /// lanes, one `madd` with the block sums of the activations.
        Offset,
    }

    trait KTile: Sized {
        const KIND: Kind;
        /// # Safety
        /// AVX-512 F/BW, AVX2, FMA and F16C on the running CPU.
        unsafe fn decode(&self) -> Dec;
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    fn bcast(v: __m256i) -> __m512i {
        _mm512_broadcast_i64x4(v)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f16_f32(a: half::f16, b: half::f16) -> (f32, f32) {
        // SAFETY: F16C is enabled in this function.
        unsafe { crate::quant::x86::f16x2_to_f32(a, b) }
    }

    /// Q4_K/Q5_K: the multipliers of the 16 block sums (`m_{k/2}`) from the
    /// unpacked scales and mins.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn mins_k4(sm: &[u8; 16]) -> __m512i {
        // SAFETY: AVX2 is enabled; `load_16` reads the 16 bytes of `sm`.
        let m = unsafe { load_16(sm) };
        let dup = _mm_set_epi8(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
        bcast(_mm256_cvtepu8_epi16(_mm_shuffle_epi8(m, dup)))
    }

    impl KTile for BlockQ4K {
        const KIND: Kind = Kind::Mins;
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn decode(&self) -> Dec {
            let sm = scales_mins_k4(&self.scales);
            let m4 = _mm256_set1_epi8(0x0F);
            let mut q = [_mm512_setzero_si512(); 8];
            for c in 0..4 {
                // SAFETY: 32 of the 128 bytes of `qs`.
                let bits = unsafe { load_u8(&self.qs[32 * c..]) };
                q[2 * c] = bcast(_mm256_and_si256(bits, m4));
                q[2 * c + 1] = bcast(_mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4));
            }
            let (d, dmin) = f16_f32(self.d, self.dmin);
            Dec {
                q,
                sc: std::array::from_fn(|j| _mm512_set1_epi16(sm[j] as i16)),
                d,
                dmin,
                // SAFETY: the features `mins_k4` needs are enabled here.
                mins: unsafe { mins_k4(&sm) },
                off: _mm512_setzero_si512(),
            }
        }
    }

    impl KTile for BlockQ5K {
        const KIND: Kind = Kind::Mins;
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn decode(&self) -> Dec {
            let sm = scales_mins_k4(&self.scales);
            let m4 = _mm256_set1_epi8(0x0F);
            let one = _mm256_set1_epi8(1);
            // SAFETY: `qh` is 32 bytes.
            let hbits = unsafe { load_u8(&self.qh) };
            let mut q = [_mm512_setzero_si512(); 8];
            for c in 0..4 {
                // SAFETY: 32 of the 128 bytes of `qs`.
                let bits = unsafe { load_u8(&self.qs[32 * c..]) };
                let h_lo = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c as i32)), one);
                let h_hi = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * c as i32 + 1)), one);
                let lo = _mm256_or_si256(_mm256_and_si256(bits, m4), _mm256_slli_epi16::<4>(h_lo));
                let hi =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4), _mm256_slli_epi16::<4>(h_hi));
                q[2 * c] = bcast(lo);
                q[2 * c + 1] = bcast(hi);
            }
            let (d, dmin) = f16_f32(self.d, self.dmin);
            Dec {
                q,
                sc: std::array::from_fn(|j| _mm512_set1_epi16(sm[j] as i16)),
                d,
                dmin,
                // SAFETY: the features `mins_k4` needs are enabled here.
                mins: unsafe { mins_k4(&sm) },
                off: _mm512_setzero_si512(),
            }
        }
    }

    impl KTile for BlockQ2K {
        const KIND: Kind = Kind::Scaled;
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn decode(&self) -> Dec {
            let m4 = _mm_set1_epi8(0x0F);
            // SAFETY: `scales` is 16 bytes.
            let raw = unsafe { load_16(&self.scales) };
            let scales = _mm_and_si128(raw, m4);
            let mins = _mm_and_si128(_mm_srli_epi16::<4>(raw), m4);
            let mut q = [_mm512_setzero_si512(); 8];
            for h in 0..2 {
                // SAFETY: 32 of the 64 bytes of `qs`.
                let bits = unsafe { load_u8(&self.qs[32 * h..]) };
                for s in 0..4 {
                    // Chunk 4h + s: values 0..16 in sub-block 2(4h + s), 16..32
                    // in the next. A 16-bit multiply by the scale forms both
                    // bytes' products: the low one (≤ 45) cannot carry.
                    // SAFETY: AVX2 is enabled here.
                    unsafe {
                        let scaled = _mm256_mullo_epi16(crumbs(bits, 2 * s as i32), scale_pair(scales, 4 * h + s));
                        q[4 * h + s] = bcast(scaled);
                    }
                }
            }
            let (d, dmin) = f16_f32(self.d, self.dmin);
            let zero = _mm512_setzero_si512();
            Dec { q, sc: [zero; 8], d, dmin, mins: bcast(_mm256_cvtepu8_epi16(mins)), off: zero }
        }
    }

    impl KTile for BlockQ3K {
        const KIND: Kind = Kind::Offset;
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn decode(&self) -> Dec {
            // SAFETY: AVX2 is enabled; 16 bytes.
            let scales = unsafe { _mm_sub_epi8(load_16(&scales_q3k(&self.scales)), _mm_set1_epi8(32)) };
            // SAFETY: `hmask` is 32 bytes.
            let hmask = unsafe { load_u8(&self.hmask) };
            let four = _mm256_set1_epi8(4);
            let mut q = [_mm512_setzero_si512(); 8];
            let mut sc = [_mm512_setzero_si512(); 8];
            for h in 0..2 {
                // SAFETY: 32 of the 64 bytes of `qs`.
                let bits = unsafe { load_u8(&self.qs[32 * h..]) };
                for s in 0..4 {
                    let bit = _mm256_set1_epi8((1u8 << (4 * h + s)) as i8);
                    let set = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), bit);
                    // SAFETY: AVX2 is enabled here.
                    unsafe {
                        let low = crumbs(bits, 2 * s as i32);
                        q[4 * h + s] = bcast(_mm256_or_si256(low, _mm256_and_si256(set, four)));
                        sc[4 * h + s] = bcast(scale_pair(scales, 4 * h + s));
                    }
                }
            }
            let (d, _) = f16_f32(self.d, self.d);
            let zero = _mm512_setzero_si512();
            // 4·sc in -128..124.
            let off = bcast(_mm256_slli_epi16::<2>(_mm256_cvtepi8_epi16(scales)));
            Dec { q, sc, d, dmin: 0.0, mins: zero, off }
        }
    }

    impl KTile for BlockQ6K {
        const KIND: Kind = Kind::Offset;
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
        unsafe fn decode(&self) -> Dec {
            let m15 = _mm256_set1_epi8(0x0F);
            let m3 = _mm256_set1_epi8(0x03);
            let m12 = _mm256_set1_epi8(0x0C);
            let m48 = _mm256_set1_epi8(0x30);
            let m192 = _mm256_set1_epi8(0xC0u8 as i8);
            // SAFETY: `scales` is 16 bytes.
            let scales = unsafe { load_16(&self.scales) };
            let mut q = [_mm512_setzero_si512(); 8];
            let mut sc = [_mm512_setzero_si512(); 8];
            for h in 0..2 {
                // SAFETY: 32-byte slices of `ql` (128 bytes) and `qh` (64).
                let (b1, b2, hb) = unsafe {
                    (load_u8(&self.ql[64 * h..]), load_u8(&self.ql[64 * h + 32..]), load_u8(&self.qh[32 * h..]))
                };
                let lv = [
                    _mm256_or_si256(_mm256_and_si256(b1, m15), _mm256_slli_epi16::<4>(_mm256_and_si256(hb, m3))),
                    _mm256_or_si256(_mm256_and_si256(b2, m15), _mm256_slli_epi16::<2>(_mm256_and_si256(hb, m12))),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(b1), m15), _mm256_and_si256(hb, m48)),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(b2), m15),
                        _mm256_srli_epi16::<2>(_mm256_and_si256(hb, m192)),
                    ),
                ];
                for (s, l) in lv.into_iter().enumerate() {
                    q[4 * h + s] = bcast(l);
                    // SAFETY: AVX2 is enabled here.
                    sc[4 * h + s] = bcast(unsafe { scale_pair(scales, 4 * h + s) });
                }
            }
            let (d, _) = f16_f32(self.d, self.d);
            // 32·sc in -4096..4064.
            let off = bcast(_mm256_slli_epi16::<5>(_mm256_cvtepi8_epi16(scales)));
            Dec { q, sc, d, dmin: 0.0, mins: _mm512_setzero_si512(), off }
        }
    }

    /// The 8-lane sums of eight registers of two tokens each (token 0 in
    /// lanes 0..8, token 1 in 8..16): register `r`'s sum for token `h` in
    /// lane [`lane8`]`(r, h)`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(crate) fn row_sums8(v: [__m512i; 8]) -> __m512i {
        // Per 128-bit quarter q (token q / 2) the four rows' partial sums.
        #[inline(always)]
        fn quarters(v0: __m512i, v1: __m512i, v2: __m512i, v3: __m512i) -> __m512i {
            // SAFETY: only called from `row_sums8`, whose features these are.
            unsafe {
                let a = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
                let b = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
                _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b))
            }
        }
        let (lo, hi) = (quarters(v[0], v[1], v[2], v[3]), quarters(v[4], v[5], v[6], v[7]));
        // [lo.q0, lo.q2, hi.q0, hi.q2] + [lo.q1, lo.q3, hi.q1, hi.q3].
        let x = _mm512_shuffle_i32x4::<0b10_00_10_00>(lo, hi);
        let y = _mm512_shuffle_i32x4::<0b11_01_11_01>(lo, hi);
        _mm512_add_epi32(x, y)
    }

    /// The lane of row `r` (0..8), token `h` (0..2) in [`row_sums8`]'s
    /// result.
    #[inline(always)]
    pub(crate) const fn lane8(r: usize, h: usize) -> usize {
        8 * (r / 4) + 4 * h + r % 4
    }

    /// One strip: rows `w[r·n..]` (`R` of them) × tokens `a[t·n..]` (`nt` of
    /// them, at most `2·`[`NP`]), into `out[t·stride + r]`. Each weight
    /// super-block is decoded once for all the tokens; the tokens go in
    /// pairs (the last one repeated when `nt` is odd), each pair's float
    /// accumulator held in `acc` across the super-blocks.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the running CPU; `w`
    /// holds `R·n` blocks, `a` `nt·n` blocks, `out` `(nt−1)·stride + R`
    /// values, `1 ≤ nt ≤ 2·NP`, `R ≤ 8`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn strip<W: KTile, const R: usize>(
        w: *const W,
        a: *const BlockQ8K,
        nt: usize,
        n: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let zero = _mm512_setzero_si512();
        let pairs = nt.div_ceil(2);
        // Lane 8h + r: row r, token 2p + h.
        let mut acc = [_mm512_setzero_ps(); NP];
        for b in 0..n {
            // A loop, not `array::from_fn`: its closure kept `decode` out of
            // line. Uninitialised first: zeroing the 8.7 KB of eight
            // decoded blocks was 4% of a Q4_K prompt.
            let mut slots = [const { std::mem::MaybeUninit::<Dec>::uninit() }; R];
            for (r, d) in slots.iter_mut().enumerate() {
                // SAFETY: row r < R, block b < n; the features are enabled.
                d.write(unsafe { (*w.add(r * n + b)).decode() });
            }
            // SAFETY: every slot was written above; `MaybeUninit<Dec>` has
            // the layout of `Dec`.
            let dec: &[Dec; R] = unsafe { &*slots.as_ptr().cast::<[Dec; R]>() };
            // Each row's scales in its two lanes (`lane8`).
            let (mut dw, mut dm) = ([0f32; 16], [0f32; 16]);
            for r in 0..R {
                for h in 0..2 {
                    (dw[lane8(r, h)], dm[lane8(r, h)]) = (dec[r].d, dec[r].dmin);
                }
            }
            // Per row the scales of chunks 2k and 2k + 1 in the i16 lanes
            // `vpackssdw` gives them: per 128-bit lane, 4 of each.
            let scp: [[__m512i; 4]; R] = if W::KIND == Kind::Scaled {
                [[zero; 4]; R]
            } else {
                std::array::from_fn(|r| {
                    std::array::from_fn(|k| {
                        _mm512_mask_blend_epi16(0xF0F0_F0F0, dec[r].sc[2 * k], dec[r].sc[2 * k + 1])
                    })
                })
            };
            // SAFETY: `dw` and `dm` are 16 floats each.
            let (dwv, dmv) = unsafe { (_mm512_loadu_ps(dw.as_ptr()), _mm512_loadu_ps(dm.as_ptr())) };
            for (p, acc) in acc.iter_mut().enumerate().take(pairs) {
                let (t0, t1) = (2 * p, (2 * p + 1).min(nt - 1));
                // SAFETY: t0, t1 < nt tokens, b < n blocks each.
                let (x, y) = unsafe { (&*a.add(t0 * n + b), &*a.add(t1 * n + b)) };
                let mut act = [zero; 8];
                for c in 0..8 {
                    // SAFETY: 32 of the 256 levels of each.
                    let (qx, qy) = unsafe { (load_i8(&x.qs[32 * c..]), load_i8(&y.qs[32 * c..])) };
                    act[c] = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qx), qy);
                }
                // SAFETY: the 16 block sums of each.
                let (sx, sy) = unsafe { (load_i16x16(&x.bsums), load_i16x16(&y.bsums)) };
                let bs = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(sx), sy);
                let mut s1 = [zero; 8];
                let mut s2 = [zero; 8];
                for r in 0..R {
                    let d = &dec[r];
                    if W::KIND == Kind::Scaled {
                        let mut sumi = zero;
                        for c in 0..8 {
                            sumi = _mm512_dpbusd_epi32(sumi, d.q[c], act[c]);
                        }
                        s1[r] = sumi;
                        s2[r] = _mm512_madd_epi16(d.mins, bs);
                        continue;
                    }
                    let mut x = [zero; 8];
                    for c in 0..8 {
                        x[c] = _mm512_dpbusd_epi32(zero, d.q[c], act[c]);
                    }
                    let mut sumi = zero;
                    for k in 0..4 {
                        sumi = _mm512_dpwssd_epi32(sumi, _mm512_packs_epi32(x[2 * k], x[2 * k + 1]), scp[r][k]);
                    }
                    if W::KIND == Kind::Offset {
                        sumi = _mm512_sub_epi32(sumi, _mm512_madd_epi16(bs, d.off));
                    }
                    s1[r] = sumi;
                    if W::KIND == Kind::Mins {
                        s2[r] = _mm512_madd_epi16(d.mins, bs);
                    }
                }
                let mut res = _mm512_mul_ps(dwv, _mm512_cvtepi32_ps(row_sums8(s1)));
                if W::KIND == Kind::Mins || W::KIND == Kind::Scaled {
                    res = _mm512_fnmadd_ps(dmv, _mm512_cvtepi32_ps(row_sums8(s2)), res);
                }
                // Token 0's lanes are the quarters 0 and 2.
                let da = _mm512_mask_blend_ps(0xF0F0, _mm512_set1_ps(x.d), _mm512_set1_ps(y.d));
                *acc = _mm512_fmadd_ps(res, da, *acc);
            }
        }
        // SAFETY: `out` holds (nt−1)·stride + R values.
        unsafe { store_pairs::<R>(&acc[..pairs], nt, out, stride) };
    }

    /// Writes a strip's accumulators (pair `p`: lane [`lane8`]`(r, h)` for
    /// row `r`, token `2p + h`) to `out[t·stride + r]` for the `nt` real
    /// tokens.
    ///
    /// # Safety
    /// AVX-512 F on the running CPU; `out` holds `(nt−1)·stride + R` values
    /// and `acc` at most `nt.div_ceil(2)` pairs.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn store_pairs<const R: usize>(acc: &[__m512], nt: usize, out: *mut f32, stride: usize) {
        for (p, acc) in acc.iter().enumerate() {
            let mut v = [0f32; 16];
            // SAFETY: `v` is 16 floats.
            unsafe { _mm512_storeu_ps(v.as_mut_ptr(), *acc) };
            for r in 0..R {
                for h in 0..2 {
                    let t = 2 * p + h;
                    if t < nt {
                        // SAFETY: t < nt, r < R: inside `out`.
                        unsafe { *out.add(t * stride + r) = v[lane8(r, h)] };
                    }
                }
            }
        }
    }

    /// The strips of a `rows × tokens` product: `f(r, nr, t, nt)` for rows
    /// `r..r+nr` (`MR`, then what is left as 4 + 2 + 1) and tokens
    /// `t..t+nt` (at most `max_tokens`).
    #[inline(always)]
    pub(crate) fn for_each_strip(
        rows: usize,
        tokens: usize,
        max_tokens: usize,
        mut f: impl FnMut(usize, usize, usize, usize),
    ) {
        let mut t = 0;
        while t < tokens {
            let nt = (tokens - t).min(max_tokens);
            let mut r = 0;
            while r < rows {
                let nr = match rows - r {
                    left if left >= MR => MR,
                    left if left >= 4 => 4,
                    left if left >= 2 => 2,
                    _ => 1,
                };
                f(r, nr, t, nt);
                r += nr;
            }
            t += nt;
        }
    }

    /// Products of weight rows with tokens: `w` holds `w.len() / n` rows
    /// and `a` `a.len() / n` tokens of `n` super-blocks; `out[t · rows + r]`
    /// receives row `r` · token `t`, bit-identical to the batch dot product
    /// of the two (see the module documentation).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn gemm<W: KTile>(w: &[W], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
        if n == 0 {
            return;
        }
        let (rows, tokens) = (w.len() / n, a.len() / n);
        assert!(out.len() >= rows * tokens, "output of {} for {rows} × {tokens}", out.len());
        let (wp, ap, op) = (w.as_ptr(), a.as_ptr(), out.as_mut_ptr());
        for_each_strip(rows, tokens, 2 * NP, |r, nr, t, nt| {
            // SAFETY: rows r..r+nr and tokens t..t+nt exist; the output
            // index (t+i)·rows + r + j < tokens·rows; the features are the
            // caller's.
            unsafe {
                let (wr, at, o) = (wp.add(r * n), ap.add(t * n), op.add(t * rows + r));
                match nr {
                    MR => strip::<W, MR>(wr, at, nt, n, o, rows),
                    4 => strip::<W, 4>(wr, at, nt, n, o, rows),
                    2 => strip::<W, 2>(wr, at, nt, n, o, rows),
                    _ => strip::<W, 1>(wr, at, nt, n, o, rows),
                }
            }
        });
    }

    /// Products of Q2_K weight rows with Q8_K tokens ([`gemm`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn q2k_q8k(w: &[BlockQ2K], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
        gemm(w, a, n, out)
    }

    /// Products of Q3_K weight rows with Q8_K tokens ([`gemm`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn q3k_q8k(w: &[BlockQ3K], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
        gemm(w, a, n, out)
    }

    /// Products of Q4_K weight rows with Q8_K tokens ([`gemm`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn q4k_q8k(w: &[BlockQ4K], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
        gemm(w, a, n, out)
    }

    /// Products of Q5_K weight rows with Q8_K tokens ([`gemm`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn q5k_q8k(w: &[BlockQ5K], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
        gemm(w, a, n, out)
    }

    /// Products of Q6_K weight rows with Q8_K tokens ([`gemm`]).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn q6k_q8k(w: &[BlockQ6K], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
        gemm(w, a, n, out)
    }
}
