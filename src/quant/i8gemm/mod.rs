//! The token-lane int8 GEMM: AVX-512 VNNI products of weight types whose
//! batch arithmetic ([`crate::quant::GgmlBlock::BATCH_DOT`], ggml's tiled
//! GEMM) is, per super-block of 256 values, one exact integer
//! `s = Σ_j ls(j)·w_j·q_j` — weight levels `w_j` (bytes), a scale `ls` per
//! 16 or 32 values (or none, where the levels already carry it), the Q8_K
//! activation levels `q_j` — then `res = d_w·s`, with a minimum term
//! `res = res − dmin_w·Σ_j m_j·bsum_j` (one FMA; Q2_K, Q4_K, Q5_K), and
//! `acc = fma(res, d_a, acc)`: the k-quants, IQ4_XS and the grid i-quants
//! (IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M). Each type only
//! says how a super-block unpacks ([`Unpack`], in its family's
//! `gemm.rs`).
//!
//! The layout follows ggml's tiled micro-kernel: the 32-bit lanes of a
//! register run over **16 tokens**, not over values. A call's tokens are
//! interleaved once into groups of 16 — per 4 consecutive values one
//! 64-byte line holding those 4 levels of each token, biased to unsigned
//! (`q + 128`). Each strip of [`vnni::MR`] weight rows is unpacked once for
//! all the call's tokens into signed bytes, its scales and
//! `corr = 128·Σ ls·w` (what the bias adds). The micro-kernel then
//! broadcasts 4 bytes of a row (`vpdpbusd`'s signed operand) against a
//! token line: one instruction is 64 products, 4 per token, with no
//! horizontal sums and no packing. Per sub-block and row the 16 token sums
//! are multiplied by the scale (`vpmulld`) into `s`; the minimum term's
//! `Σ m·bsum` is one `vpdpwssd` per 32 values against the tokens' block
//! sums, interleaved the same way; per super-block `s − corr` is converted
//! and the float steps run for 16 tokens at once.
//!
//! Every product is exact (at most 4·127·255 per lane and instruction,
//! `|s| < 2³¹`), integer sums do not depend on their order, and the float
//! steps per (row, token) are the batch dot product's, so every output is
//! bit-identical to it (tests/matmul.rs). CPUs without AVX-512 VNNI run
//! its AVX2 twin ([`avx2`]), the same layout with 8 tokens per line.

/// Tokens per tile for this kernel ([`crate::quant::GgmlBlock::GEMM_TILE_TOKENS`]).
pub const TILE_TOKENS: usize = 256;
/// Weight bytes per tile for this kernel ([`crate::quant::GgmlBlock::GEMM_TILE_BYTES`]).
pub const TILE_BYTES: usize = 384 * 1024;

#[cfg(target_arch = "x86_64")]
pub use unpack::{Unpack, Unpacked};

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
mod unpack;
#[cfg(target_arch = "x86_64")]
pub mod vnni;

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{Unpack, Unpacked};
    use crate::quant::blocks::*;

    /// The largest level magnitude over many random super-blocks of `W`.
    fn largest_level<W: Unpack>() -> u8 {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut largest = 0;
        for _ in 0..500 {
            let bytes: Vec<u8> = (0..std::mem::size_of::<W>())
                .map(|_| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    (state >> 33) as u8
                })
                .collect();
            let blk: W = bytemuck::pod_read_unaligned(&bytes);
            // SAFETY: the caller checked AVX2, FMA and F16C.
            let u = unsafe {
                let mut u = Unpacked::zero();
                W::unpack(&blk, &mut u);
                u
            };
            for q in u.q {
                // SAFETY: a 256-bit register is 32 bytes.
                let q: [i8; 32] = unsafe { std::mem::transmute(q) };
                largest = q.iter().map(|v| v.unsigned_abs()).fold(largest, u8::max);
            }
        }
        largest
    }

    /// Every type's `MAX_LEVEL` is what its unpacking reaches: not less
    /// (the AVX2 kernel's 16-bit sums would overflow) and not more (it
    /// would widen them more often than it needs to).
    #[test]
    fn max_level_is_the_largest_level_unpacked() {
        if !crate::quant::simd::Isa::Avx2.available() {
            eprintln!("no AVX2 here: the unpacking is not run");
            return;
        }
        fn check<W: Unpack>() {
            assert_eq!(largest_level::<W>(), W::MAX_LEVEL, "{}", W::TYPE);
        }
        check::<BlockQ2K>();
        check::<BlockQ3K>();
        check::<BlockQ4K>();
        check::<BlockQ5K>();
        check::<BlockQ6K>();
        check::<BlockIQ4XS>();
        check::<BlockIQ3S>();
        check::<BlockIQ3XXS>();
        check::<BlockIQ2XXS>();
        check::<BlockIQ2XS>();
        check::<BlockIQ2S>();
        check::<BlockIQ1S>();
        check::<BlockIQ1M>();
    }
}
