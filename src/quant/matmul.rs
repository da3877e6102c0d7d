//! Matrix products of a ggml weight matrix with f32 activations, the way
//! ggml's CPU backend computes `mul_mat` (built for AVX2, weights not
//! repacked): the activations are quantized once to the weight type's
//! `vec_dot_type`, then every output is one [`GgmlBlock::vec_dot`] of a
//! weight row with an activation row — except for k-quant and IQ4_XS
//! weights in products of [`super::BATCH_MIN_TOKENS`] or more tokens, which
//! ggml computes with its tiled GEMM, and IQ4_NL weights in products of 2 or
//! more, which it gives to llamafile's tinyBLAS, each with its own rounding
//! ([`GgmlBlock::BATCH_DOT`], [`GgmlBlock::batch_dot`]). This is
//! the one matrix product of the crate: the model's forward pass (and so
//! sensitivity and imatrix collection) and the benchmarks run it.
//!
//! Layouts follow ggml: the weight is `rows` rows of `row_len` values
//! (`ne0 = row_len`, `ne1 = rows`), the activations are `n_tokens` rows of
//! `row_len` f32, and the output is `n_tokens` rows of `rows` f32:
//! `out[t·rows + r] = Σ_k W[r][k] · x[t][k]`.
//!
//! Work is split into tiles of weight rows × tokens (for one token, runs of
//! weight rows), run in parallel with rayon. Each output is computed by
//! exactly one dot product whatever the tiling, so the result does not
//! depend on the number of threads.
//!
//! Activations are quantized by [`GgmlBlock::quantize_activations`], what
//! ggml's x86 CPU backend (built with AVX/AVX2, as llama.cpp ships it)
//! feeds its dot products:
//! - Q8_0 / Q8_1 (for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights): scale
//!   `d = amax/127`, levels `round_half_even(x · (127/amax))`; Q8_1 also
//!   stores `s = d · Σq` (see `quant::legacy::q8`).
//! - Q8_K (k-quants): ggml's `quantize_row_q8_K_ref`, which the x86 backend
//!   uses as is.
//! - F16 / BF16 / F32 (float weights): plain conversion.
//!
//! ```
//! use quantmix::gguf::GgmlType;
//! use quantmix::quant::matmul::{matmul, Weights};
//! # fn main() -> Result<(), quantmix::quant::QuantError> {
//! let (rows, row_len, n_tokens) = (4, 64, 3);
//! let w_f32: Vec<f32> = (0..rows * row_len).map(|i| (i % 7) as f32 - 3.0).collect();
//! let mut w_q8 = vec![0u8; rows * GgmlType::Q8_0.row_bytes(row_len as u64).unwrap() as usize];
//! quantmix::quant::quantize_rows(GgmlType::Q8_0, &w_f32, row_len, None, &mut w_q8)?;
//! let w = Weights::new(GgmlType::Q8_0, rows, row_len, &w_q8)?;
//! let x: Vec<f32> = (0..n_tokens * row_len).map(|i| (i % 5) as f32 * 0.25).collect();
//! let mut out = vec![0f32; n_tokens * rows];
//! matmul(&w, &x, &mut out)?;
//! # Ok(()) }
//! ```

use rayon::prelude::*;

use super::{blocks_of, caps, vec_dot_type, GemmOut, GgmlBlock, GgmlType, QuantError};
use crate::with_block_type;

/// A weight matrix: `rows` rows of `row_len` values of type `ty`, stored
/// row after row as ggml does (`data.len() == rows · row_bytes`).
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    ty: GgmlType,
    rows: usize,
    row_len: usize,
    data: &'a [u8],
}

impl<'a> Weights<'a> {
    /// Check the shape against the data and that `ty` has a dot product.
    pub fn new(ty: GgmlType, rows: usize, row_len: usize, data: &'a [u8]) -> Result<Self, QuantError> {
        if !caps(ty).vec_dot {
            return Err(QuantError::Unsupported { ty, op: "matmul" });
        }
        let block = ty.block_size();
        if row_len == 0 || !row_len.is_multiple_of(block) {
            return Err(QuantError::RowNotBlockMultiple { ty, n: row_len, block });
        }
        let expected = rows * (row_len / block) * ty.type_size();
        if data.len() != expected {
            return Err(QuantError::BadLength { ty, got: data.len(), expected });
        }
        Ok(Weights { ty, rows, row_len, data })
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn row_len(&self) -> usize {
        self.row_len
    }
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_len / self.ty.block_size() * self.ty.type_size()
    }
}

/// Activations quantized to a `vec_dot_type`, reusable across several
/// products with weights of the same activation type (e.g. the Q, K and V
/// projections of one layer). The buffer is kept between calls to
/// [`Activations::quantize`].
#[derive(Clone, Debug, Default)]
pub struct Activations {
    ty: Option<GgmlType>,
    n_tokens: usize,
    row_len: usize,
    /// u32 storage keeps every block type (alignment ≤ 4) aligned.
    buf: Vec<u32>,
}

impl Activations {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantize `x` (`n_tokens × row_len` f32, token after token) to `ty`
    /// (the `vec_dot_type` of the weights it will meet), rows in parallel.
    pub fn quantize(&mut self, ty: GgmlType, x: &[f32], row_len: usize) -> Result<(), QuantError> {
        let block = ty.block_size();
        if row_len == 0 || !row_len.is_multiple_of(block) {
            return Err(QuantError::RowNotBlockMultiple { ty, n: row_len, block });
        }
        if !x.len().is_multiple_of(row_len) {
            return Err(QuantError::BadLength {
                ty: GgmlType::F32,
                got: x.len(),
                expected: x.len() / row_len * row_len,
            });
        }
        if !caps(ty).is_activation() {
            return Err(QuantError::Unsupported { ty, op: "activation quantization" });
        }
        let n_tokens = x.len() / row_len;
        let row_bytes = row_len / block * ty.type_size();
        self.buf.clear();
        self.buf.resize((n_tokens * row_bytes).div_ceil(4), 0);
        let bytes = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut self.buf)[..n_tokens * row_bytes];
        with_block_type!(ty, A => quantize_activation_rows::<A>(x, row_len, bytemuck::cast_slice_mut(bytes)));
        self.ty = Some(ty);
        self.n_tokens = n_tokens;
        self.row_len = row_len;
        Ok(())
    }

    /// The activation type, once quantized.
    pub fn ty(&self) -> Option<GgmlType> {
        self.ty
    }
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }
    pub fn row_len(&self) -> usize {
        self.row_len
    }
    /// All quantized rows, token after token.
    pub fn bytes(&self) -> &[u8] {
        let n = match self.ty {
            Some(ty) => self.n_tokens * (self.row_len / ty.block_size() * ty.type_size()),
            None => 0,
        };
        &bytemuck::cast_slice::<u32, u8>(&self.buf)[..n]
    }
}

/// Quantize `x` (rows of `row_len` values) into `dst`, rows in parallel
/// when there are several.
fn quantize_activation_rows<A: GgmlBlock>(x: &[f32], row_len: usize, dst: &mut [A]) {
    if x.len() == row_len {
        A::quantize_activations(x, dst);
    } else {
        let blocks_per_row = row_len / A::BLCK_SIZE;
        dst.par_chunks_mut(blocks_per_row).zip(x.par_chunks(row_len)).for_each(|(d, s)| A::quantize_activations(s, d));
    }
}

/// `out = W · x`: `x` holds `n_tokens × w.row_len()` f32 (token after
/// token), `out` receives `n_tokens × w.rows()` f32. Quantizes the
/// activations to the weight type's `vec_dot_type` first (into a temporary;
/// use [`Activations`] + [`matmul_quantized`] to reuse the buffer).
pub fn matmul(w: &Weights, x: &[f32], out: &mut [f32]) -> Result<(), QuantError> {
    let mut acts = Activations::new();
    let aty = vec_dot_type(w.ty).ok_or(QuantError::Unsupported { ty: w.ty, op: "matmul" })?;
    acts.quantize(aty, x, w.row_len)?;
    matmul_quantized(w, &acts, out)
}

/// `out = W · x` for one token: `x` has `w.row_len()` values, `out`
/// `w.rows()`.
pub fn matvec(w: &Weights, x: &[f32], out: &mut [f32]) -> Result<(), QuantError> {
    if x.len() != w.row_len {
        return Err(QuantError::BadLength { ty: GgmlType::F32, got: x.len(), expected: w.row_len });
    }
    matmul(w, x, out)
}

/// `out = W · x` with activations already quantized to the weight type's
/// `vec_dot_type`; `out` receives `acts.n_tokens() × w.rows()` f32.
pub fn matmul_quantized(w: &Weights, acts: &Activations, out: &mut [f32]) -> Result<(), QuantError> {
    let aty = vec_dot_type(w.ty).ok_or(QuantError::Unsupported { ty: w.ty, op: "matmul" })?;
    if acts.ty != Some(aty) {
        return Err(QuantError::Unsupported { ty: acts.ty.unwrap_or(aty), op: "activations for this weight type" });
    }
    if acts.row_len != w.row_len {
        return Err(QuantError::BadLength { ty: aty, got: acts.row_len, expected: w.row_len });
    }
    if out.len() != acts.n_tokens * w.rows {
        return Err(QuantError::BadLength { ty: GgmlType::F32, got: out.len(), expected: acts.n_tokens * w.rows });
    }
    with_block_type!(w.ty, B => run::<B>(w, acts, out, Kernels::Best))
        .ok_or(QuantError::Unsupported { ty: w.ty, op: "matmul" })
}

/// [`matmul`] with the AVX2 tile kernels where a type has one, not the
/// AVX-512 ones: `Ok(false)` (and `out` untouched) when this CPU lacks
/// AVX2 or the type has no AVX2 tile kernel. For the tests that compare
/// those kernels with the batch dot product on CPUs that would not use
/// them.
pub fn matmul_avx2_tiles(w: &Weights, x: &[f32], out: &mut [f32]) -> Result<bool, QuantError> {
    if !super::simd::use_avx2() || !with_block_type!(w.ty, B => B::GEMM_AVX2.is_some()).unwrap_or(false) {
        return Ok(false);
    }
    let mut acts = Activations::new();
    let aty = vec_dot_type(w.ty).ok_or(QuantError::Unsupported { ty: w.ty, op: "matmul" })?;
    acts.quantize(aty, x, w.row_len)?;
    if out.len() != acts.n_tokens * w.rows {
        return Err(QuantError::BadLength { ty: GgmlType::F32, got: out.len(), expected: acts.n_tokens * w.rows });
    }
    with_block_type!(w.ty, B => run::<B>(w, &acts, out, Kernels::Avx2))
        .ok_or(QuantError::Unsupported { ty: w.ty, op: "matmul" })?;
    Ok(true)
}

/// Bytes of weight rows per tile of the per-element path: a tile's rows
/// stay in L2 while every token of the tile passes over them (the tile
/// kernels have their own, [`GgmlBlock::GEMM_TILE_BYTES`]).
const L2_TILE_BYTES: usize = 96 * 1024;
/// Tokens per tile of the per-element path (the tile kernels have their
/// own, [`GgmlBlock::GEMM_TILE_TOKENS`]).
const TILE_TOKENS: usize = 64;
/// Runs of weight rows per thread for one token.
const ROW_RUNS_PER_THREAD: usize = 8;

/// How far ahead of the row being multiplied the one-token product asks
/// for weight lines. One core's own loads keep only a few lines in flight,
/// which limits a stream from memory to latency × those lines; requests
/// issued this far ahead keep more in flight. Streaming 150 MB of Q8_0 rows
/// on the 2-core Xeon of the README's speed table: 7.4 GB/s per core without,
/// 12–13.5 GB/s with requests 2–8 KiB ahead (the hardware prefetchers alone
/// do not reach that); SmolLM2 Q8_0 generation went from 50 to 80–90 tokens/s
/// at one thread, best at 4–6 KiB, and a model that stays in the cache lost
/// nothing measurable.
const PREFETCH_AHEAD: usize = 4 * 1024;
/// Bytes per cache line (x86-64 and most others).
const CACHE_LINE: usize = 64;

/// The weight bytes requested so far by one run of the one-token product.
struct Ahead<'a> {
    data: &'a [u8],
    /// Offset of the next byte not yet requested.
    next: usize,
}

impl Ahead<'_> {
    /// Requests the lines up to byte `end` (clamped to the matrix).
    #[inline(always)]
    fn up_to(&mut self, end: usize) {
        let end = end.min(self.data.len());
        while self.next < end {
            super::simd::prefetch_line(self.data[self.next..].as_ptr());
            self.next += CACHE_LINE;
        }
    }
}

/// A raw output pointer shared by the tile tasks, which write disjoint
/// elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the pointer is only used to write elements that no other task
// touches (tiles partition the output), while `out` is mutably borrowed for
// the whole parallel loop.
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer to element `i` (a method, so that closures capture the
    /// whole `Send` wrapper rather than the raw pointer field).
    #[inline(always)]
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Which tile kernels a product may use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kernels {
    /// The fastest this CPU runs.
    Best,
    /// Only the AVX2 ones (for the tests that compare them on CPUs that
    /// have faster ones).
    Avx2,
}

fn run<B: GgmlBlock>(w: &Weights, acts: &Activations, out: &mut [f32], kernels: Kernels) {
    let wb = blocks_of::<B>(w.data);
    let ab = blocks_of::<B::VecDot>(acts.bytes());
    let bpr = w.row_len / B::BLCK_SIZE;
    // Activation blocks per row: more than `bpr` where a weight block spans
    // several activation blocks (Q1_0: four Q8_0 blocks, Q2_0: two).
    let apr = w.row_len / <B::VecDot as GgmlBlock>::BLCK_SIZE;
    let (rows, n_tokens) = (w.rows, acts.n_tokens);
    if rows == 0 || n_tokens == 0 {
        return;
    }
    if n_tokens == 1 {
        // One token (generation): runs of whole rows, several per thread.
        // With the weights streaming from memory this measured ~5% faster
        // than the tiles below, which win when several tokens share a tile.
        // Each row's weights are read once, so the product waits on memory:
        // the lines PREFETCH_AHEAD bytes past the current row are requested
        // before it is computed (see `Ahead`).
        let a = &ab[..apr];
        let row_bytes = w.row_bytes();
        let rows_per_task = rows.div_ceil(rayon::current_num_threads().max(1) * ROW_RUNS_PER_THREAD).clamp(1, 256);
        out.par_chunks_mut(rows_per_task).enumerate().for_each(|(run, o)| {
            let r0 = run * rows_per_task;
            let mut ahead = Ahead { data: w.data, next: r0 * row_bytes };
            for (k, v) in o.iter_mut().enumerate() {
                let r = r0 + k;
                ahead.up_to((r + 1) * row_bytes + PREFETCH_AHEAD);
                *v = B::vec_dot(&wb[r * bpr..(r + 1) * bpr], a);
            }
        });
        return;
    }
    // A type with a batch arithmetic of its own (k-quants and IQ4_XS:
    // ggml's tiled GEMM, IQ4_NL: tinyBLAS) uses it from B::BATCH_FROM
    // tokens on, `vec_dot` below; its tile kernels compute the batch
    // arithmetic.
    let batch = B::BATCH_DOT.is_some() && n_tokens >= B::BATCH_FROM;
    #[cfg(target_arch = "x86_64")]
    let tile_kernel = match kernels {
        Kernels::Best => B::GEMM_VNNI
            .filter(|_| super::simd::use_avx512_vnni())
            .or(B::GEMM_AVX512.filter(|_| super::simd::use_avx512()))
            .or(B::GEMM_AVX2.filter(|_| super::simd::use_avx2())),
        Kernels::Avx2 => B::GEMM_AVX2.filter(|_| super::simd::use_avx2()),
    }
    .filter(|_| batch || B::BATCH_DOT.is_none());
    #[cfg(not(target_arch = "x86_64"))]
    let _ = kernels;
    #[cfg(target_arch = "x86_64")]
    if let Some(kernel) = tile_kernel {
        // Every type with a tile kernel pairs one activation block with each weight block.
        debug_assert_eq!(apr, bpr);
        let (tile_bytes, tile_tokens) = (B::GEMM_TILE_BYTES, B::GEMM_TILE_TOKENS);
        return run_tiles(w.rows, w.row_bytes(), (tile_bytes, tile_tokens), n_tokens, out, |tile| {
            let (r0, r1, t0, t1) = tile.bounds();
            let o = GemmOut { ptr: tile.out.at(t0 * tile.rows + r0), stride: tile.rows };
            // SAFETY: `use_avx2` holds only where AVX2, FMA and F16C were
            // detected, `use_avx512` only where AVX-512 F/BW/VL were too,
            // `use_avx512_vnni` only where VNNI was too; `o` addresses this tile's outputs (t0..t1 × r0..r1 of
            // `out`, `n_tokens · rows` long), which no other task touches
            // while `out` is borrowed for the parallel loop.
            unsafe { kernel(&wb[r0 * bpr..r1 * bpr], &ab[t0 * bpr..t1 * bpr], bpr, o) };
        });
    }
    run_tiles(w.rows, w.row_bytes(), (L2_TILE_BYTES, TILE_TOKENS), n_tokens, out, |tile| {
        let (r0, r1, t0, t1) = tile.bounds();
        for t in t0..t1 {
            let a = &ab[t * apr..(t + 1) * apr];
            for r in r0..r1 {
                tile.set(t, r, B::batch_dot(n_tokens, &wb[r * bpr..(r + 1) * bpr], a));
            }
        }
    });
}

/// One tile of the output: weight rows `r0..r1` × tokens `t0..t1`, which
/// only this task writes.
struct Tile {
    out: OutPtr,
    rows: usize,
    r: (usize, usize),
    t: (usize, usize),
}

impl Tile {
    /// `(r0, r1, t0, t1)`.
    fn bounds(&self) -> (usize, usize, usize, usize) {
        (self.r.0, self.r.1, self.t.0, self.t.1)
    }

    /// `out[t · rows + r] = v` for `(t, r)` in the tile.
    #[inline(always)]
    fn set(&self, t: usize, r: usize, v: f32) {
        assert!((self.t.0..self.t.1).contains(&t) && (self.r.0..self.r.1).contains(&r));
        // SAFETY: `(t, r)` is in this tile (checked above), so `t < n_tokens`
        // and `r < rows` and the index is in `out` (length `n_tokens · rows`,
        // checked by the caller); tiles partition the output, so no other
        // task writes it, and `out` outlives the parallel loop.
        unsafe { *self.out.at(t * self.rows + r) = v };
    }
}

/// Split the product into tiles of weight rows × tokens, at most
/// `tile_bytes` of weight rows each (96 KiB keeps a tile's rows in L2 while
/// every token of the tile passes over them), run in parallel; `tile_fn`
/// computes one tile and writes it with [`Tile::set`].
fn run_tiles<F>(
    rows: usize,
    row_bytes: usize,
    (tile_bytes, tile_tokens): (usize, usize),
    n_tokens: usize,
    out: &mut [f32],
    tile_fn: F,
) where
    F: Fn(&Tile) + Sync,
{
    let tile_tokens = n_tokens.min(tile_tokens);
    let token_tiles = n_tokens.div_ceil(tile_tokens);
    // Enough tiles to keep every thread busy (several per thread, for
    // balance), rows per tile bounded by the L2 budget.
    let want_tiles = 4 * rayon::current_num_threads();
    let by_cache = (tile_bytes / row_bytes.max(1)).max(1);
    let by_balance = rows.div_ceil(want_tiles.div_ceil(token_tiles)).max(1);
    let tile_rows = by_cache.min(by_balance).min(rows);
    let row_tiles = rows.div_ceil(tile_rows);
    let ptr = OutPtr(out.as_mut_ptr());
    (0..row_tiles * token_tiles).into_par_iter().for_each(|tile| {
        let (rt, tt) = (tile % row_tiles, tile / row_tiles);
        let r = (rt * tile_rows, ((rt + 1) * tile_rows).min(rows));
        let t = (tt * tile_tokens, ((tt + 1) * tile_tokens).min(n_tokens));
        tile_fn(&Tile { out: ptr, rows, r, t });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ty: GgmlType, rows: usize, cols: usize, n: usize) {
        let src: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let x: Vec<f32> = (0..n * cols).map(|i| ((i * 104729) % 997) as f32 / 498.0 - 1.0).collect();
        let rb = ty.row_bytes(cols as u64).unwrap() as usize;
        let mut w = vec![0u8; rows * rb];
        crate::quant::quantize_rows(ty, &src, cols, None, &mut w).unwrap();
        let view = Weights::new(ty, rows, cols, &w).unwrap();
        let mut out = vec![0f32; n * rows];
        assert!(matmul(&view, &x, &mut out).is_ok());
        // Reference: the byte-level API, one dot product at a time (ggml's
        // batch arithmetic for k-quants from 8 tokens on).
        let aty = crate::quant::vec_dot_type(ty).unwrap();
        let arb = aty.row_bytes(cols as u64).unwrap() as usize;
        for t in 0..n {
            let a = with_block_type!(aty, A => {
                let mut blocks = vec![<A as bytemuck::Zeroable>::zeroed(); cols / A::BLCK_SIZE];
                A::quantize_activations(&x[t * cols..(t + 1) * cols], &mut blocks);
                bytemuck::cast_slice::<A, u8>(&blocks).to_vec()
            })
            .unwrap();
            assert_eq!(a.len(), arb);
            for r in 0..rows {
                let want = crate::quant::batch_dot(ty, n, cols, &w[r * rb..(r + 1) * rb], &a).unwrap();
                assert_eq!(out[t * rows + r], want, "{ty} t={t} r={r}");
            }
        }
    }

    #[test]
    fn matches_byte_level_batch_dot() {
        for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::F16, GgmlType::F32] {
            check(ty, 37, 256, 1);
            check(ty, 37, 256, 21);
        }
    }
}
