//! AVX-512 VNNI tile kernels for matrix products of IQ4_NL weights with
//! several tokens of Q8_0 activations and of IQ4_XS weights with Q8_K
//! activations.
//!
//! The AVX2 dot products ([`super::dot::avx2`]) look the 4-bit indices up
//! as signed table levels and form, per 32 values, the exact integer sums
//! of 4 consecutive products in 8 i32 lanes (`maddubs` with ggml's sign
//! trick, then `madd` by 1 for IQ4_NL, by the sub-block scale for IQ4_XS).
//! These kernels run products of several tokens, which llama.cpp computes
//! in its batch arithmetic ([`crate::quant::GgmlBlock::BATCH_DOT`]):
//! IQ4_NL as llamafile's tinyBLAS does, each block's lanes converted and
//! accumulated `d_w·d_a · lanes` with one FMA into one float accumulator,
//! reduced at the end; IQ4_XS as ggml's tiled GEMM does, a super-block's 8
//! scaled sub-block lanes summed to one integer `s` (4 rows × 2 tokens at
//! once), then `acc = fma(d_w·s, d_a, acc)`.
//!
//! Here one 16-lane register holds the same 8 lanes for two tokens (token
//! `t` in lanes 0..8, `t+1` in 8..16), `vpdpbusd` forms the integer lane
//! sums of the levels plus 128 (unsigned) with the activations, the offset
//! taken back exactly (`− 128 · Σ a`, once per token and block), and a tile
//! of [`MR`] rows × 2·[`NP`] tokens is computed together (IQ4_XS), each weight block
//! decoded once for all its tokens; IQ4_NL runs the legacy kernels' driver
//! (`legacy::gemm::vnni::run`: each token prepared and each row decoded once
//! per call), its per-block arithmetic being theirs. Every lane then holds the AVX2 kernel's
//! integer sum and sees its float operations in the same order, so every
//! output is bit-identical to the batch dot product (tests/matmul.rs).
//!
//! As for the legacy types, the sign trick differs from the exact product
//! only for an activation level of −128 against a negative level, which a
//! Q8_0 block holds only with a zero f16 scale (its term is then zero
//! either way); Q8_K levels stay within ±127.

#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use crate::quant::blocks::*;
    use crate::quant::iquants::dot::avx2::{levels_32, table};
    use crate::quant::iquants::iq4xs::sub_scale;
    use crate::quant::kquants::gemm::vnni::row_sums;
    use std::arch::x86_64::*;

    /// Weight rows per register tile.
    pub const MR: usize = 4;
    /// Token pairs per register tile.
    pub const NP: usize = 2;

    /// A 16-lane register with `a` in lanes 0..8 and `b` in lanes 8..16.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn halves(a: f32, b: f32) -> __m512 {
        _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(a), _mm512_set1_ps(b))
    }

    /// The 32 activation levels of two tokens' blocks in one register
    /// (token `x` in the low half) and `−128 ·` the sums of each 4
    /// consecutive levels.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI on the running CPU.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn act_pair(x: &[i8], y: &[i8]) -> (__m512i, __m512i) {
        assert!(x.len() >= 32 && y.len() >= 32);
        // SAFETY: both slices hold at least 32 bytes (checked above).
        let (qx, qy) = unsafe {
            (_mm256_loadu_si256(x.as_ptr() as *const __m256i), _mm256_loadu_si256(y.as_ptr() as *const __m256i))
        };
        let act = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qx), qy);
        let zero = _mm512_setzero_si512();
        let base = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(0x80u8 as i8), act));
        (act, base)
    }

    /// The 32 table levels of 16 bytes of indices plus 128 (unsigned),
    /// broadcast to both halves.
    ///
    /// # Safety
    /// AVX-512 F/BW, AVX2, FMA and F16C on the running CPU.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn levels_u8(table: __m256i, qs: &[u8; 16]) -> __m512i {
        // SAFETY: AVX2 is enabled in this function.
        let l = unsafe { levels_32(table, qs) };
        _mm512_broadcast_i64x4(_mm256_xor_si256(l, _mm256_set1_epi8(0x80u8 as i8)))
    }

    /// One IQ4_XS register tile: rows `w[r·n..]` (`R` of them) × the token
    /// pairs `tok[p]` (`P` of them; a pair's two tokens may be the same
    /// block row when the count is odd), `n` super-blocks, into
    /// `out[t·stride + r]` for the `nt` real tokens.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the running CPU; `w`
    /// holds `R·n` super-blocks, every `tok` pointer `n`, `out`
    /// `(nt−1)·stride + R` values, `nt ≤ 2·P`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn tile_iq4xs<const R: usize, const P: usize>(
        w: *const BlockIQ4XS,
        tok: [[*const BlockQ8K; 2]; P],
        nt: usize,
        n: usize,
        out: *mut f32,
        stride: usize,
    ) {
        // SAFETY: AVX2 is enabled in this function.
        let table = unsafe { table() };
        let zero = _mm512_setzero_si512();
        // Lane 8h + r: row r, token 2p + h.
        let mut acc = [_mm512_setzero_ps(); P];
        for b in 0..n {
            let mut sumi = [[zero; P]; 4];
            for ib in 0..8 {
                let mut act = [zero; P];
                let mut base = [zero; P];
                for p in 0..P {
                    // SAFETY: b < n super-blocks of each token.
                    let (x, y) = unsafe { (&*tok[p][0].add(b), &*tok[p][1].add(b)) };
                    // SAFETY: AVX-512 VNNI is enabled in this function.
                    (act[p], base[p]) = unsafe { act_pair(&x.qs[32 * ib..], &y.qs[32 * ib..]) };
                }
                for r in 0..R {
                    // SAFETY: row r < R, super-block b < n.
                    let blk = unsafe { &*w.add(r * n + b) };
                    let qs: &[u8; 16] = blk.qs[16 * ib..16 * ib + 16].try_into().unwrap();
                    // SAFETY: AVX-512 BW and AVX2 are enabled in this function.
                    let q = unsafe { levels_u8(table, qs) };
                    let ls = _mm512_set1_epi32(sub_scale(blk, ib));
                    for p in 0..P {
                        let s = _mm512_dpbusd_epi32(base[p], q, act[p]);
                        sumi[r][p] = _mm512_add_epi32(sumi[r][p], _mm512_mullo_epi32(s, ls));
                    }
                }
            }
            let mut da = [_mm512_setzero_ps(); P];
            for p in 0..P {
                // SAFETY: b < n super-blocks of each token.
                let (x, y) = unsafe { (&*tok[p][0].add(b), &*tok[p][1].add(b)) };
                da[p] = halves(x.d, y.d);
            }
            let mut dw = [0f32; 4];
            for (r, d) in dw.iter_mut().enumerate().take(R) {
                // SAFETY: row r < R, super-block b < n.
                *d = unsafe { &*w.add(r * n + b) }.d.to_f32();
            }
            // SAFETY: `dw` is 4 floats.
            let dwv = _mm512_broadcast_f32x4(unsafe { _mm_loadu_ps(dw.as_ptr()) });
            for p in 0..P {
                // ggml's tiled GEMM: res = d_w·Σ, acc = fma(res, d_a, acc),
                // for the 4 rows × 2 tokens at once.
                let s = row_sums([sumi[0][p], sumi[1][p], sumi[2][p], sumi[3][p]]);
                let res = _mm512_mul_ps(dwv, _mm512_cvtepi32_ps(s));
                acc[p] = _mm512_fmadd_ps(res, da[p], acc[p]);
            }
        }
        for p in 0..P {
            let mut v = [0f32; 16];
            // SAFETY: `v` is 16 floats.
            unsafe { _mm512_storeu_ps(v.as_mut_ptr(), acc[p]) };
            for r in 0..R {
                for h in 0..2 {
                    let t = 2 * p + h;
                    if t < nt {
                        // SAFETY: t < nt, r < R: inside `out`.
                        unsafe { *out.add(t * stride + r) = v[8 * h + r] };
                    }
                }
            }
        }
    }

    /// The driver of a tile function: `w` holds `w.len() / n` rows and `a`
    /// `a.len() / n` tokens of `n` blocks; `out[t · rows + r]` receives row
    /// `r` · token `t`.
    macro_rules! driver {
        ($(#[$doc:meta])* $name:ident, $tile:ident, $W:ty, $A:ty) => {
            $(#[$doc])*
            ///
            /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of
            /// `n` blocks; `out[t · rows + r]` receives row `r` · token `t`,
            /// bit-identical to the AVX2 dot product of the two (see the
            /// module documentation).
            ///
            /// # Safety
            /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            pub unsafe fn $name(w: &[$W], a: &[$A], n: usize, out: &mut [f32]) {
                if n == 0 {
                    return;
                }
                let (rows, tokens) = (w.len() / n, a.len() / n);
                assert!(out.len() >= rows * tokens, "output of {} for {rows} × {tokens}", out.len());
                let (wp, ap, op) = (w.as_ptr(), a.as_ptr(), out.as_mut_ptr());
                let mut t = 0;
                while t < tokens {
                    let nt = (tokens - t).min(2 * NP);
                    // Token k of this tile, the last real one repeated.
                    // SAFETY: t + min(k, nt−1) < tokens.
                    let at = |k: usize| unsafe { ap.add((t + k.min(nt - 1)) * n) };
                    let mut r = 0;
                    while r < rows {
                        let nr = (rows - r).min(MR);
                        // SAFETY: rows r..r+nr and tokens t..t+nt exist; the
                        // output index (t+i)·rows + r + j < tokens·rows.
                        unsafe {
                            let (wr, o) = (wp.add(r * n), op.add(t * rows + r));
                            let one = [[at(0), at(1)]];
                            let two = [[at(0), at(1)], [at(2), at(3)]];
                            match (nr, nt > 2) {
                                (4, true) => $tile::<4, 2>(wr, two, nt, n, o, rows),
                                (4, false) => $tile::<4, 1>(wr, one, nt, n, o, rows),
                                (3, true) => $tile::<3, 2>(wr, two, nt, n, o, rows),
                                (3, false) => $tile::<3, 1>(wr, one, nt, n, o, rows),
                                (2, true) => $tile::<2, 2>(wr, two, nt, n, o, rows),
                                (2, false) => $tile::<2, 1>(wr, one, nt, n, o, rows),
                                (_, true) => $tile::<1, 2>(wr, two, nt, n, o, rows),
                                (_, false) => $tile::<1, 1>(wr, one, nt, n, o, rows),
                            }
                        }
                        r += nr;
                    }
                    t += nt;
                }
            }
        };
    }

    /// Products of IQ4_NL weight rows with Q8_0 tokens: the legacy
    /// kernels' driver ([`crate::quant::legacy::gemm::vnni::run`]: tokens
    /// prepared once, rows decoded once), whose per-block arithmetic is
    /// tinyBLAS's, with the table levels plus 128 as the unsigned levels.
    ///
    /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of `n`
    /// blocks; `out[t · rows + r]` receives row `r` · token `t`,
    /// bit-identical to the batch dot product of the two.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn iq4nl_q8_0(w: &[BlockIQ4NL], a: &[BlockQ8_0], n: usize, out: &mut [f32]) {
        // SAFETY: AVX2 is enabled in this function.
        let table = unsafe { table() };
        let offset = _mm256_set1_epi8(0x80u8 as i8);
        // SAFETY: the features `run` and `levels_32` need are enabled here.
        unsafe {
            crate::quant::legacy::gemm::vnni::run::<_, _, false>(w, a, n, out, 0x80, |blk: &BlockIQ4NL| {
                (_mm256_xor_si256(levels_32(table, &blk.qs), offset), blk.d.to_f32(), 0.0)
            })
        }
    }
    driver!(
        /// Products of IQ4_XS weight rows with Q8_K tokens.
        iq4xs_q8k, tile_iq4xs, BlockIQ4XS, BlockQ8K
    );
}
