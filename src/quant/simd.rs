//! Runtime choice of the SIMD level of the kernels, and the x86 helpers the
//! AVX2 kernels share.
//!
//! Every kernel family has a scalar reference and, on x86-64, an AVX2 path
//! (AVX2 + FMA + F16C, what Haswell and later have). [`Isa::best`] detects
//! once what this CPU supports; `QUANTMIX_SIMD=scalar` in the environment
//! forces the scalar paths (for debugging and benchmarks).
//!
//! [`vec_dot_with`] runs one dot product on an explicitly chosen path, so
//! that tests and benchmarks can compare the paths on the same data.

use std::sync::atomic::{AtomicU8, Ordering};

use super::blocks::*;
use super::{GgmlType, QuantError};

/// An instruction-set level a kernel can be written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, the reference every other path is tested against.
    Scalar,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
}

impl Isa {
    /// Every level, scalar first.
    pub const ALL: &'static [Isa] = &[Isa::Scalar, Isa::Avx2];

    /// Short lower-case name (`scalar`, `avx2`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
        }
    }

    /// Whether this CPU can run kernels of this level.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => avx2_detected(),
        }
    }

    /// The fastest level this CPU supports, unless `QUANTMIX_SIMD=scalar`
    /// asks for the scalar paths. Detected once, then cached.
    #[inline]
    pub fn best() -> Isa {
        match BEST.load(Ordering::Relaxed) {
            1 => Isa::Scalar,
            2 => Isa::Avx2,
            _ => {
                let forced_scalar = std::env::var("QUANTMIX_SIMD").map(|v| v == "scalar").unwrap_or(false);
                let isa = if !forced_scalar && Isa::Avx2.available() { Isa::Avx2 } else { Isa::Scalar };
                BEST.store(if isa == Isa::Avx2 { 2 } else { 1 }, Ordering::Relaxed);
                isa
            }
        }
    }
}

/// 0: not yet detected, 1: scalar, 2: AVX2.
static BEST: AtomicU8 = AtomicU8::new(0);

#[cfg(target_arch = "x86_64")]
fn avx2_detected() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_detected() -> bool {
    false
}

/// Whether the best level is AVX2 (the dispatchers' fast check).
#[inline(always)]
pub(crate) fn use_avx2() -> bool {
    cfg!(target_arch = "x86_64") && Isa::best() == Isa::Avx2
}

/// The weight types that have a dot product with their activation type.
pub const VEC_DOT_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// View bytes as blocks, copying only when they are misaligned.
fn cast<B: bytemuck::Pod>(ty: GgmlType, bytes: &[u8]) -> Result<std::borrow::Cow<'_, [B]>, QuantError> {
    let size = std::mem::size_of::<B>();
    if bytes.len() % size != 0 {
        return Err(QuantError::BadLength { ty, got: bytes.len(), expected: bytes.len() / size * size });
    }
    Ok(match bytemuck::try_cast_slice::<u8, B>(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(bytemuck::pod_collect_to_vec(bytes)),
    })
}

/// Dot product of `n` weights of type `ty` (one of [`VEC_DOT_TYPES`]) with
/// `n` activations of its `vec_dot_type`, on the path `isa`. Errors when the
/// lengths are wrong, the type has no dot product, or this CPU lacks `isa`.
pub fn vec_dot_with(isa: Isa, ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> Result<f32, QuantError> {
    use super::float::dot as fd;
    use super::kquants::dot as kd;
    use super::legacy::dot as ld;
    if !isa.available() {
        return Err(QuantError::Unsupported { ty, op: "vec_dot on this CPU's instruction set" });
    }
    let aty = super::vec_dot_type(ty).ok_or(QuantError::Unsupported { ty, op: "vec_dot" })?;
    for (t, bytes) in [(ty, w.len()), (aty, act.len())] {
        let block = t.block_size();
        if n % block != 0 {
            return Err(QuantError::RowNotBlockMultiple { ty: t, n, block });
        }
        if bytes != n / block * t.type_size() {
            return Err(QuantError::BadLength { ty: t, got: bytes, expected: n / block * t.type_size() });
        }
    }
    macro_rules! run {
        ($X:ty, $Y:ty, $scalar:path, $avx2:path) => {{
            let (x, y) = (cast::<$X>(ty, w)?, cast::<$Y>(aty, act)?);
            match isa {
                Isa::Scalar => $scalar(&x, &y),
                Isa::Avx2 => {
                    #[cfg(target_arch = "x86_64")]
                    {
                        // SAFETY: `isa.available()` was checked above, so
                        // this CPU has AVX2, FMA and F16C.
                        unsafe { $avx2(&x, &y) }
                    }
                    #[cfg(not(target_arch = "x86_64"))]
                    unreachable!("AVX2 is never available off x86-64")
                }
            }
        }};
    }
    use half::{bf16, f16};
    Ok(match ty {
        GgmlType::F32 => run!(f32, f32, fd::scalar::dot_f32, fd::avx2::dot_f32),
        GgmlType::F16 => run!(f16, f16, fd::scalar::dot_f16, fd::avx2::dot_f16),
        GgmlType::BF16 => run!(bf16, bf16, fd::scalar::dot_bf16, fd::avx2::dot_bf16),
        GgmlType::Q4_0 => run!(BlockQ4_0, BlockQ8_0, ld::scalar::q4_0_q8_0, ld::avx2::q4_0_q8_0),
        GgmlType::Q4_1 => run!(BlockQ4_1, BlockQ8_1, ld::scalar::q4_1_q8_1, ld::avx2::q4_1_q8_1),
        GgmlType::Q5_0 => run!(BlockQ5_0, BlockQ8_0, ld::scalar::q5_0_q8_0, ld::avx2::q5_0_q8_0),
        GgmlType::Q5_1 => run!(BlockQ5_1, BlockQ8_1, ld::scalar::q5_1_q8_1, ld::avx2::q5_1_q8_1),
        GgmlType::Q8_0 => run!(BlockQ8_0, BlockQ8_0, ld::scalar::q8_0_q8_0, ld::avx2::q8_0_q8_0),
        GgmlType::Q2_K => run!(BlockQ2K, BlockQ8K, kd::scalar::q2k_q8k, kd::avx2::q2k_q8k),
        GgmlType::Q3_K => run!(BlockQ3K, BlockQ8K, kd::scalar::q3k_q8k, kd::avx2::q3k_q8k),
        GgmlType::Q4_K => run!(BlockQ4K, BlockQ8K, kd::scalar::q4k_q8k, kd::avx2::q4k_q8k),
        GgmlType::Q5_K => run!(BlockQ5K, BlockQ8K, kd::scalar::q5k_q8k, kd::avx2::q5k_q8k),
        GgmlType::Q6_K => run!(BlockQ6K, BlockQ8K, kd::scalar::q6k_q8k, kd::avx2::q6k_q8k),
        _ => return Err(QuantError::Unsupported { ty, op: "vec_dot" }),
    })
}

/// Helpers of the AVX2 kernels. Every function here requires AVX2, FMA and
/// F16C: callers are `#[target_feature(enable = "avx2,fma,f16c")]` kernels
/// reached only after [`Isa::Avx2`] was detected.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use half::f16;
    use std::arch::x86_64::*;

    /// Sum of the 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn hsum_ps(x: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Sum of the 8 lanes (wrapping).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn hsum_epi32(x: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// Four f16 values converted at once into lanes 0..4. The bits travel
    /// through a general register and `vmovq`, which zeroes the rest of the
    /// vector: a lone scalar conversion would let the compiler insert into
    /// an arbitrary register, creating a false dependency on it (on the
    /// accumulator, in practice, serializing the loop).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16x4_to_f32(a: f16, b: f16, c: f16, d: f16) -> __m128 {
        let bits =
            a.to_bits() as u64 | (b.to_bits() as u64) << 16 | (c.to_bits() as u64) << 32 | (d.to_bits() as u64) << 48;
        _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64))
    }

    /// `(a·b, c·d)` of four f16 values, as f32 products of the converted values.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16_products(a: f16, b: f16, c: f16, d: f16) -> (f32, f32) {
        let v = f16x4_to_f32(a, b, c, d);
        let p = _mm_mul_ps(v, _mm_movehdup_ps(v));
        (_mm_cvtss_f32(p), _mm_cvtss_f32(_mm_movehl_ps(p, p)))
    }

    /// Two f16 values converted at once (see [`f16x4_to_f32`] for why).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16x2_to_f32(a: f16, b: f16) -> (f32, f32) {
        let bits = a.to_bits() as u32 | (b.to_bits() as u32) << 16;
        let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
        (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
    }

    /// `a·b` of two f16 values.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16_product(a: f16, b: f16) -> f32 {
        let bits = a.to_bits() as u32 | (b.to_bits() as u32) << 16;
        let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
        _mm_cvtss_f32(_mm_mul_ss(v, _mm_movehdup_ps(v)))
    }

    /// 32 bytes from 16 packed nibbles: low nibbles in bytes 0..16, high
    /// nibbles in bytes 16..32 (the legacy blocks' value order).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn nibbles_32(qs: &[u8; 16]) -> __m256i {
        // SAFETY: reads exactly the 16 bytes of `qs`.
        let lo = _mm_loadu_si128(qs.as_ptr() as *const __m128i);
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(lo), lo);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    /// 32 bytes, byte `j` 0xFF if bit `j` of the little-endian word is set.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn bits_32(qh: &[u8; 4]) -> __m256i {
        let word = _mm256_set1_epi32(i32::from_le_bytes(*qh));
        // Byte j takes byte j/8 of the word...
        let spread = _mm256_shuffle_epi8(
            word,
            _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0),
        );
        // ...and tests bit j%8 of it.
        let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select)
    }

    /// The first 32 bytes of `p`, unaligned.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn load_u8(p: &[u8]) -> __m256i {
        assert!(p.len() >= 32);
        // SAFETY: `p` has at least 32 bytes (checked above).
        _mm256_loadu_si256(p.as_ptr() as *const __m256i)
    }

    /// The first 32 bytes of `p`, unaligned.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn load_i8(p: &[i8]) -> __m256i {
        assert!(p.len() >= 32);
        // SAFETY: `p` has at least 32 bytes (checked above).
        _mm256_loadu_si256(p.as_ptr() as *const __m256i)
    }

    /// 16 i16 values.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn load_i16x16(p: &[i16; 16]) -> __m256i {
        // SAFETY: `p` is exactly 32 bytes.
        _mm256_loadu_si256(p.as_ptr() as *const __m256i)
    }

    /// 16 bytes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn load_16<T: bytemuck::Pod>(p: &[T; 16]) -> __m128i {
        const { assert!(std::mem::size_of::<T>() == 1) };
        // SAFETY: `p` is 16 one-byte values.
        _mm_loadu_si128(p.as_ptr() as *const __m128i)
    }

    /// Pairwise sums of `u8 × i8` products, then of adjacent pairs: 8 i32
    /// lanes, each the sum of 4 consecutive products. Exact when every pair
    /// sum fits in i16 (true for the level ranges of all block types).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    /// Like [`dot_u8_i8`] for two signed vectors (|x| ≤ 127 expected).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_i8_i8(x: __m256i, y: __m256i) -> __m256i {
        dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
    }

    /// The 16 i16 factors of sub-blocks `2p` and `2p+1` of 16 values each:
    /// lanes 0..8 hold `scales[2p]`, lanes 8..16 `scales[2p+1]`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn scale_pair(scales: __m128i, p: usize) -> __m256i {
        let (a, b) = ((2 * p) as i64, (2 * p + 1) as i64);
        let sel = _mm_set_epi64x(b * 0x0101_0101_0101_0101, a * 0x0101_0101_0101_0101);
        _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, sel))
    }
}
