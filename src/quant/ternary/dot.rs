//! Dot products of TQ1_0 and TQ2_0 with Q8_K activations: `Σ (trit)·q8`
//! exact in integers per super-block, then scaled by `d_x·d_y`.
//!
//! [`scalar`] is the reference, in the float order of ggml's generic C
//! code; [`avx2`] forms the integer sums in ggml's AVX2 lane layout (which
//! decides the float rounding) and accumulates as ggml's AVX2 kernels do.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
