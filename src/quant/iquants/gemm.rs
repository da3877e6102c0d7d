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
//! `t` in lanes 0..8, `t+1` in 8..16). IQ4_NL runs the legacy kernels'
//! driver (`legacy::gemm::vnni::run`: each token prepared and each row
//! decoded once per call; `vpdpbusd` of the levels plus 128, unsigned, with
//! the activations, the offset taken back exactly as `− 128 · Σ a`), its
//! per-block arithmetic being theirs. IQ4_XS runs strips of [`MR`] rows ×
//! 2·[`NP`] tokens as the k-quants do (`kquants::gemm`): each super-block
//! of a row decoded once for all of them, as i16 levels times their
//! sub-block scale, which `vpdpwssd` multiplies with the activation levels
//! widened to i16 — the integer `s` of ggml's tiled GEMM, exactly. Every
//! lane then holds the AVX2 kernel's integer sum and sees its float
//! operations in the same order, so every output is bit-identical to the
//! batch dot product (tests/matmul.rs).
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
    use crate::quant::kquants::gemm::vnni::{for_each_strip, lane8, row_sums8, store_pairs, MR};
    use std::arch::x86_64::*;

    /// Token pairs per IQ4_XS strip (at most 64 tokens: the activations of a
    /// strip stay in L2).
    pub const NP: usize = 32;

    /// An IQ4_XS super-block decoded for the strip: register `k` holds
    /// values `16k..16k+16` as i16 table levels times their sub-block scale
    /// (at most 127·32), in both 256-bit halves, and `d`.
    #[derive(Clone, Copy)]
    struct DecXs {
        q: [__m512i; 16],
        d: f32,
    }

    /// Decodes one IQ4_XS super-block.
    ///
    /// # Safety
    /// AVX-512 F/BW, AVX2, FMA and F16C on the running CPU.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
    unsafe fn decode_xs(table: __m256i, blk: &BlockIQ4XS) -> DecXs {
        let mut q = [_mm512_setzero_si512(); 16];
        for ib in 0..8 {
            let qs: &[u8; 16] = blk.qs[16 * ib..16 * ib + 16].try_into().unwrap();
            // SAFETY: AVX2 is enabled in this function.
            let l = unsafe { levels_32(table, qs) };
            let ls = _mm256_set1_epi16(sub_scale(blk, ib) as i16);
            let lo = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(l)), ls);
            let hi = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(l)), ls);
            q[2 * ib] = _mm512_broadcast_i64x4(lo);
            q[2 * ib + 1] = _mm512_broadcast_i64x4(hi);
        }
        DecXs { q, d: blk.d.to_f32() }
    }

    /// One IQ4_XS strip: rows `w[r·n..]` (`R` of them) × tokens `a[t·n..]`
    /// (`nt` of them, at most 2·[`NP`]), into `out[t·stride + r]`. Each
    /// weight super-block is decoded once for all the tokens; the tokens go
    /// in pairs (the last one repeated when `nt` is odd), 16 activation
    /// levels of each as i16 in one register, and `vpdpwssd` sums
    /// `ls·level·q8` straight into 8 i32 lanes per token: 16 multiply
    /// instructions per row, token pair and super-block, where `vpdpbusd`
    /// plus a 32-bit multiply by the scale per sub-block took 24.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the running CPU; `w`
    /// holds `R·n` super-blocks, `a` `nt·n`, `out` `(nt−1)·stride + R`
    /// values, `1 ≤ nt ≤ 2·NP`, `R ≤ 8`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn strip_xs<const R: usize>(
        w: *const BlockIQ4XS,
        a: *const BlockQ8K,
        nt: usize,
        n: usize,
        out: *mut f32,
        stride: usize,
    ) {
        // SAFETY: AVX2 is enabled in this function.
        let table = unsafe { table() };
        let zero = _mm512_setzero_si512();
        let pairs = nt.div_ceil(2);
        // Lane lane8(r, h): row r, token 2p + h.
        let mut acc = [_mm512_setzero_ps(); NP];
        for b in 0..n {
            let mut slots = [const { std::mem::MaybeUninit::<DecXs>::uninit() }; R];
            for (r, d) in slots.iter_mut().enumerate() {
                // SAFETY: row r < R, block b < n; the features are enabled.
                d.write(unsafe { decode_xs(table, &*w.add(r * n + b)) });
            }
            // SAFETY: every slot was written above; `MaybeUninit<DecXs>` has
            // the layout of `DecXs`.
            let dec: &[DecXs; R] = unsafe { &*slots.as_ptr().cast::<[DecXs; R]>() };
            let mut dw = [0f32; 16];
            for r in 0..R {
                for h in 0..2 {
                    dw[lane8(r, h)] = dec[r].d;
                }
            }
            // SAFETY: `dw` is 16 floats.
            let dwv = unsafe { _mm512_loadu_ps(dw.as_ptr()) };
            for (p, acc) in acc.iter_mut().enumerate().take(pairs) {
                let (t0, t1) = (2 * p, (2 * p + 1).min(nt - 1));
                // SAFETY: t0, t1 < nt tokens, b < n blocks each.
                let (x, y) = unsafe { (&*a.add(t0 * n + b), &*a.add(t1 * n + b)) };
                let act: [__m512i; 16] = std::array::from_fn(|k| {
                    // SAFETY: 16 of the 256 levels of each.
                    let (qx, qy) = unsafe {
                        (
                            _mm_loadu_si128(x.qs[16 * k..].as_ptr() as *const __m128i),
                            _mm_loadu_si128(y.qs[16 * k..].as_ptr() as *const __m128i),
                        )
                    };
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(_mm256_cvtepi8_epi16(qx)), _mm256_cvtepi8_epi16(qy))
                });
                let mut s = [zero; 8];
                for r in 0..R {
                    let mut sumi = zero;
                    for k in 0..16 {
                        sumi = _mm512_dpwssd_epi32(sumi, dec[r].q[k], act[k]);
                    }
                    s[r] = sumi;
                }
                // ggml's tiled GEMM: res = d_w·Σ, acc = fma(res, d_a, acc).
                let res = _mm512_mul_ps(dwv, _mm512_cvtepi32_ps(row_sums8(s)));
                // Token 0's lanes are the quarters 0 and 2.
                let da = _mm512_mask_blend_ps(0xF0F0, _mm512_set1_ps(x.d), _mm512_set1_ps(y.d));
                *acc = _mm512_fmadd_ps(res, da, *acc);
            }
        }
        // SAFETY: `out` holds (nt−1)·stride + R values.
        unsafe { store_pairs::<R>(&acc[..pairs], nt, out, stride) };
    }

    /// Products of IQ4_XS weight rows with Q8_K tokens ([`strip_xs`]).
    ///
    /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of `n`
    /// super-blocks; `out[t · rows + r]` receives row `r` · token `t`,
    /// bit-identical to the batch dot product of the two (see the module
    /// documentation).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn iq4xs_q8k(w: &[BlockIQ4XS], a: &[BlockQ8K], n: usize, out: &mut [f32]) {
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
                    MR => strip_xs::<MR>(wr, at, nt, n, o, rows),
                    4 => strip_xs::<4>(wr, at, nt, n, o, rows),
                    2 => strip_xs::<2>(wr, at, nt, n, o, rows),
                    _ => strip_xs::<1>(wr, at, nt, n, o, rows),
                }
            }
        });
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
}
