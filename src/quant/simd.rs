//! Runtime choice of the SIMD level of the kernels (the x86 helpers the AVX2
//! kernels share are in `quant::x86`).
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
