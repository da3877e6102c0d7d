//! AVX-512 VNNI tile kernels of the i-quants: IQ4_NL weights with several
//! tokens of Q8_0 activations here, and how the other i-quants' super-blocks
//! unpack for the token-lane int8 GEMM ([`crate::quant::i8gemm`], module
//! `unpack`).
//!
//! The AVX2 IQ4_NL dot product ([`super::dot::avx2`]) looks the 4-bit
//! indices up as signed table levels and forms, per 32 values, the exact
//! integer sums of 4 consecutive products in 8 i32 lanes (`maddubs` with
//! ggml's sign trick, then `madd` by 1). Products of two or more tokens are
//! llamafile's tinyBLAS arithmetic in llama.cpp
//! ([`crate::quant::GgmlBlock::BATCH_DOT`]): each block's lanes converted
//! and accumulated `d_w·d_a · lanes` with one FMA into one float
//! accumulator, reduced at the end. The kernel runs the legacy kernels'
//! driver (`legacy::gemm::vnni::run`: each token prepared and each row
//! decoded once per call; `vpdpbusd` of the levels plus 128, unsigned, with
//! the activations, the offset taken back exactly as `− 128 · Σ a`), its
//! per-block arithmetic being tinyBLAS's, so every output is bit-identical
//! to the batch dot product (tests/matmul.rs).
//!
//! As for the legacy types, the sign trick differs from the exact product
//! only for an activation level of −128 against a negative level, which a
//! Q8_0 block holds only with a zero f16 scale (its term is then zero
//! either way).

#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use crate::quant::blocks::*;
    use crate::quant::iquants::dot::avx2::{levels_32, table};
    use std::arch::x86_64::*;

    /// Products of IQ4_NL weight rows with Q8_0 tokens: the legacy
    /// kernels' driver ([`crate::quant::legacy::gemm::vnni::run`]: tokens
    /// prepared once, rows decoded once), whose per-block arithmetic is
    /// tinyBLAS's, with the table levels plus 128 as the unsigned levels.
    ///
    /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of `n`
    /// blocks; `out.at(t, r)` receives row `r` · token `t`, bit-identical
    /// to the batch dot product of the two.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; `out`
    /// as [`crate::quant::GemmOut`] says.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn iq4nl_q8_0(w: &[BlockIQ4NL], a: &[BlockQ8_0], n: usize, out: crate::quant::GemmOut) {
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

/// The AVX2 twin of [`vnni`]'s IQ4_NL kernel, for CPUs without AVX-512 VNNI.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use crate::quant::blocks::*;
    use crate::quant::iquants::dot::avx2::{levels_32, table};

    /// Products of IQ4_NL weight rows with Q8_0 tokens: the legacy AVX2
    /// driver ([`crate::quant::legacy::gemm::avx2::run`]) with the table
    /// levels as the signed levels (tinyBLAS's arithmetic per 32 values).
    ///
    /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of `n`
    /// blocks; `out.at(t, r)` receives row `r` · token `t`, bit-identical
    /// to the batch dot product of the two.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `out` as
    /// [`crate::quant::GemmOut`] says.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn iq4nl_q8_0(w: &[BlockIQ4NL], a: &[BlockQ8_0], n: usize, out: crate::quant::GemmOut) {
        // SAFETY: AVX2 is enabled in this function.
        let table = unsafe { table() };
        // SAFETY: the features `run` and `levels_32` need are enabled here.
        unsafe {
            crate::quant::legacy::gemm::avx2::run::<_, _, false>(w, a, n, out, |blk: &BlockIQ4NL| {
                (levels_32(table, &blk.qs), blk.d.to_f32(), 0.0)
            })
        }
    }
}

/// How the grid i-quants' and IQ4_XS's super-blocks unpack for the
/// token-lane int8 GEMM ([`crate::quant::i8gemm`]): signed levels (grid
/// magnitudes with their signs; IQ1's codes `8·level ± 1`, the tiled GEMM's
/// integers; IQ4_XS's table levels), the scales per 32 or 16 values (odd
/// `2·ls + 1` for the grid types, `ls − 32` for IQ4_XS), and `d` times the
/// type's constant factor (¼ for IQ3_XXS, ⅛ for the 2- and 1-bit types, as
/// the tiled GEMM stores it).
#[cfg(target_arch = "x86_64")]
mod unpack {
    use crate::quant::blocks::*;
    use crate::quant::i8gemm::{Unpack, Unpacked};
    use crate::quant::iquants::dot::avx2::{apply_signs, entries, iq1_deltas, iq1_grid, sign_mask};
    use crate::quant::iquants::dot::vnni::indices;
    use crate::quant::iquants::iq3_tables::{IQ3S_GRID, IQ3XXS_GRID};
    use crate::quant::iquants::{iq1m, iq1s, iq2s, iq2xs, iq2xxs, iq3s, iq3xxs};
    use std::arch::x86_64::*;

    /// `mag` negated where bit `i` of `signs` is set (byte `i`).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn signed(mag: __m256i, signs: u32) -> __m256i {
        // SAFETY: AVX2 is enabled in this function.
        unsafe { apply_signs(mag, sign_mask(signs)) }
    }

    /// The signed levels of sub-blocks `2p` and `2p + 1` of a 3-bit grid
    /// type into `q[2p]`, `q[2p + 1]`: their 16 grid entries gathered at
    /// once (`idx`, as the VNNI dot products gather them), negated where
    /// the 64 bits of `signs` are set.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL and AVX2 on the running CPU; every index below
    /// `grid.len()`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn grid3_pair(grid: &[u32], idx: __m512i, signs: u64, q: &mut [__m256i]) {
        // SAFETY: the indices are below the grid's length (the caller's).
        let mag = unsafe { _mm512_i32gather_epi32::<4>(idx, grid.as_ptr().cast()) };
        let v = _mm512_mask_sub_epi8(mag, signs, _mm512_setzero_si512(), mag);
        q[0] = _mm512_castsi512_si256(v);
        q[1] = _mm512_extracti64x4_epi64::<1>(v);
    }

    impl Unpack for BlockIQ3S {
        const SUB: usize = 32;
        const MAX_LEVEL: u8 = 15;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            for ib in 0..8 {
                // SAFETY: AVX2 is enabled in this function.
                u.q[ib] = unsafe { signed(entries(|k| iq3s::entry(blk, ib, k)), iq3s::signs(blk, ib)) };
                u.ls[ib] = iq3s::scale(blk, ib);
            }
            u.d = blk.d.to_f32();
        }
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn unpack_vnni(blk: &Self, u: &mut Unpacked) {
            for p in 0..4 {
                let signs = iq3s::signs(blk, 2 * p) as u64 | (iq3s::signs(blk, 2 * p + 1) as u64) << 32;
                // SAFETY: 16 of the 64 index bytes with their 9th bits, so
                // every index is below 512, the grid's length; the features
                // are this function's.
                unsafe {
                    let idx = indices(&blk.qs[16 * p..], Some((blk.qh[2 * p], blk.qh[2 * p + 1])));
                    grid3_pair(&IQ3S_GRID, idx, signs, &mut u.q[2 * p..]);
                }
            }
            for ib in 0..8 {
                u.ls[ib] = iq3s::scale(blk, ib);
            }
            u.d = blk.d.to_f32();
        }
    }

    impl Unpack for BlockIQ3XXS {
        const SUB: usize = 32;
        const MAX_LEVEL: u8 = 62;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            for ib in 0..8 {
                // SAFETY: AVX2 is enabled in this function.
                u.q[ib] = unsafe { signed(entries(|k| iq3xxs::entry(blk, ib, k)), iq3xxs::signs(blk, ib)) };
                u.ls[ib] = 2 * (iq3xxs::aux(blk, ib) >> 28) as i32 + 1;
            }
            u.d = blk.d.to_f32() * 0.25;
        }
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn unpack_vnni(blk: &Self, u: &mut Unpacked) {
            for p in 0..4 {
                let signs = iq3xxs::signs(blk, 2 * p) as u64 | (iq3xxs::signs(blk, 2 * p + 1) as u64) << 32;
                // SAFETY: 16 of the 64 index bytes, each below 256, the
                // grid's length; the features are this function's.
                unsafe { grid3_pair(&IQ3XXS_GRID, indices(&blk.qs[16 * p..], None), signs, &mut u.q[2 * p..]) };
            }
            for ib in 0..8 {
                u.ls[ib] = 2 * (iq3xxs::aux(blk, ib) >> 28) as i32 + 1;
            }
            u.d = blk.d.to_f32() * 0.25;
        }
    }

    /// The 32 signed levels of a 2-bit grid type's 4 entries of 8.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn grid2(entry: impl Fn(usize) -> u64, signs: u32) -> __m256i {
        let g = |l: usize| entry(l) as i64;
        // SAFETY: AVX2 is enabled in this function.
        unsafe { signed(_mm256_setr_epi64x(g(0), g(1), g(2), g(3)), signs) }
    }

    impl Unpack for BlockIQ2XXS {
        const SUB: usize = 32;
        const MAX_LEVEL: u8 = 43;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            for ib in 0..8 {
                // SAFETY: AVX2 is enabled in this function.
                u.q[ib] = unsafe { grid2(|l| iq2xxs::entry(blk, ib, l), iq2xxs::signs(blk, ib)) };
                u.ls[ib] = iq2xxs::scale(blk, ib);
            }
            u.d = blk.d.to_f32() * 0.125;
        }
    }

    /// IQ2_XS and IQ2_S: `entry(g)` and `signs(ib32)` as [`grid2`]'s, a scale
    /// per 16 values.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack_iq2_16(
        u: &mut Unpacked,
        entry: impl Fn(usize) -> u64,
        signs: impl Fn(usize) -> u32,
        scale: impl Fn(usize) -> i32,
        d: f32,
    ) {
        for ib in 0..8 {
            // SAFETY: AVX2 is enabled in this function.
            u.q[ib] = unsafe { grid2(|l| entry(4 * ib + l), signs(ib)) };
            u.ls[2 * ib] = scale(2 * ib);
            u.ls[2 * ib + 1] = scale(2 * ib + 1);
        }
        u.d = d * 0.125;
    }

    impl Unpack for BlockIQ2XS {
        const SUB: usize = 16;
        const MAX_LEVEL: u8 = 43;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            let (entry, signs, scale) =
                (|g| iq2xs::entry(blk, g), |ib| iq2xs::signs(blk, ib), |i| iq2xs::scale(blk, i));
            // SAFETY: AVX2 is enabled in this function.
            unsafe { unpack_iq2_16(u, entry, signs, scale, blk.d.to_f32()) }
        }
    }

    impl Unpack for BlockIQ2S {
        const SUB: usize = 16;
        const MAX_LEVEL: u8 = 43;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            let (entry, signs, scale) = (|g| iq2s::entry(blk, g), |ib| iq2s::signs(blk, ib), |i| iq2s::scale(blk, i));
            // SAFETY: AVX2 is enabled in this function.
            unsafe { unpack_iq2_16(u, entry, signs, scale, blk.d.to_f32()) }
        }
    }

    /// IQ1's codes `8·level + δ` of 32 values: `grid` the 4 entries of
    /// levels −1, 0, 1, `delta` their shift bytes (±1).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn codes(grid: __m256i, delta: __m256i) -> __m256i {
        _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), grid), delta)
    }

    impl Unpack for BlockIQ1S {
        const SUB: usize = 32;
        const MAX_LEVEL: u8 = 9;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            for ib in 0..8 {
                // SAFETY: AVX2 is enabled in this function.
                u.q[ib] = unsafe {
                    codes(iq1_grid(|k| iq1s::entry(blk, ib, k)), iq1_deltas(|_| iq1s::negative_shift(blk, ib)))
                };
                u.ls[ib] = iq1s::scale(blk, ib);
            }
            u.d = blk.d.to_f32() * 0.125;
        }
    }

    impl Unpack for BlockIQ1M {
        const SUB: usize = 16;
        const MAX_LEVEL: u8 = 9;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            let sc = iq1m::scale_words(blk);
            for ib in 0..8 {
                // SAFETY: AVX2 is enabled in this function.
                u.q[ib] = unsafe {
                    codes(
                        iq1_grid(|k| iq1m::entry(blk, 4 * ib + k)),
                        iq1_deltas(|k| iq1m::negative_shift(blk, 4 * ib + k)),
                    )
                };
                u.ls[2 * ib] = iq1m::scale(&sc, 2 * ib);
                u.ls[2 * ib + 1] = iq1m::scale(&sc, 2 * ib + 1);
            }
            u.d = iq1m::super_scale(&sc).to_f32() * 0.125;
        }
    }

    impl Unpack for BlockIQ4XS {
        const SUB: usize = 32;
        const MAX_LEVEL: u8 = 127;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            // SAFETY: AVX2 is enabled in this function.
            let table = unsafe { crate::quant::iquants::dot::avx2::table() };
            for ib in 0..8 {
                let qs: &[u8; 16] = blk.qs[16 * ib..16 * ib + 16].try_into().unwrap();
                // SAFETY: AVX2 is enabled in this function.
                u.q[ib] = unsafe { crate::quant::iquants::dot::avx2::levels_32(table, qs) };
                u.ls[ib] = crate::quant::iquants::iq4xs::sub_scale(blk, ib);
            }
            u.d = blk.d.to_f32();
        }
    }
}
