//! Dot products of IQ4_NL with Q8_0 and of IQ4_XS with Q8_K activations:
//! the table levels times the activation levels summed exactly in integers
//! per (sub-)block, then scaled in float.
//!
//! [`scalar`] is the reference, in the float order of ggml's generic C
//! code; [`avx2`] forms the same integer sums (the levels looked up with
//! `pshufb`) and accumulates in float as ggml's AVX2 kernels do, so the
//! forward pass gives what llama.cpp's AVX2 build gives.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;

#[cfg(target_arch = "x86_64")]
pub mod vnni;
