//! How the k-quants' super-blocks unpack for the token-lane int8 GEMM
//! ([`crate::quant::i8gemm`]), in the integers of ggml's tiled GEMM:
//! Q4_K and Q5_K unsigned levels with their 6-bit scales per 32 values and
//! minimums; Q6_K signed levels `q − 32` with its signed scales per 16;
//! Q2_K's levels times their scales (at most 3·15) with its minimums; and
//! Q3_K's signed levels times their negated scales, `−sc·(q − 4)` in
//! −128..124 (a byte, where `sc·(q − 4)` reaches 128), with `−d` for `d`:
//! `(−d)·(−s)` rounds as `d·s` does.
//!
//! Integer sums do not depend on their order and every product is exact,
//! so every output is bit-identical to the batch dot product
//! (tests/matmul.rs).

#[cfg(target_arch = "x86_64")]
mod unpack {
    use crate::quant::blocks::*;
    use crate::quant::i8gemm::{Unpack, Unpacked};
    use crate::quant::kquants::dot::avx2::{crumbs, scales_mins_k4, scales_q3k};
    use crate::quant::x86::{load_16, load_u8, scale_pair};
    use std::arch::x86_64::*;

    /// Q4_K/Q5_K's scales (per 32 values) and minimums (per 16) from the
    /// 12 packed bytes.
    #[inline(always)]
    fn scales_mins(u: &mut Unpacked, packed: &[u8; 12]) {
        let sm = scales_mins_k4(packed);
        for j in 0..8 {
            u.ls[j] = sm[j] as i32;
        }
        for (i, m) in u.mins.iter_mut().enumerate() {
            *m = sm[8 + i / 2] as i16;
        }
    }

    impl Unpack for BlockQ4K {
        const SUB: usize = 32;
        const MAX_LEVEL: u8 = 15;
        const MINS: bool = true;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            let m4 = _mm256_set1_epi8(0x0F);
            for c in 0..4 {
                // SAFETY: 32 of the 128 bytes of `qs`; AVX2 is enabled here.
                let bits = unsafe { load_u8(&blk.qs[32 * c..]) };
                u.q[2 * c] = _mm256_and_si256(bits, m4);
                u.q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
            }
            scales_mins(u, &blk.scales);
            (u.d, u.dmin) = (blk.d.to_f32(), blk.dmin.to_f32());
        }
    }

    impl Unpack for BlockQ5K {
        const SUB: usize = 32;
        const MAX_LEVEL: u8 = 31;
        const MINS: bool = true;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            let (m4, one) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(1));
            // SAFETY: `qh` is 32 bytes; AVX2 is enabled here.
            let hbits = unsafe { load_u8(&blk.qh) };
            for c in 0..4 {
                // SAFETY: 32 of the 128 bytes of `qs`; AVX2 is enabled here.
                let bits = unsafe { load_u8(&blk.qs[32 * c..]) };
                let high = |k: i32| _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(k)), one);
                let lo = _mm256_and_si256(bits, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                u.q[2 * c] = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(high(2 * c as i32)));
                u.q[2 * c + 1] = _mm256_or_si256(hi, _mm256_slli_epi16::<4>(high(2 * c as i32 + 1)));
            }
            scales_mins(u, &blk.scales);
            (u.d, u.dmin) = (blk.d.to_f32(), blk.dmin.to_f32());
        }
    }

    impl Unpack for BlockQ6K {
        const SUB: usize = 16;
        const MAX_LEVEL: u8 = 32;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            let m15 = _mm256_set1_epi8(0x0F);
            let (m3, m12, m48) = (_mm256_set1_epi8(0x03), _mm256_set1_epi8(0x0C), _mm256_set1_epi8(0x30));
            let m192 = _mm256_set1_epi8(0xC0u8 as i8);
            let off = _mm256_set1_epi8(32);
            for h in 0..2 {
                // SAFETY: 32-byte slices of `ql` (128 bytes) and `qh` (64);
                // AVX2 is enabled here.
                let (b1, b2, hb) = unsafe {
                    (load_u8(&blk.ql[64 * h..]), load_u8(&blk.ql[64 * h + 32..]), load_u8(&blk.qh[32 * h..]))
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
                    u.q[4 * h + s] = _mm256_sub_epi8(l, off);
                }
            }
            for (l, &s) in u.ls.iter_mut().zip(&blk.scales) {
                *l = s as i32;
            }
            u.d = blk.d.to_f32();
        }
    }

    impl Unpack for BlockQ2K {
        const SUB: usize = 256;
        const MAX_LEVEL: u8 = 45;
        const MINS: bool = true;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            // SAFETY: `scales` is 16 bytes; AVX2 is enabled here.
            let scales = unsafe { _mm_and_si128(load_16(&blk.scales), _mm_set1_epi8(0x0F)) };
            for h in 0..2 {
                // SAFETY: 32 of the 64 bytes of `qs`; AVX2 is enabled here.
                let bits = unsafe { load_u8(&blk.qs[32 * h..]) };
                for s in 0..4 {
                    // Values 0..16 of chunk 4h + s in sub-block 2(4h + s),
                    // 16..32 in the next; a 16-bit multiply by the scale
                    // forms both bytes' products (the low one, ≤ 45, cannot
                    // carry).
                    // SAFETY: AVX2 is enabled here.
                    u.q[4 * h + s] =
                        unsafe { _mm256_mullo_epi16(crumbs(bits, 2 * s as i32), scale_pair(scales, 4 * h + s)) };
                }
            }
            for (m, &s) in u.mins.iter_mut().zip(&blk.scales) {
                *m = (s >> 4) as i16;
            }
            (u.d, u.dmin) = (blk.d.to_f32(), blk.dmin.to_f32());
        }
    }

    impl Unpack for BlockQ3K {
        const SUB: usize = 256;
        const MAX_LEVEL: u8 = 128;
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn unpack(blk: &Self, u: &mut Unpacked) {
            let sc = scales_q3k(&blk.scales);
            // SAFETY: `hmask` is 32 bytes; AVX2 is enabled here.
            let hmask = unsafe { load_u8(&blk.hmask) };
            let four = _mm256_set1_epi8(4);
            for h in 0..2 {
                // SAFETY: 32 of the 64 bytes of `qs`; AVX2 is enabled here.
                let bits = unsafe { load_u8(&blk.qs[32 * h..]) };
                for s in 0..4 {
                    let c = 4 * h + s;
                    let bit = _mm256_set1_epi8((1u8 << c) as i8);
                    let set = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), bit);
                    // SAFETY: AVX2 is enabled here.
                    let low = unsafe { crumbs(bits, 2 * s as i32) };
                    // q − 4 in −4..3, times −sc per 16 values in i16.
                    let level = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_and_si256(set, four)), four);
                    let neg = |j: usize| _mm256_set1_epi16(32 - sc[j] as i16);
                    let lo = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(level)), neg(2 * c));
                    let hi =
                        _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(level)), neg(2 * c + 1));
                    let packed = _mm256_packs_epi16(lo, hi);
                    u.q[c] = _mm256_permute4x64_epi64::<0b11_01_10_00>(packed);
                }
            }
            u.d = -blk.d.to_f32();
        }
    }
}
