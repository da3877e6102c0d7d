//! The registry of block types: the one list of the ggml types quantmix
//! implements ([`with_block_type!`](crate::with_block_type)), and what each
//! of them can do ([`caps`]), derived from its [`GgmlBlock`] impl.
//!
//! Adding a type takes its block layout (`blocks.rs`), its `GgmlBlock` impl
//! and kernels in its family folder, and one line in `__block_types!` here;
//! every capability query, listing and byte-level dispatch follows.

use super::simd::Isa;
use super::{GgmlBlock, GgmlType};

/// The registry: every ggml type quantmix implements, one line each, with
/// its block type, in the order listings use ([`REGISTRY`],
/// [`VEC_DOT_TYPES`]). Expands to `$then! { { $args } TYPE => Block, ... }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __block_types {
    ($then:ident { $($args:tt)* }) => {
        $crate::$then! { { $($args)* }
            F32 => f32,
            F16 => half::f16,
            BF16 => half::bf16,
            Q4_0 => $crate::quant::blocks::BlockQ4_0,
            Q4_1 => $crate::quant::blocks::BlockQ4_1,
            Q5_0 => $crate::quant::blocks::BlockQ5_0,
            Q5_1 => $crate::quant::blocks::BlockQ5_1,
            Q8_0 => $crate::quant::blocks::BlockQ8_0,
            Q8_1 => $crate::quant::blocks::BlockQ8_1,
            Q2_K => $crate::quant::blocks::BlockQ2K,
            Q3_K => $crate::quant::blocks::BlockQ3K,
            Q4_K => $crate::quant::blocks::BlockQ4K,
            Q5_K => $crate::quant::blocks::BlockQ5K,
            Q6_K => $crate::quant::blocks::BlockQ6K,
            Q8_K => $crate::quant::blocks::BlockQ8K,
            IQ4_NL => $crate::quant::blocks::BlockIQ4NL,
            IQ4_XS => $crate::quant::blocks::BlockIQ4XS,
            TQ1_0 => $crate::quant::blocks::BlockTQ1_0,
            TQ2_0 => $crate::quant::blocks::BlockTQ2_0,
            MXFP4 => $crate::quant::blocks::BlockMXFP4,
            Q1_0 => $crate::quant::blocks::BlockQ1_0,
            Q2_0 => $crate::quant::blocks::BlockQ2_0,
            IQ3_XXS => $crate::quant::blocks::BlockIQ3XXS,
            IQ3_S => $crate::quant::blocks::BlockIQ3S,
            IQ2_S => $crate::quant::blocks::BlockIQ2S,
            IQ2_XXS => $crate::quant::blocks::BlockIQ2XXS,
            IQ2_XS => $crate::quant::blocks::BlockIQ2XS,
            IQ1_S => $crate::quant::blocks::BlockIQ1S,
            IQ1_M => $crate::quant::blocks::BlockIQ1M,
        }
    };
}

/// Invoke `$body` with `$B` bound to the block type of `$ty`; evaluates to
/// `None` for types without a block implementation.
#[macro_export]
macro_rules! with_block_type {
    ($ty:expr, $B:ident => $body:expr) => {
        $crate::__block_types!(__with_block_type { $ty, $B, $body })
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __with_block_type {
    ({ $ty:expr, $B:ident, $body:expr } $($T:ident => $Block:ty,)*) => {
        match $ty {
            $($crate::gguf::types::GgmlType::$T => {
                type $B = $Block;
                Some($body)
            })*
            _ => None,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __caps_table {
    ({} $($T:ident => $Block:ty,)*) => {
        &[$($crate::quant::registry::Caps::of::<$Block>(),)*]
    };
}

/// What quantmix can do with one ggml type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub ty: GgmlType,
    /// Rows of f32 can be quantized to it.
    pub quantize: bool,
    /// Its rows can be dequantized to f32.
    pub dequantize: bool,
    /// A storage type quantmix writes into model files: every implemented
    /// type but the activation-only ones (Q8_1, Q8_K).
    pub writable: bool,
    /// It has a dot product with its activation type, so weights of this
    /// type can be multiplied (`quant::matmul`, the model's forward pass).
    pub vec_dot: bool,
    /// That activation type (`vec_dot_type` in ggml).
    pub vec_dot_type: Option<GgmlType>,
    /// Its dot product has an AVX2 kernel.
    pub vec_dot_avx2: bool,
    /// Its dequantizer has an AVX2 kernel.
    pub dequantize_avx2: bool,
    /// It is quantized only with an importance matrix
    /// ([`GgmlBlock::REQUIRES_IMATRIX`]).
    pub requires_imatrix: bool,
}

impl Caps {
    /// The capabilities of block type `B`.
    pub const fn of<B: GgmlBlock>() -> Caps {
        Caps {
            ty: B::TYPE,
            quantize: true,
            dequantize: true,
            writable: B::STORAGE,
            vec_dot: true,
            vec_dot_type: Some(<B::VecDot as GgmlBlock>::TYPE),
            vec_dot_avx2: B::VEC_DOT_AVX2.is_some(),
            dequantize_avx2: B::DEQUANTIZE_AVX2.is_some(),
            requires_imatrix: B::REQUIRES_IMATRIX,
        }
    }

    /// A type quantmix does not implement.
    pub const fn none(ty: GgmlType) -> Caps {
        Caps {
            ty,
            quantize: false,
            dequantize: false,
            writable: false,
            vec_dot: false,
            vec_dot_type: None,
            vec_dot_avx2: false,
            dequantize_avx2: false,
            requires_imatrix: false,
        }
    }

    /// Whether the dot product has a kernel for `isa` (whether this CPU can
    /// run it is [`Isa::available`]).
    pub fn vec_dot_on(&self, isa: Isa) -> bool {
        match isa {
            Isa::Scalar => self.vec_dot,
            Isa::Avx2 => self.vec_dot_avx2,
        }
    }

    /// Whether dequantization has a kernel for `isa`.
    pub fn dequantize_on(&self, isa: Isa) -> bool {
        match isa {
            Isa::Scalar => self.dequantize,
            Isa::Avx2 => self.dequantize_avx2,
        }
    }

    /// Whether it is the activation type of some type's dot product (what
    /// `quant::matmul::Activations` quantizes to).
    pub fn is_activation(&self) -> bool {
        REGISTRY.iter().any(|c| c.vec_dot_type == Some(self.ty))
    }
}

/// The capabilities of `ty`.
pub fn caps(ty: GgmlType) -> Caps {
    crate::with_block_type!(ty, B => Caps::of::<B>()).unwrap_or(Caps::none(ty))
}

/// The activation type ggml pairs with `ty` in dot products.
pub fn vec_dot_type(ty: GgmlType) -> Option<GgmlType> {
    caps(ty).vec_dot_type
}

/// Every implemented type's capabilities, in registry order.
pub const REGISTRY: &[Caps] = crate::__block_types!(__caps_table {});

/// The weight types that have a dot product with their activation type
/// (the writable types among [`REGISTRY`], in its order).
pub const VEC_DOT_TYPES: &[GgmlType] = &weights_with_dot::<{ count_weights_with_dot(REGISTRY) }>(REGISTRY);

const fn is_weight_with_dot(c: &Caps) -> bool {
    c.writable && c.vec_dot
}

const fn count_weights_with_dot(caps: &[Caps]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < caps.len() {
        if is_weight_with_dot(&caps[i]) {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn weights_with_dot<const N: usize>(caps: &[Caps]) -> [GgmlType; N] {
    let mut out = [GgmlType::F32; N];
    let (mut i, mut n) = (0, 0);
    while i < caps.len() {
        if is_weight_with_dot(&caps[i]) {
            out[n] = caps[i].ty;
            n += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_each_type_once_with_its_caps() {
        for (i, c) in REGISTRY.iter().enumerate() {
            assert_eq!(caps(c.ty), *c);
            assert!(REGISTRY[..i].iter().all(|d| d.ty != c.ty), "{} listed twice", c.ty);
            assert_eq!(c.ty.block_size(), crate::with_block_type!(c.ty, B => B::BLCK_SIZE).unwrap());
            assert_eq!(c.ty.type_size(), crate::with_block_type!(c.ty, B => std::mem::size_of::<B>()).unwrap());
        }
        assert_eq!(caps(GgmlType::NVFP4), Caps::none(GgmlType::NVFP4));
        let activation_only: Vec<GgmlType> = REGISTRY.iter().filter(|c| !c.writable).map(|c| c.ty).collect();
        assert_eq!(activation_only, [GgmlType::Q8_1, GgmlType::Q8_K]);
        assert_eq!(VEC_DOT_TYPES.len(), REGISTRY.len() - 2);
        assert!(caps(GgmlType::Q8_K).is_activation() && !caps(GgmlType::Q4_0).is_activation());
    }
}
