//! Runtime choice of the SIMD level of the kernels (the x86 helpers the AVX2
//! kernels share are in `quant::x86`).
//!
//! Every kernel family has a scalar reference and, on x86-64, an AVX2 path
//! (AVX2 + FMA + F16C, what Haswell and later have). [`Isa::best`] detects
//! once what this CPU supports; `QUANTMIX_SIMD=scalar` in the environment
//! forces the scalar paths (for debugging and benchmarks).
//!
//! Beside the per-row kernels, float weights have an AVX-512 tile kernel
//! for matrix products of several tokens ([`use_avx512`]); its results equal
//! the AVX2 dot product's bit for bit. Legacy quantized weights (Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0), the k-quants and IQ4_NL/IQ4_XS have AVX-512 VNNI tile
//! kernels ([`use_avx512_vnni`]), equally bit-identical. `QUANTMIX_SIMD=avx2` turns both off.
//!
//! Each block type names its kernels per level in its
//! [`GgmlBlock`](super::GgmlBlock) impl (dot product, dequantizer and, for
//! the activation types Q8_0, Q8_1 and Q8_K, activation quantizer);
//! [`super::vec_dot_with`], [`super::dequantize_row_with`] and
//! [`super::quantize_activations_with`] run one on an explicitly chosen
//! level, so that tests and benchmarks can compare the paths on the same
//! data.

use std::sync::atomic::{AtomicU8, Ordering};

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

/// Asks the CPU to start loading the cache line that holds `p` into every
/// cache level (x86-64 `prefetcht0`; nothing elsewhere). A hint: it changes
/// no result and never faults.
#[inline(always)]
pub(crate) fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is in x86-64's baseline (SSE) and only a hint to the
    // cache: it reads nothing into the program and never faults, whatever the
    // address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Whether the AVX-512 tile kernels may run: AVX-512 F/BW/VL (and the AVX2
/// set) detected, the best level is AVX2 and `QUANTMIX_SIMD` is not `avx2`.
/// Detected once, then cached.
#[inline]
pub(crate) fn use_avx512() -> bool {
    match AVX512.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let off = std::env::var("QUANTMIX_SIMD").map(|v| v == "avx2").unwrap_or(false);
            let on = !off && use_avx2() && avx512_detected();
            AVX512.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// 0: not yet detected, 1: off, 2: on.
static AVX512: AtomicU8 = AtomicU8::new(0);

/// Whether the AVX-512 VNNI tile kernels (legacy quantized weights) may
/// run: [`use_avx512`] holds and the CPU has AVX-512 VNNI. Detected once,
/// then cached.
#[inline]
pub(crate) fn use_avx512_vnni() -> bool {
    match AVX512_VNNI.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = use_avx512() && avx512_vnni_detected();
            AVX512_VNNI.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// 0: not yet detected, 1: off, 2: on.
static AVX512_VNNI: AtomicU8 = AtomicU8::new(0);

/// Whether this CPU has AVX-512 F, BW, VL and VNNI (whatever
/// `QUANTMIX_SIMD` says).
#[cfg(target_arch = "x86_64")]
pub fn avx512_vnni_detected() -> bool {
    avx512_detected() && is_x86_feature_detected!("avx512vnni")
}

#[cfg(not(target_arch = "x86_64"))]
pub fn avx512_vnni_detected() -> bool {
    false
}

/// Whether this CPU has AVX-512 F, BW and VL (whatever `QUANTMIX_SIMD` says).
#[cfg(target_arch = "x86_64")]
pub fn avx512_detected() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
pub fn avx512_detected() -> bool {
    false
}
