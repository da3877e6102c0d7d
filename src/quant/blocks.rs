//! `#[repr(C)]` block layouts, byte-compatible with ggml's `block_*` structs.
//! Sizes are asserted at compile time.

use bytemuck::{Pod, Zeroable};
use half::f16;

/// Elements in a k-quant super-block.
pub const QK_K: usize = 256;
/// Elements in a legacy block.
pub const QK4_0: usize = 32;
pub const QK4_1: usize = 32;
pub const QK5_0: usize = 32;
pub const QK5_1: usize = 32;
pub const QK8_0: usize = 32;
pub const QK8_1: usize = 32;
/// Elements in a Q1_0 block.
pub const QK1_0: usize = 128;
/// Elements in a Q2_0 block.
pub const QK2_0: usize = 64;
/// Elements in an MXFP4 block.
pub const QK_MXFP4: usize = 32;
/// Elements in an IQ4_NL block.
pub const QK4_NL: usize = 32;
/// Bytes of packed 6-bit scales in Q4_K/Q5_K, and of Q3_K scales.
pub const K_SCALE_SIZE: usize = 12;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK4_0 / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK4_1 / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK5_0 / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK5_1 / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK8_0],
}

/// Q8_1: `s` is `d * sum(qs)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK8_1],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

/// Q8_K: the activation type of the k-quant dot products.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

/// IQ4_NL: one f16 scale and 32 4-bit indices into ggml's non-linear
/// table `kvalues_iq4nl` (low nibbles values 0..16, high nibbles 16..32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ4NL {
    pub d: f16,
    pub qs: [u8; QK4_NL / 2],
}

/// IQ4_XS: a super-block of 256 values in 8 sub-blocks of 32, each with a
/// 6-bit scale offset by 32 (low 4 bits in `scales_l`, two per byte; high 2
/// bits in `scales_h`, two bits per sub-block), and 4-bit indices into
/// `kvalues_iq4nl` packed as IQ4_NL's.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ4XS {
    pub d: f16,
    pub scales_h: u16,
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}

/// Q1_0: one f16 scale and one sign bit per value (bit set: `+d`, clear:
/// `−d`; value `j` in bit `j % 8` of byte `j / 8`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ1_0 {
    pub d: f16,
    pub qs: [u8; QK1_0 / 8],
}

/// Q2_0: one f16 scale and 2-bit codes `q` for the values `(q − 1)·d`
/// (−d, 0, d, 2d; value `j` in bits `2·(j % 4)` of byte `j / 4`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2_0 {
    pub d: f16,
    pub qs: [u8; QK2_0 / 4],
}

/// TQ1_0: a super-block of 256 ternary values (−1, 0, 1 times the f16
/// scale), five trits per byte in `qs` (values 0..240) and four per byte in
/// `qh` (240..256), each byte a fixed-point fraction of 3^5.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockTQ1_0 {
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    pub qh: [u8; QK_K / 64],
    pub d: f16,
}

/// TQ2_0: a super-block of 256 ternary values as 2-bit codes `q` for
/// `(q − 1)·d` (byte `m` of each 32-byte group holds values `m + 32·l`,
/// `l` = 0..4, in bits `2l`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockTQ2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: f16,
}

/// MXFP4 (OCP microscaling FP4): 32 E2M1 values as 4-bit codes (low
/// nibbles values 0..16, high nibbles 16..32) sharing one E8M0 power-of-two
/// exponent `e`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockMXFP4 {
    pub e: u8,
    pub qs: [u8; QK_MXFP4 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ1_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ2_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockTQ1_0>() == 54);
const _: () = assert!(std::mem::size_of::<BlockTQ2_0>() == 66);
const _: () = assert!(std::mem::size_of::<BlockMXFP4>() == 17);
/// IQ3_XXS: a super-block of 256 values in 8 sub-blocks of 32; `qs[..64]`
/// holds 8 grid indices per sub-block (each 4 magnitudes of
/// `iq3xxs_grid`), `qs[64..]` one little-endian u32 per sub-block: four
/// 7-bit sign indices (`ksigns_iq2xs`) and the 4-bit scale in the top bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ3XXS {
    pub d: f16,
    pub qs: [u8; 3 * QK_K / 8],
}

/// IQ3_S: a super-block of 256 values in 8 sub-blocks of 32; 9-bit indices
/// into `iq3s_grid` (low 8 bits in `qs`, the 9th in `qh`, one byte per
/// sub-block), one sign bit per value, and a 4-bit scale per sub-block
/// (two per byte).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ3S {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub qh: [u8; QK_K / 32],
    pub signs: [u8; QK_K / 8],
    pub scales: [u8; QK_K / 64],
}

/// IQ2_XXS: a super-block of 256 values in 8 sub-blocks of 32; per
/// sub-block two little-endian u32 in `qs`: the first holds the 8-bit
/// indices of its 4 groups of 8 into `iq2xxs_grid`, the second their 7-bit
/// sign codes (bits `7l..7l+7`) and a 4-bit scale (bits 28..32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ2XXS {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
}

/// IQ2_XS: a super-block of 256 values in 32 groups of 8; per group a
/// little-endian u16 in `qs`: a 9-bit index into `iq2xs_grid` and a 7-bit
/// sign code above it; `scales` a 4-bit scale per 16 values (two per byte).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ2XS {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; QK_K / 32],
}

/// IQ2_S: a super-block of 256 values in 32 groups of 8; `qs[..32]` holds
/// the low 8 bits of each group's 10-bit index into `iq2s_grid` (8
/// magnitudes), `qs[32..]` its 8 sign bits, `qh` the high 2 bits (four
/// groups per byte), and `scales` a 4-bit scale per 16 values (two per
/// byte).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ2S {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub qh: [u8; QK_K / 32],
    pub scales: [u8; QK_K / 32],
}

/// IQ1_S: a super-block of 256 values in 8 sub-blocks of 32, each 4 groups
/// of 8; `qs` holds the low 8 bits of each group's 11-bit index into
/// `iq1s_grid` (8 levels −1, 0, 1), `qh` per sub-block the high 3 bits of
/// its 4 indices (bits `3l..3l+3`), a 3-bit scale (bits 12..15) and the
/// sign of the shift `±IQ1S_DELTA` (bit 15).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ1S {
    pub d: f16,
    pub qs: [u8; QK_K / 8],
    pub qh: [u16; QK_K / 32],
}

/// IQ1_M: a super-block of 256 values in 32 groups of 8; `qs` holds the
/// low 8 bits of each group's 11-bit index into `iq1s_grid`, `qh` per pair
/// of groups the high 3 bits of each (bits 0..3, 4..7) and the sign of its
/// shift `±IQ1M_DELTA` (bits 3, 7); `scales`, as 4 little-endian u16, a
/// 3-bit scale per 16 values (bits 0..12) and the f16 super-block scale in
/// their top nibbles.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ1M {
    pub qs: [u8; QK_K / 8],
    pub qh: [u8; QK_K / 16],
    pub scales: [u8; QK_K / 32],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84);
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 110);
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);
const _: () = assert!(std::mem::size_of::<BlockIQ4NL>() == 18);
const _: () = assert!(std::mem::size_of::<BlockIQ4XS>() == 136);
const _: () = assert!(std::mem::size_of::<BlockIQ3XXS>() == 98);
const _: () = assert!(std::mem::size_of::<BlockIQ3S>() == 110);
const _: () = assert!(std::mem::size_of::<BlockIQ2S>() == 82);
const _: () = assert!(std::mem::size_of::<BlockIQ2XXS>() == 66);
const _: () = assert!(std::mem::size_of::<BlockIQ2XS>() == 74);
const _: () = assert!(std::mem::size_of::<BlockIQ1S>() == 50);
const _: () = assert!(std::mem::size_of::<BlockIQ1M>() == 56);
