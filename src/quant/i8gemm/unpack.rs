//! What the kernels share: how a weight type's super-block unpacks.

use crate::quant::blocks::BlockQ8K;
use crate::quant::GgmlBlock;
use std::arch::x86_64::*;

/// A weight type of this kernel: how one super-block of 256 values
/// unpacks.
pub trait Unpack: GgmlBlock<VecDot = BlockQ8K> {
    /// Values per scale: 16 or 32, or 256 for levels already multiplied
    /// by their scales (still bytes), whose `ls` is not read.
    const SUB: usize;
    /// Whether a minimum term `dmin·Σ_j m_j·bsum_j` (per 16 values, the
    /// activations' block sums) is taken off: `res = d·s − dmin·s2`.
    const MINS: bool = false;
    /// The largest magnitude of a level [`Unpack::unpack`] writes. The
    /// AVX2 kernel ([`super::avx2`]) sums pairs of products (biased
    /// activation ≤ 255 × level) in 16 bits, which holds up to 64.
    const MAX_LEVEL: u8;

    /// Fills `u.q` (the signed levels of values `32c..32c+32` in
    /// `q[c]`, value order), `u.ls` (the scale of values
    /// `SUB·i..SUB·(i+1)` in `ls[i]`), with [`Unpack::MINS`] `u.mins`
    /// (`m_j` of values `16j..16j+16`) and `u.dmin`, and `u.d`, the
    /// factor of `res = d·s` (`s` the super-block's integer sum).
    ///
    /// # Safety
    /// AVX2, FMA and F16C on the running CPU.
    unsafe fn unpack(blk: &Self, u: &mut Unpacked);

    /// [`Unpack::unpack`]'s fields where AVX-512 VNNI is at hand (what
    /// [`super::vnni::gemm`] runs on); by default `unpack` itself.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the running CPU.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn unpack_vnni(blk: &Self, u: &mut Unpacked) {
        // SAFETY: the features are a superset of `unpack`'s.
        unsafe { Self::unpack(blk, u) }
    }
}

/// One unpacked weight super-block (see [`Unpack::unpack`]).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Unpacked {
    pub q: [__m256i; 8],
    pub ls: [i32; 16],
    pub mins: [i16; 16],
    pub d: f32,
    pub dmin: f32,
    /// `128·Σ_j ls(j)·w_j` (formed here, not by the type).
    pub(super) corr: i32,
}

impl Unpacked {
    /// All zero: a padding row.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn zero() -> Self {
        let zero = _mm256_setzero_si256();
        Unpacked { q: [zero; 8], ls: [0; 16], mins: [0; 16], d: 0.0, dmin: 0.0, corr: 0 }
    }

    /// Forms `corr` from the levels and scales `W`'s unpacking wrote.
    ///
    /// # Safety
    /// AVX2 on the running CPU.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn finish<W: Unpack>(&mut self) {
        // Σ ls·w: pair sums of the levels (`maddubs` by 1, one 16-value
        // half per 8 i16 lanes), `madd` by the scale of each half.
        let ones = _mm256_set1_epi8(1);
        let mut sum = _mm256_setzero_si256();
        for (c, &q) in self.q.iter().enumerate() {
            let (l0, l1) = match W::SUB {
                16 => (self.ls[2 * c], self.ls[2 * c + 1]),
                32 => (self.ls[c], self.ls[c]),
                _ => (1, 1),
            };
            let (l0, l1) = (l0 as i16, l1 as i16);
            let ls = _mm256_setr_epi16(l0, l0, l0, l0, l0, l0, l0, l0, l1, l1, l1, l1, l1, l1, l1, l1);
            sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, q), ls));
        }
        // SAFETY: AVX2 is enabled in this function.
        self.corr = unsafe { crate::quant::x86::hsum_epi32(sum) }.wrapping_mul(128);
    }
}
