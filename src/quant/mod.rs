//! ggml block quantization: one trait ([`GgmlBlock`]), one module per block
//! family, each with a scalar reference path and SIMD paths that must give
//! the same results.
//!
//! - [`float`]: F32, F16, BF16.
//! - [`legacy`]: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, and the newer Q1_0, Q2_0.
//! - [`kquants`]: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
//! - [`iquants`]: IQ4_NL, IQ4_XS (4-bit indices into a non-linear table),
//!   IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S (indices into grids of 4 or 8
//!   magnitudes, signs apart), IQ1_S, IQ1_M (indices into a grid of 8 levels −1, 0, 1, shifted
//!   by ±1/8).
//! - [`ternary`]: TQ1_0, TQ2_0 (values −1, 0, 1 times a scale).
//! - [`fp4`]: MXFP4 (E2M1 values with a shared power-of-two exponent).
//! - [`search`]: the scale searches ggml's quantizers share.
//! - [`registry`]: the one list of implemented types
//!   ([`with_block_type!`](crate::with_block_type)) and their capabilities
//!   ([`caps`]), derived from each type's [`GgmlBlock`] impl.
//! - [`simd`]: which instruction set the kernels use ([`simd::Isa`]).
//! - [`matmul`]: weight matrix × f32 activations, for the model and the
//!   benchmarks.
//!
//! The byte-level functions at the bottom ([`quantize_row`],
//! [`dequantize_row`], [`dequantize_row_with`], [`vec_dot`],
//! [`vec_dot_with`], [`quantize_rows`])
//! dispatch on a [`GgmlType`] for code that works on raw tensor bytes.

// Kernels index several arrays in lockstep, mirroring ggml's loops so that the
// order of floating-point operations is visibly the same.
#![allow(clippy::needless_range_loop)]

pub mod blocks;
pub mod float;
pub mod fp4;
pub mod i8gemm;
pub mod iquants;
pub mod kquants;
pub mod legacy;
pub mod matmul;
pub mod registry;
pub mod search;
pub mod simd;
pub mod ternary;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

use bytemuck::Pod;
use rayon::prelude::*;

pub use crate::gguf::types::GgmlType;
pub use blocks::*;
pub use registry::{caps, vec_dot_type, Caps, REGISTRY, VEC_DOT_TYPES};
use simd::Isa;

use crate::with_block_type;

/// Errors of the byte-level quantization API.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("{op} of {ty} is not supported by quantmix")]
    Unsupported { ty: GgmlType, op: &'static str },
    #[error("{ty}: row length {n} is not a multiple of the block size {block}")]
    RowNotBlockMultiple { ty: GgmlType, n: usize, block: usize },
    #[error("{ty}: buffer of {got} bytes, expected {expected}")]
    BadLength { ty: GgmlType, got: usize, expected: usize },
    #[error("importance matrix has {got} values, expected {expected} (one per column)")]
    BadImatrix { got: usize, expected: usize },
    #[error("{ty} requires an importance matrix (ggml quantizes it only with one)")]
    NeedsImatrix { ty: GgmlType },
}

/// The fewest tokens of a product for which ggml's CPU backend multiplies
/// k-quant and IQ4_XS weights with its tiled GEMM (`ggml_tiled_min_batch`)
/// instead of `vec_dot`; see [`GgmlBlock::BATCH_DOT`].
pub const BATCH_MIN_TOKENS: usize = 8;

/// A scalar dot product of a block type with its activation type
/// ([`GgmlBlock::BATCH_DOT`]).
pub type BatchDotFn<B> = fn(&[B], &[<B as GgmlBlock>::VecDot]) -> f32;

/// A dot-product kernel of a block type with its activation type. `unsafe`
/// because SIMD kernels need CPU features their caller must have checked.
pub type VecDotKernel<B> = unsafe fn(&[B], &[<B as GgmlBlock>::VecDot]) -> f32;

/// A tile kernel of a block type for products of several tokens:
/// `(w, a, n, out)` with `w` rows and `a` tokens of `n` values each (in
/// blocks), row `r` · token `t` written at `out.at(t, r)`, every output
/// bit-identical to the type's batch dot product. `unsafe` as
/// [`VecDotKernel`], and because `out` must be valid (see [`GemmOut`]).
pub type GemmKernel<B> = unsafe fn(&[B], &[<B as GgmlBlock>::VecDot], usize, GemmOut);

/// Where a tile kernel ([`GemmKernel`]) writes: row `r`, token `t` of its
/// call at `ptr + t·stride + r`, straight into a tile of the whole
/// product's output. Whoever calls a kernel with it guarantees that every
/// such element (`t` below the call's tokens, `r` below its rows) is valid
/// for writes and touched by nothing else during the call.
#[derive(Clone, Copy, Debug)]
pub struct GemmOut {
    pub ptr: *mut f32,
    pub stride: usize,
}

impl GemmOut {
    /// The output of token `t`, row `r`.
    #[inline(always)]
    pub fn at(self, t: usize, r: usize) -> *mut f32 {
        self.ptr.wrapping_add(t * self.stride + r)
    }
}

/// A dequantization kernel of a block type: `src` into `dst`
/// (`src.len() * BLCK_SIZE` values). `unsafe` as [`VecDotKernel`].
pub type DequantizeKernel<B> = unsafe fn(&[B], &mut [f32]);

/// An activation quantizer of a block type: `src` (`dst.len() * BLCK_SIZE`
/// values) into `dst`. `unsafe` as [`VecDotKernel`].
pub type ActivationKernel<B> = unsafe fn(&[f32], &mut [B]);

/// One ggml block type: its layout (`Self`), how to quantize a row into it
/// (optionally weighted by an importance vector), how to dequantize it, and
/// its dot product with the activation type ggml pairs it with, per
/// instruction set.
pub trait GgmlBlock: Pod + Send + Sync + 'static {
    /// The ggml type this block stores.
    const TYPE: GgmlType;
    /// Elements per block.
    const BLCK_SIZE: usize;
    /// The activation type of [`GgmlBlock::vec_dot`] (`vec_dot_type` in ggml).
    type VecDot: GgmlBlock;
    /// Whether quantmix writes this type into model files; `false` for the
    /// activation-only types (Q8_1, Q8_K).
    const STORAGE: bool = true;

    /// The AVX2 + FMA + F16C dot product ([`Isa::Avx2`]), if this type has
    /// one; it may only be called on a CPU where [`Isa::Avx2`] is available.
    const VEC_DOT_AVX2: Option<VecDotKernel<Self>> = None;

    /// The AVX-512 VNNI dot product, if this type has one: the bits of
    /// [`GgmlBlock::VEC_DOT_AVX2`] in fewer instructions. It may only run
    /// where `simd::use_avx512_vnni()` holds; [`GgmlBlock::vec_dot`] prefers it.
    const VEC_DOT_VNNI: Option<VecDotKernel<Self>> = None;

    /// The AVX2 + FMA + F16C dequantizer ([`Isa::Avx2`]), if this type has
    /// one; same conditions as [`GgmlBlock::VEC_DOT_AVX2`]. Its output must
    /// be bit-identical to [`GgmlBlock::dequantize_row_scalar`]'s.
    const DEQUANTIZE_AVX2: Option<DequantizeKernel<Self>> = None;

    /// The AVX2 + FMA + F16C activation quantizer ([`Isa::Avx2`]), if this
    /// type has one; same conditions as [`GgmlBlock::VEC_DOT_AVX2`]. Its
    /// blocks must equal [`GgmlBlock::quantize_activations_scalar`]'s byte
    /// for byte.
    const QUANTIZE_ACTIVATIONS_AVX2: Option<ActivationKernel<Self>> = None;

    /// The AVX-512 tile kernel for products of several tokens, if this type
    /// has one; it may only run where `simd::use_avx512()` holds, and each
    /// of its outputs equals the batch dot product's bit for bit
    /// ([`GgmlBlock::batch_dot`]).
    const GEMM_AVX512: Option<GemmKernel<Self>> = None;

    /// The AVX-512 VNNI tile kernel for products of several tokens, if this
    /// type has one; it may only run where `simd::use_avx512_vnni()` holds,
    /// and each of its outputs equals the batch dot product's bit for bit
    /// ([`GgmlBlock::batch_dot`]).
    const GEMM_VNNI: Option<GemmKernel<Self>> = None;

    /// The AVX2 + FMA + F16C tile kernel for products of several tokens,
    /// if this type has one, for CPUs without [`GgmlBlock::GEMM_VNNI`]'s
    /// instructions; it may only run where [`Isa::Avx2`] is available, and
    /// each of its outputs equals the batch dot product's bit for bit.
    const GEMM_AVX2: Option<GemmKernel<Self>> = None;

    /// Bytes of weight rows per tile of the tile kernels
    /// ([`matmul`](crate::quant::matmul)): by default a tile's rows stay in
    /// L2 while its tokens pass over them. A kernel that decodes each group
    /// of rows once per tile and prepares the tile's tokens once for all its
    /// rows (the legacy VNNI kernels) gains from fewer, taller tiles instead.
    const GEMM_TILE_BYTES: usize = 96 * 1024;

    /// Tokens per tile of the tile kernels: by default 64. A kernel that
    /// unpacks each group of rows once per tile gains from more.
    const GEMM_TILE_TOKENS: usize = 64;

    /// Products of [`GgmlBlock::BATCH_FROM`] or more tokens in ggml's
    /// other arithmetic, if ggml's CPU backend has one for this type: its
    /// tiled matmul (`ggml-cpu/tiled`), which llama.cpp takes for k-quant and
    /// IQ4_XS weights whenever a product has 8 or more tokens (prompt
    /// processing), or llamafile's tinyBLAS (IQ4_NL, from 2 tokens on); both
    /// round differently from `vec_dot`. The scalar twin; `None`: batches
    /// use [`GgmlBlock::vec_dot`].
    const BATCH_DOT: Option<BatchDotFn<Self>> = None;

    /// The fewest tokens of a product computed with
    /// [`GgmlBlock::BATCH_DOT`].
    const BATCH_FROM: usize = BATCH_MIN_TOKENS;

    /// The AVX2 + FMA + F16C version of [`GgmlBlock::BATCH_DOT`] (the same
    /// bits); same conditions as [`GgmlBlock::VEC_DOT_AVX2`].
    const BATCH_DOT_AVX2: Option<VecDotKernel<Self>> = None;

    /// ggml quantizes this type only with importance weights
    /// (`ggml_quantize_requires_imatrix`); [`quantize_row`] and
    /// [`quantize_rows`] refuse it without them.
    const REQUIRES_IMATRIX: bool = false;

    /// Quantize `src` (`dst.len() * BLCK_SIZE` values). With `imatrix`
    /// (one weight per element of `src`), use ggml's importance-weighted
    /// search; without, ggml's reference quantizer.
    fn quantize_row(src: &[f32], dst: &mut [Self], imatrix: Option<&[f32]>);

    /// The scalar reference dequantizer ([`Isa::Scalar`]): `src` into `dst`
    /// (`src.len() * BLCK_SIZE` values), in ggml's order of float
    /// operations. Every SIMD dequantizer must give the same bits.
    fn dequantize_row_scalar(src: &[Self], dst: &mut [f32]);

    /// Dequantize on the path `isa`; `false` (and `dst` untouched) when this
    /// type has no dequantizer for `isa` or this CPU lacks it.
    fn dequantize_row_on(isa: Isa, src: &[Self], dst: &mut [f32]) -> bool {
        match isa {
            Isa::Scalar => Self::dequantize_row_scalar(src, dst),
            Isa::Avx2 => {
                let Some(kernel) = Self::DEQUANTIZE_AVX2.filter(|_| isa.available()) else {
                    return false;
                };
                // SAFETY: `isa.available()` was checked: this CPU has AVX2,
                // FMA and F16C.
                unsafe { kernel(src, dst) }
            }
        }
        true
    }

    /// Dequantize `src` into `dst` (`src.len() * BLCK_SIZE` values), using
    /// the fastest path this CPU supports ([`Isa::best`]).
    #[inline]
    fn dequantize_row(src: &[Self], dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = Self::DEQUANTIZE_AVX2 {
            if simd::use_avx2() {
                // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C
                // were detected on this CPU.
                return unsafe { kernel(src, dst) };
            }
        }
        Self::dequantize_row_scalar(src, dst)
    }

    /// Quantize one row of activations (`dst.len() * BLCK_SIZE` values) the
    /// way ggml's x86 CPU backend feeds its dot products (`from_float` of
    /// the type traits): the reference quantizer, except for Q8_0 and Q8_1
    /// (see `legacy::q8`). The scalar reference ([`Isa::Scalar`]).
    fn quantize_activations_scalar(src: &[f32], dst: &mut [Self]) {
        Self::quantize_row(src, dst, None)
    }

    /// Quantize activations on the path `isa`; `false` (and `dst`
    /// untouched) when this type has no such quantizer for `isa` or this
    /// CPU lacks it.
    fn quantize_activations_on(isa: Isa, src: &[f32], dst: &mut [Self]) -> bool {
        match isa {
            Isa::Scalar => Self::quantize_activations_scalar(src, dst),
            Isa::Avx2 => {
                let Some(kernel) = Self::QUANTIZE_ACTIVATIONS_AVX2.filter(|_| isa.available()) else {
                    return false;
                };
                // SAFETY: `isa.available()` was checked: this CPU has AVX2,
                // FMA and F16C.
                unsafe { kernel(src, dst) }
            }
        }
        true
    }

    /// Quantize one row of activations with the fastest path this CPU
    /// supports ([`Isa::best`]); the bytes of
    /// [`GgmlBlock::quantize_activations_scalar`].
    #[inline]
    fn quantize_activations(src: &[f32], dst: &mut [Self]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = Self::QUANTIZE_ACTIVATIONS_AVX2 {
            if simd::use_avx2() {
                // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C
                // were detected on this CPU.
                return unsafe { kernel(src, dst) };
            }
        }
        Self::quantize_activations_scalar(src, dst)
    }

    /// The scalar reference dot product of a weight row with an activation
    /// row of equal length ([`Isa::Scalar`]); every SIMD kernel is tested
    /// against it.
    fn vec_dot_scalar(x: &[Self], y: &[Self::VecDot]) -> f32;

    /// The dot product on the path `isa`, or `None` when this type has no
    /// kernel for `isa` or this CPU lacks it.
    fn vec_dot_on(isa: Isa, x: &[Self], y: &[Self::VecDot]) -> Option<f32> {
        match isa {
            Isa::Scalar => Some(Self::vec_dot_scalar(x, y)),
            Isa::Avx2 => {
                let kernel = Self::VEC_DOT_AVX2.filter(|_| isa.available())?;
                // SAFETY: `isa.available()` was checked: this CPU has AVX2,
                // FMA and F16C.
                Some(unsafe { kernel(x, y) })
            }
        }
    }

    /// The dot product of a weight row with one of the activation rows of a
    /// product of `n_tokens` tokens, as ggml computes it there:
    /// [`GgmlBlock::BATCH_DOT`]'s arithmetic from [`GgmlBlock::BATCH_FROM`]
    /// tokens on where the type has one, else [`GgmlBlock::vec_dot`].
    #[inline]
    fn batch_dot(n_tokens: usize, x: &[Self], y: &[Self::VecDot]) -> f32 {
        let Some(scalar) = Self::BATCH_DOT.filter(|_| n_tokens >= Self::BATCH_FROM) else {
            return Self::vec_dot(x, y);
        };
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = Self::BATCH_DOT_AVX2 {
            if simd::use_avx2() {
                // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C
                // were detected on this CPU.
                return unsafe { kernel(x, y) };
            }
        }
        scalar(x, y)
    }

    /// Dot product of a weight row with an activation row of equal length,
    /// using the fastest path this CPU supports ([`Isa::best`]).
    #[inline]
    fn vec_dot(x: &[Self], y: &[Self::VecDot]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = Self::VEC_DOT_VNNI {
            if simd::use_avx512_vnni() {
                // SAFETY: `use_avx512_vnni` is true only when AVX-512
                // F/BW/VL/VNNI and the AVX2 set were detected on this CPU.
                return unsafe { kernel(x, y) };
            }
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = Self::VEC_DOT_AVX2 {
            if simd::use_avx2() {
                // SAFETY: `use_avx2` is true only when AVX2, FMA and F16C
                // were detected on this CPU.
                return unsafe { kernel(x, y) };
            }
        }
        Self::vec_dot_scalar(x, y)
    }
}

fn check_len(ty: GgmlType, n: usize, bytes: usize) -> Result<(), QuantError> {
    let block = ty.block_size();
    if !n.is_multiple_of(block) {
        return Err(QuantError::RowNotBlockMultiple { ty, n, block });
    }
    let expected = n / block * ty.type_size();
    if bytes != expected {
        return Err(QuantError::BadLength { ty, got: bytes, expected });
    }
    Ok(())
}

/// View bytes as blocks, copying only when the bytes are misaligned (the
/// crate's one byte-to-block cast; lengths are the caller's to check).
pub(crate) fn blocks_of<B: Pod>(bytes: &[u8]) -> std::borrow::Cow<'_, [B]> {
    match bytemuck::try_cast_slice::<u8, B>(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(bytemuck::pod_collect_to_vec::<u8, B>(bytes)),
    }
}

fn quantize_into<B: GgmlBlock>(src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) {
    match bytemuck::try_cast_slice_mut::<u8, B>(dst) {
        Ok(d) => B::quantize_row(src, d, imatrix),
        Err(_) => {
            let mut tmp = vec![B::zeroed(); src.len() / B::BLCK_SIZE];
            B::quantize_row(src, &mut tmp, imatrix);
            dst.copy_from_slice(bytemuck::cast_slice(&tmp));
        }
    }
}

/// Quantize one row of `src.len()` values of type `ty` into `dst`.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8], imatrix: Option<&[f32]>) -> Result<(), QuantError> {
    check_len(ty, src.len(), dst.len())?;
    if let Some(w) = imatrix {
        if w.len() != src.len() {
            return Err(QuantError::BadImatrix { got: w.len(), expected: src.len() });
        }
    }
    if imatrix.is_none() && caps(ty).requires_imatrix {
        return Err(QuantError::NeedsImatrix { ty });
    }
    with_block_type!(ty, B => quantize_into::<B>(src, dst, imatrix))
        .ok_or(QuantError::Unsupported { ty, op: "quantization" })
}

/// Quantize one row of activations (`src.len()` values) to the activation
/// type `ty` on the path `isa` (tests compare the paths). Errors when the
/// lengths are wrong, `ty` is no activation type with a quantizer for
/// `isa`, or this CPU lacks `isa`.
pub fn quantize_activations_with(isa: Isa, ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    if !isa.available() {
        return Err(QuantError::Unsupported { ty, op: "activation quantization on this CPU's instruction set" });
    }
    check_len(ty, src.len(), dst.len())?;
    if !caps(ty).is_activation() {
        return Err(QuantError::Unsupported { ty, op: "activation quantization" });
    }
    fn run<B: GgmlBlock>(isa: Isa, src: &[f32], dst: &mut [u8]) -> bool {
        let mut tmp = vec![B::zeroed(); src.len() / B::BLCK_SIZE];
        let ok = B::quantize_activations_on(isa, src, &mut tmp);
        if ok {
            dst.copy_from_slice(bytemuck::cast_slice(&tmp));
        }
        ok
    }
    with_block_type!(ty, B => run::<B>(isa, src, dst))
        .filter(|&ok| ok)
        .map(|_| ())
        .ok_or(QuantError::Unsupported { ty, op: "activation quantization on this instruction set" })
}

/// Dequantize bytes of type `ty` into `dst` (`dst.len()` values).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_len(ty, dst.len(), src.len())?;
    with_block_type!(ty, B => B::dequantize_row(&blocks_of::<B>(src), dst))
        .ok_or(QuantError::Unsupported { ty, op: "dequantization" })
}

/// Dequantize bytes of type `ty` into `dst` on the path `isa`. Errors when
/// the lengths are wrong, the type has no dequantizer for `isa`, or this CPU
/// lacks `isa`.
pub fn dequantize_row_with(isa: Isa, ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    if !isa.available() {
        return Err(QuantError::Unsupported { ty, op: "dequantization on this CPU's instruction set" });
    }
    check_len(ty, dst.len(), src.len())?;
    with_block_type!(ty, B => B::dequantize_row_on(isa, &blocks_of::<B>(src), dst))
        .filter(|&ok| ok)
        .map(|_| ())
        .ok_or(QuantError::Unsupported { ty, op: "dequantization on this instruction set" })
}

/// Dot product of `n` weights of type `ty` with `n` activations of type
/// `vec_dot_type(ty)`, on the fastest path this CPU has for `ty`.
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> Result<f32, QuantError> {
    check_len(ty, n, w.len())?;
    let aty = vec_dot_type(ty).ok_or(QuantError::Unsupported { ty, op: "vec_dot" })?;
    check_len(aty, n, act.len())?;
    with_block_type!(ty, B => B::vec_dot(&blocks_of::<B>(w), &blocks_of::<<B as GgmlBlock>::VecDot>(act)))
        .ok_or(QuantError::Unsupported { ty, op: "vec_dot" })
}

/// The dot product of `n` weights of type `ty` with one of the activation
/// rows of a product of `n_tokens` tokens, as ggml computes it there
/// ([`GgmlBlock::batch_dot`]): the tiled-GEMM arithmetic for k-quants from
/// [`BATCH_MIN_TOKENS`] tokens on, else [`vec_dot`].
pub fn batch_dot(ty: GgmlType, n_tokens: usize, n: usize, w: &[u8], act: &[u8]) -> Result<f32, QuantError> {
    check_len(ty, n, w.len())?;
    let aty = vec_dot_type(ty).ok_or(QuantError::Unsupported { ty, op: "vec_dot" })?;
    check_len(aty, n, act.len())?;
    with_block_type!(ty, B => B::batch_dot(n_tokens, &blocks_of::<B>(w), &blocks_of::<<B as GgmlBlock>::VecDot>(act)))
        .ok_or(QuantError::Unsupported { ty, op: "vec_dot" })
}

/// The fewest tokens of a product for which ggml computes `ty` with its
/// batch arithmetic ([`GgmlBlock::BATCH_DOT`]); `None` when it always uses
/// `vec_dot`.
pub fn batch_from(ty: GgmlType) -> Option<usize> {
    with_block_type!(ty, B => B::BATCH_DOT.map(|_| B::BATCH_FROM)).flatten()
}

/// [`batch_dot`] of a batch large enough for the batch arithmetic
/// ([`batch_from`]) on the path `isa`: `Ok(None)` for a type whose batches
/// use `vec_dot`.
pub fn batch_dot_with(isa: Isa, ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> Result<Option<f32>, QuantError> {
    if !isa.available() {
        return Err(QuantError::Unsupported { ty, op: "batch dot on this CPU's instruction set" });
    }
    let aty = vec_dot_type(ty).ok_or(QuantError::Unsupported { ty, op: "vec_dot" })?;
    check_len(ty, n, w.len())?;
    check_len(aty, n, act.len())?;
    with_block_type!(ty, B => {
        let (x, y) = (blocks_of::<B>(w), blocks_of::<<B as GgmlBlock>::VecDot>(act));
        match (isa, B::BATCH_DOT) {
            (_, None) => Ok(None),
            (Isa::Scalar, Some(f)) => Ok(Some(f(&x, &y))),
            (Isa::Avx2, Some(_)) => match B::BATCH_DOT_AVX2 {
                // SAFETY: `isa.available()` was checked: AVX2, FMA and F16C.
                Some(k) => Ok(Some(unsafe { k(&x, &y) })),
                None => Err(QuantError::Unsupported { ty, op: "batch dot on this instruction set" }),
            },
        }
    })
    .ok_or(QuantError::Unsupported { ty, op: "vec_dot" })?
}

/// Dot product of `n` weights of type `ty` with `n` activations of its
/// `vec_dot_type`, on the path `isa`. Errors when the lengths are wrong,
/// the type has no dot product or no kernel for `isa`, or this CPU lacks
/// `isa`.
pub fn vec_dot_with(isa: Isa, ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> Result<f32, QuantError> {
    if !isa.available() {
        return Err(QuantError::Unsupported { ty, op: "vec_dot on this CPU's instruction set" });
    }
    let aty = vec_dot_type(ty).ok_or(QuantError::Unsupported { ty, op: "vec_dot" })?;
    check_len(ty, n, w.len())?;
    check_len(aty, n, act.len())?;
    with_block_type!(ty, B => B::vec_dot_on(isa, &blocks_of::<B>(w), &blocks_of::<<B as GgmlBlock>::VecDot>(act)))
        .flatten()
        .ok_or(QuantError::Unsupported { ty, op: "vec_dot on this instruction set" })
}

/// The AVX-512 VNNI dot product ([`GgmlBlock::VEC_DOT_VNNI`]) of a weight
/// row with an activation row: `Ok(None)` when `ty` has none or it may not
/// run here (no AVX-512 VNNI, or `QUANTMIX_SIMD=avx2`). For the tests that
/// compare it with the AVX2 kernel.
pub fn vec_dot_vnni_with(ty: GgmlType, n: usize, w: &[u8], act: &[u8]) -> Result<Option<f32>, QuantError> {
    fn on<B: GgmlBlock>(x: &[B], y: &[B::VecDot]) -> Option<f32> {
        #[cfg(target_arch = "x86_64")]
        if let Some(kernel) = B::VEC_DOT_VNNI {
            if simd::use_avx512_vnni() {
                // SAFETY: `use_avx512_vnni` is true only when AVX-512
                // F/BW/VL/VNNI and the AVX2 set were detected on this CPU.
                return Some(unsafe { kernel(x, y) });
            }
        }
        let _ = (x, y);
        None
    }
    let aty = vec_dot_type(ty).ok_or(QuantError::Unsupported { ty, op: "vec_dot" })?;
    check_len(ty, n, w.len())?;
    check_len(aty, n, act.len())?;
    Ok(with_block_type!(ty, B => on(&blocks_of::<B>(w), &blocks_of::<<B as GgmlBlock>::VecDot>(act))).flatten())
}

/// Quantize a whole tensor of rows of `n_per_row` values, in parallel over
/// rows. The result does not depend on the number of threads: every row is
/// quantized independently, exactly as the scalar path does it.
/// `imatrix`, when given, has `n_per_row` values (one per column).
pub fn quantize_rows(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<(), QuantError> {
    if n_per_row == 0 || !src.len().is_multiple_of(n_per_row) {
        return Err(QuantError::RowNotBlockMultiple { ty, n: n_per_row, block: ty.block_size() });
    }
    let row_bytes = ty.row_bytes(n_per_row as u64).ok_or(QuantError::RowNotBlockMultiple {
        ty,
        n: n_per_row,
        block: ty.block_size(),
    })? as usize;
    let rows = src.len() / n_per_row;
    if dst.len() != rows * row_bytes {
        return Err(QuantError::BadLength { ty, got: dst.len(), expected: rows * row_bytes });
    }
    if !caps(ty).quantize {
        return Err(QuantError::Unsupported { ty, op: "quantization" });
    }
    if imatrix.is_none() && caps(ty).requires_imatrix {
        return Err(QuantError::NeedsImatrix { ty });
    }
    if let Some(w) = imatrix {
        if w.len() != n_per_row {
            return Err(QuantError::BadImatrix { got: w.len(), expected: n_per_row });
        }
    }
    dst.par_chunks_mut(row_bytes).zip(src.par_chunks(n_per_row)).try_for_each(|(d, s)| quantize_row(ty, s, d, imatrix))
}

/// Dequantize a whole tensor (any number of rows) in parallel.
pub fn dequantize_rows(ty: GgmlType, src: &[u8], n_per_row: usize, dst: &mut [f32]) -> Result<(), QuantError> {
    let row_bytes = ty.row_bytes(n_per_row as u64).ok_or(QuantError::RowNotBlockMultiple {
        ty,
        n: n_per_row,
        block: ty.block_size(),
    })? as usize;
    if n_per_row == 0 || !dst.len().is_multiple_of(n_per_row) || src.len() != dst.len() / n_per_row * row_bytes {
        return Err(QuantError::BadLength { ty, got: src.len(), expected: dst.len() / n_per_row.max(1) * row_bytes });
    }
    dst.par_chunks_mut(n_per_row).zip(src.par_chunks(row_bytes)).try_for_each(|(d, s)| dequantize_row(ty, s, d))
}
