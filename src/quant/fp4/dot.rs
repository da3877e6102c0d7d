//! Dot products of MXFP4 with Q8_0 activations: `Σ level·q8` exact per
//! block, scaled by `d_y·2^(e−128)`.

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
