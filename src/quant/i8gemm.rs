//! The token-lane int8 GEMM: AVX-512 VNNI products of weight types whose
//! batch arithmetic ([`crate::quant::GgmlBlock::BATCH_DOT`], ggml's tiled
//! GEMM) is, per super-block of 256 values, one exact integer
//! `s = Σ_j ls(j)·w_j·q_j` — weight levels `w_j` (bytes), a scale `ls` per
//! 16 or 32 values (or none, where the levels already carry it), the Q8_K
//! activation levels `q_j` — then `res = d_w·s`, with a minimum term
//! `res = res − dmin_w·Σ_j m_j·bsum_j` (one FMA; Q2_K, Q4_K, Q5_K), and
//! `acc = fma(res, d_a, acc)`: the k-quants, IQ4_XS and the grid i-quants
//! (IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M). Each type only
//! says how a super-block unpacks ([`vnni::Unpack`], in its family's
//! `gemm.rs`).
//!
//! The layout follows ggml's tiled micro-kernel: the 32-bit lanes of a
//! register run over **16 tokens**, not over values. A call's tokens are
//! interleaved once into groups of 16 — per 4 consecutive values one
//! 64-byte line holding those 4 levels of each token, biased to unsigned
//! (`q + 128`). Each strip of [`vnni::MR`] weight rows is unpacked once for
//! all the call's tokens into signed bytes, its scales and
//! `corr = 128·Σ ls·w` (what the bias adds). The micro-kernel then
//! broadcasts 4 bytes of a row (`vpdpbusd`'s signed operand) against a
//! token line: one instruction is 64 products, 4 per token, with no
//! horizontal sums and no packing. Per sub-block and row the 16 token sums
//! are multiplied by the scale (`vpmulld`) into `s`; the minimum term's
//! `Σ m·bsum` is one `vpdpwssd` per 32 values against the tokens' block
//! sums, interleaved the same way; per super-block `s − corr` is converted
//! and the float steps run for 16 tokens at once.
//!
//! Every product is exact (at most 4·127·255 per lane and instruction,
//! `|s| < 2³¹`), integer sums do not depend on their order, and the float
//! steps per (row, token) are the batch dot product's, so every output is
//! bit-identical to it (tests/matmul.rs).

/// Tokens per tile for this kernel ([`crate::quant::GgmlBlock::GEMM_TILE_TOKENS`]).
pub const TILE_TOKENS: usize = 256;
/// Weight bytes per tile for this kernel ([`crate::quant::GgmlBlock::GEMM_TILE_BYTES`]).
pub const TILE_BYTES: usize = 384 * 1024;

#[cfg(target_arch = "x86_64")]
pub use unpack::{Unpack, Unpacked};

/// What the kernels share: how a weight type's super-block unpacks.
#[cfg(target_arch = "x86_64")]
mod unpack {
    use crate::quant::blocks::BlockQ8K;
    use crate::quant::GgmlBlock;
    use std::arch::x86_64::*;

    /// A weight type of this kernel: how one super-block of 256 values
    /// unpacks.
    pub trait Unpack: GgmlBlock<VecDot = BlockQ8K> {
        /// Values per scale: 16 or 32, or 256 for levels already multiplied
        /// by their scales (still bytes), whose `ls` is not read.
        const SUB: usize;
        /// Whether a minimum term `dmin·Σ_j m_j·bsum_j` (per 16 values, the
        /// activations' block sums) is taken off: `res = d·s − dmin·s2`.
        const MINS: bool = false;
        /// The largest magnitude of a level [`Unpack::unpack`] writes. The
        /// AVX2 kernel ([`super::avx2`]) sums pairs of products (biased
        /// activation ≤ 255 × level) in 16 bits, which holds up to 64.
        const MAX_LEVEL: u8;

        /// Fills `u.q` (the signed levels of values `32c..32c+32` in
        /// `q[c]`, value order), `u.ls` (the scale of values
        /// `SUB·i..SUB·(i+1)` in `ls[i]`), with [`Unpack::MINS`] `u.mins`
        /// (`m_j` of values `16j..16j+16`) and `u.dmin`, and `u.d`, the
        /// factor of `res = d·s` (`s` the super-block's integer sum).
        ///
        /// # Safety
        /// AVX2, FMA and F16C on the running CPU.
        unsafe fn unpack(blk: &Self, u: &mut Unpacked);

        /// [`Unpack::unpack`]'s fields where AVX-512 VNNI is at hand (what
        /// [`super::vnni::gemm`] runs on); by default `unpack` itself.
        ///
        /// # Safety
        /// AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the running CPU.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
        unsafe fn unpack_vnni(blk: &Self, u: &mut Unpacked) {
            // SAFETY: the features are a superset of `unpack`'s.
            unsafe { Self::unpack(blk, u) }
        }
    }

    /// One unpacked weight super-block (see [`Unpack::unpack`]).
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    pub struct Unpacked {
        pub q: [__m256i; 8],
        pub ls: [i32; 16],
        pub mins: [i16; 16],
        pub d: f32,
        pub dmin: f32,
        /// `128·Σ_j ls(j)·w_j` (formed here, not by the type).
        pub(super) corr: i32,
    }

    impl Unpacked {
        /// All zero: a padding row.
        #[inline]
        #[target_feature(enable = "avx2")]
        pub(super) fn zero() -> Self {
            let zero = _mm256_setzero_si256();
            Unpacked { q: [zero; 8], ls: [0; 16], mins: [0; 16], d: 0.0, dmin: 0.0, corr: 0 }
        }

        /// Forms `corr` from the levels and scales `W`'s unpacking wrote.
        ///
        /// # Safety
        /// AVX2 on the running CPU.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) unsafe fn finish<W: Unpack>(&mut self) {
            // Σ ls·w: pair sums of the levels (`maddubs` by 1, one 16-value
            // half per 8 i16 lanes), `madd` by the scale of each half.
            let ones = _mm256_set1_epi8(1);
            let mut sum = _mm256_setzero_si256();
            for (c, &q) in self.q.iter().enumerate() {
                let (l0, l1) = match W::SUB {
                    16 => (self.ls[2 * c], self.ls[2 * c + 1]),
                    32 => (self.ls[c], self.ls[c]),
                    _ => (1, 1),
                };
                let (l0, l1) = (l0 as i16, l1 as i16);
                let ls = _mm256_setr_epi16(l0, l0, l0, l0, l0, l0, l0, l0, l1, l1, l1, l1, l1, l1, l1, l1);
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(ones, q), ls));
            }
            // SAFETY: AVX2 is enabled in this function.
            self.corr = unsafe { crate::quant::x86::hsum_epi32(sum) }.wrapping_mul(128);
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub mod vnni {
    use super::{Unpack, Unpacked};
    use crate::quant::blocks::BlockQ8K;
    use crate::quant::GemmOut;
    use std::arch::x86_64::*;

    /// Weight rows per strip (a strip with fewer rows is padded with zero
    /// rows, whose outputs are not stored).
    pub const MR: usize = 8;
    /// Tokens per lane group (16 i32 lanes).
    const NL: usize = 16;
    /// Values per super-block.
    const QK: usize = 256;

    /// 16 tokens' 4 consecutive biased levels (one cache line).
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Line([u32; NL]);

    /// 16 tokens' activation scales of one super-block.
    #[derive(Clone, Copy)]
    #[repr(C, align(64))]
    struct Scales([f32; NL]);

    /// A call's tokens, interleaved in groups of 16 ([`interleave`]).
    #[derive(Default)]
    struct Tokens {
        /// Group `g`, super-block `b`, values `4k..4k+4`: line
        /// `(g·n + b)·64 + k`, token `16g + l` in lane `l`, its 4 levels
        /// biased to unsigned (`q + 128`).
        lines: Vec<Line>,
        /// For [`Unpack::MINS`]: group `g`, super-block `b`, block sums
        /// `2p, 2p+1` (values `32p..32p+32`) as two i16 in line
        /// `(g·n + b)·8 + p`.
        sums: Vec<Line>,
        /// Group `g`, super-block `b`: the 16 tokens' `d` in `g·n + b`.
        scales: Vec<Scales>,
    }

    thread_local! {
        /// Per thread: a strip's unpacked super-blocks and the call's tokens.
        static BUF: std::cell::RefCell<(Vec<Unpacked>, Tokens)> =
            std::cell::RefCell::new((Vec::new(), Tokens::default()));
    }

    /// Unpacks `blk` (`None`: a zero row) and forms `corr`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the running CPU.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn unpack<W: Unpack>(blk: Option<&W>) -> Unpacked {
        let mut u = Unpacked::zero();
        if let Some(blk) = blk {
            // SAFETY: the features are this function's.
            unsafe {
                W::unpack_vnni(blk, &mut u);
                u.finish::<W>();
            }
        }
        u
    }

    /// Interleaves `tokens` tokens of `n` super-blocks each into `tk` (with
    /// their block sums when `sums`): the levels of each full group of 16
    /// tokens by 16 × 16 transposes of 32-bit words, the rest one word at a
    /// time. Lanes past the last token hold zero.
    ///
    /// # Safety
    /// AVX-512 F/BW on the running CPU.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn interleave(a: &[BlockQ8K], tokens: usize, n: usize, sums: bool, tk: &mut Tokens) {
        let groups = tokens.div_ceil(NL);
        // Every line is written below (resizing keeps old contents, so
        // nothing is zeroed twice), the padding lanes of the last group too.
        tk.lines.resize(groups * n * QK / 4, Line([0; NL]));
        tk.sums.resize(if sums { groups * n * 8 } else { 0 }, Line([0; NL]));
        tk.scales.resize(groups * n, Scales([0.0; NL]));
        let bias = _mm512_set1_epi32(0x8080_8080u32 as i32);
        for g in 0..groups {
            let nt = (tokens - g * NL).min(NL);
            for b in 0..n {
                let gb = g * n + b;
                let blk = |l: usize| &a[(g * NL + l) * n + b];
                for l in 0..NL {
                    tk.scales[gb].0[l] = if l < nt { blk(l).d } else { 0.0 };
                    if sums {
                        for p in 0..8 {
                            tk.sums[gb * 8 + p].0[l] = if l < nt {
                                let s = &blk(l).bsums;
                                (s[2 * p] as u16 as u32) | ((s[2 * p + 1] as u16 as u32) << 16)
                            } else {
                                0
                            };
                        }
                    }
                }
                let lines = &mut tk.lines[gb * QK / 4..(gb + 1) * QK / 4];
                if nt < NL {
                    for (k, line) in lines.iter_mut().enumerate() {
                        for l in 0..NL {
                            line.0[l] = if l < nt {
                                let q = &blk(l).qs[4 * k..4 * k + 4];
                                u32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]) ^ 0x8080_8080
                            } else {
                                0
                            };
                        }
                    }
                    continue;
                }
                for (quarter, lines) in lines.chunks_exact_mut(NL).enumerate() {
                    let rows: [__m512i; NL] = std::array::from_fn(|l| {
                        let q = &blk(l).qs[64 * quarter..64 * quarter + 64];
                        // SAFETY: `q` is 64 bytes.
                        _mm512_xor_si512(unsafe { _mm512_loadu_si512(q.as_ptr().cast()) }, bias)
                    });
                    let cols = transpose16(rows);
                    for (line, c) in lines.iter_mut().zip(cols) {
                        // SAFETY: a line is 64 bytes, 64-byte aligned.
                        unsafe { _mm512_store_si512((line as *mut Line).cast(), c) };
                    }
                }
            }
        }
    }

    /// The 16 × 16 transpose of 32-bit words: word `j` of row `i` to word
    /// `i` of result `j`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
        // Pairs of rows interleaved by words, then by pairs of words: u[4i+c]
        // holds, in its 128-bit lane L, rows 4i..4i+4 of column 4L + c.
        let t: [__m512i; 16] = std::array::from_fn(|k| {
            let (x, y) = (r[k & !1], r[k | 1]);
            if k % 2 == 0 {
                _mm512_unpacklo_epi32(x, y)
            } else {
                _mm512_unpackhi_epi32(x, y)
            }
        });
        let u: [__m512i; 16] = std::array::from_fn(|k| {
            let (base, c) = (k & !3, k % 4);
            let (x, y) = (t[base + c / 2], t[base + 2 + c / 2]);
            if c % 2 == 0 {
                _mm512_unpacklo_epi64(x, y)
            } else {
                _mm512_unpackhi_epi64(x, y)
            }
        });
        // Lanes gathered across registers: v[k], v[4+k] from rows 0..8,
        // v[8+k], v[12+k] from rows 8..16 (lanes 0, 2 and 1, 3).
        let v: [__m512i; 16] = std::array::from_fn(|k| {
            let (half, odd, c) = (k / 8, (k / 4) % 2, k % 4);
            let (x, y) = (u[8 * half + c], u[8 * half + 4 + c]);
            if odd == 0 {
                _mm512_shuffle_i32x4::<0b10_00_10_00>(x, y)
            } else {
                _mm512_shuffle_i32x4::<0b11_01_11_01>(x, y)
            }
        });
        std::array::from_fn(|j| {
            let (lane, c) = (j / 4, j % 4);
            let (x, y) = (v[4 * (lane % 2) + c], v[8 + 4 * (lane % 2) + c]);
            if lane < 2 {
                _mm512_shuffle_i32x4::<0b10_00_10_00>(x, y)
            } else {
                _mm512_shuffle_i32x4::<0b11_01_11_01>(x, y)
            }
        })
    }

    /// One group of tokens: its lines, block sums and scales.
    #[derive(Clone, Copy)]
    struct Group {
        lines: *const Line,
        sums: *const Line,
        scales: *const Scales,
    }

    /// One group of (up to) 16 tokens × the strip's `MR` rows, over `n`
    /// super-blocks: `un[r·n + b]` the rows' unpacked super-blocks; row
    /// `r < nr`, token `t < nt` into `out[t·stride + r]`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C on the running CPU; `un`
    /// holds `MR·n` super-blocks, the group `64·n` lines, `8·n` sums (with
    /// `MINS`) and `n` scales; `out` holds `(nt−1)·stride + nr` values,
    /// `nr ≤ MR`, `nt ≤ 16`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn group<const SUB: usize, const MINS: bool>(
        un: *const Unpacked,
        grp: Group,
        n: usize,
        (nr, nt): (usize, usize),
        out: *mut f32,
        stride: usize,
    ) {
        let zero = _mm512_setzero_si512();
        let mut acc = [_mm512_setzero_ps(); MR];
        for b in 0..n {
            // SAFETY: r < MR, b < n: inside `un`.
            let blk: [&Unpacked; MR] = std::array::from_fn(|r| unsafe { &*un.add(r * n + b) });
            let words: [*const i32; MR] = std::array::from_fn(|r| blk[r].q.as_ptr().cast::<i32>());
            let mut s: [__m512i; MR] = std::array::from_fn(|r| _mm512_set1_epi32(blk[r].corr.wrapping_neg()));
            // SAFETY: the group's lines of super-block b.
            let line = unsafe { grp.lines.add(b * QK / 4) };
            for sub in 0..QK / SUB {
                let mut dp = if SUB == QK { s } else { [zero; MR] };
                for k in sub * SUB / 4..(sub + 1) * SUB / 4 {
                    // SAFETY: k < 64 lines of super-block b, 64-byte aligned.
                    let x = unsafe { _mm512_load_si512(line.add(k).cast()) };
                    for r in 0..MR {
                        // SAFETY: word k of the 64 words of row r's levels.
                        let w = _mm512_set1_epi32(unsafe { *words[r].add(k) });
                        dp[r] = _mm512_dpbusd_epi32(dp[r], x, w);
                    }
                }
                for r in 0..MR {
                    s[r] = if SUB == QK {
                        dp[r]
                    } else {
                        _mm512_add_epi32(s[r], _mm512_mullo_epi32(dp[r], _mm512_set1_epi32(blk[r].ls[sub])))
                    };
                }
            }
            // SAFETY: scale line b of the group, 64-byte aligned.
            let da = unsafe { _mm512_load_ps((*grp.scales.add(b)).0.as_ptr()) };
            let mut res: [__m512; MR] =
                std::array::from_fn(|r| _mm512_mul_ps(_mm512_set1_ps(blk[r].d), _mm512_cvtepi32_ps(s[r])));
            if MINS {
                // s2 = Σ_j m_j·bsum_j: pairs of i16 per lane, `vpdpwssd`.
                let mut s2 = [zero; MR];
                for p in 0..8 {
                    // SAFETY: sum line p of super-block b, 64-byte aligned.
                    let x = unsafe { _mm512_load_si512(grp.sums.add(b * 8 + p).cast()) };
                    for r in 0..MR {
                        // SAFETY: pair p of the 16 i16 minimums.
                        let m = _mm512_set1_epi32(unsafe { *blk[r].mins.as_ptr().cast::<i32>().add(p) });
                        s2[r] = _mm512_dpwssd_epi32(s2[r], x, m);
                    }
                }
                for r in 0..MR {
                    // res − dmin·s2, one FMA.
                    res[r] = _mm512_fnmadd_ps(_mm512_set1_ps(blk[r].dmin), _mm512_cvtepi32_ps(s2[r]), res[r]);
                }
            }
            for r in 0..MR {
                acc[r] = _mm512_fmadd_ps(res[r], da, acc[r]);
            }
        }
        let mut v = [[0f32; NL]; MR];
        for r in 0..nr {
            // SAFETY: `v[r]` is 16 floats.
            unsafe { _mm512_storeu_ps(v[r].as_mut_ptr(), acc[r]) };
        }
        for t in 0..nt {
            for (r, v) in v.iter().enumerate().take(nr) {
                // SAFETY: t < nt, r < nr: inside `out`.
                unsafe { *out.add(t * stride + r) = v[t] };
            }
        }
    }

    /// Products of weight rows of a type with [`Unpack`] with Q8_K tokens.
    ///
    /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of `n`
    /// super-blocks; `out.at(t, r)` receives row `r` · token `t`,
    /// bit-identical to the batch dot product of the two (see the module
    /// documentation).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; `out`
    /// as [`GemmOut`] says.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn gemm<W: Unpack>(w: &[W], a: &[BlockQ8K], n: usize, out: GemmOut) {
        if n == 0 {
            return;
        }
        let (rows, tokens) = (w.len() / n, a.len() / n);
        BUF.with_borrow_mut(|(un, tk)| {
            // SAFETY: the features are the caller's.
            unsafe { interleave(a, tokens, n, W::MINS, tk) };
            let mut r0 = 0;
            while r0 < rows {
                let nr = (rows - r0).min(MR);
                un.clear();
                for r in 0..MR {
                    for b in 0..n {
                        let blk = (r < nr).then(|| &w[(r0 + r) * n + b]);
                        // SAFETY: the features are the caller's.
                        un.push(unsafe { unpack(blk) });
                    }
                }
                let mut t0 = 0;
                while t0 < tokens {
                    let (g, nt) = (t0 / NL, (tokens - t0).min(NL));
                    // SAFETY: `un` holds MR·n super-blocks; the group's
                    // lines, sums and scales start at g·n·64, g·n·8 and
                    // g·n (`sums` is only read with MINS, when it was
                    // filled); `out` holds token t0 + t, row r0 + r for
                    // t < nt, r < nr (the caller's); the features are the
                    // caller's.
                    unsafe {
                        let (o, stride) = (out.at(t0, r0), out.stride);
                        let grp = Group {
                            lines: tk.lines.as_ptr().add(g * n * QK / 4),
                            sums: tk.sums.as_ptr().wrapping_add(g * n * 8),
                            scales: tk.scales.as_ptr().add(g * n),
                        };
                        let u = un.as_ptr();
                        match (W::SUB, W::MINS) {
                            (16, false) => group::<16, false>(u, grp, n, (nr, nt), o, stride),
                            (16, true) => group::<16, true>(u, grp, n, (nr, nt), o, stride),
                            (32, false) => group::<32, false>(u, grp, n, (nr, nt), o, stride),
                            (32, true) => group::<32, true>(u, grp, n, (nr, nt), o, stride),
                            (_, false) => group::<QK, false>(u, grp, n, (nr, nt), o, stride),
                            (_, true) => group::<QK, true>(u, grp, n, (nr, nt), o, stride),
                        }
                    }
                    t0 += nt;
                }
                r0 += nr;
            }
        });
    }
}

/// The same GEMM on CPUs with AVX2 but no AVX-512 VNNI: 8 tokens per
/// 256-bit register, lines of 4 values × 8 tokens, and `vpmaddubsw` (the
/// biased token bytes times 2 broadcast weight bytes, pair sums in 16 bits)
/// in place of `vpdpbusd`. A type's [`Unpack::MAX_LEVEL`] bounds each 16-bit
/// pair sum by 2·255·`MAX_LEVEL`; up to `G` lines of them are added in 16
/// bits while that stays below 2¹⁵ (Q4_K: 4, Q5_K and Q6_K: 2, the others
/// 1 or 4), then one `vpmaddwd` by the sub-block's scale widens them and
/// multiplies by it at once. Types whose levels exceed 64 (Q3_K, IQ4_XS)
/// take unbiased token lines and ggml's sign trick instead
/// ([`avx2::gemm`]). Every partial sum is exact, so the integer `s` is the
/// VNNI kernel's and the float steps are the same.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::{Unpack, Unpacked};
    use crate::quant::blocks::BlockQ8K;
    use crate::quant::GemmOut;
    use std::arch::x86_64::*;

    /// Weight rows per strip (a strip with fewer rows is padded with zero
    /// rows, whose outputs are not stored): 4 rows' 32-bit sums and 16-bit
    /// partial sums, a token line and a weight word fit the 16 registers.
    const MR: usize = 4;
    /// Tokens per lane group (8 i32 lanes).
    const NL: usize = 8;
    /// Values per super-block.
    const QK: usize = 256;

    /// Whether `W`'s levels leave room for this kernel's 16-bit pair sums.
    pub const fn fits<W: Unpack>() -> bool {
        W::MAX_LEVEL <= 64
    }

    /// Lines of pair sums added in 16 bits before they are widened: the
    /// largest power of two `g ≤ SUB/4` with `g·2·255·max ≤ 32767`.
    const fn lines_per_madd(max: u8, sub: usize) -> usize {
        let mut g = 1;
        while 2 * g <= sub / 4 && 2 * g * 2 * 255 * (max as usize) <= i16::MAX as usize {
            g *= 2;
        }
        g
    }

    /// 8 tokens' 4 consecutive biased levels (half a cache line).
    #[derive(Clone, Copy)]
    #[repr(C, align(32))]
    struct Line([u32; NL]);

    /// 8 tokens' activation scales of one super-block.
    #[derive(Clone, Copy)]
    #[repr(C, align(32))]
    struct Scales([f32; NL]);

    /// A call's tokens, interleaved in groups of 8 ([`interleave`]); the
    /// layout of the VNNI kernel's with 8 lanes.
    #[derive(Default)]
    struct Tokens {
        /// Group `g`, super-block `b`, values `4k..4k+4`: line
        /// `(g·n + b)·64 + k`, token `8g + l` in lane `l`, biased (`q + 128`).
        lines: Vec<Line>,
        /// With [`Unpack::MINS`]: group `g`, super-block `b`, block sums
        /// `2p, 2p+1` as two i16 in line `(g·n + b)·8 + p`.
        sums: Vec<Line>,
        /// Group `g`, super-block `b`: the 8 tokens' `d` in `g·n + b`.
        scales: Vec<Scales>,
    }

    thread_local! {
        /// Per thread: a strip's unpacked super-blocks and the call's tokens.
        static BUF: std::cell::RefCell<(Vec<Unpacked>, Tokens)> =
            std::cell::RefCell::new((Vec::new(), Tokens::default()));
    }

    /// Unpacks `blk` (`None`: a zero row) and forms `corr`.
    ///
    /// # Safety
    /// AVX2, FMA and F16C on the running CPU.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack<W: Unpack>(blk: Option<&W>) -> Unpacked {
        let mut u = Unpacked::zero();
        if let Some(blk) = blk {
            // SAFETY: the features are this function's.
            unsafe {
                W::unpack(blk, &mut u);
                u.finish::<W>();
            }
        }
        u
    }

    /// The 8 × 8 transpose of 32-bit words: word `j` of row `i` to word `i`
    /// of result `j`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
        // t[2i], t[2i+1]: rows 2i, 2i+1 interleaved by words (words 0, 1, 4, 5
        // and 2, 3, 6, 7); u[4h + c]: rows 4h..4h+4 of words c and c + 4.
        let t: [__m256i; 8] = std::array::from_fn(|k| {
            let (x, y) = (r[k & !1], r[k | 1]);
            if k % 2 == 0 {
                _mm256_unpacklo_epi32(x, y)
            } else {
                _mm256_unpackhi_epi32(x, y)
            }
        });
        let u: [__m256i; 8] = std::array::from_fn(|k| {
            let (base, c) = (k & !3, k % 4);
            let (x, y) = (t[base + c / 2], t[base + 2 + c / 2]);
            if c % 2 == 0 {
                _mm256_unpacklo_epi64(x, y)
            } else {
                _mm256_unpackhi_epi64(x, y)
            }
        });
        std::array::from_fn(|j| {
            if j < 4 {
                _mm256_permute2x128_si256::<0x20>(u[j], u[4 + j])
            } else {
                _mm256_permute2x128_si256::<0x31>(u[j - 4], u[j])
            }
        })
    }

    /// Interleaves `tokens` tokens of `n` super-blocks each into `tk` (with
    /// their block sums when `sums`), biased to unsigned when `biased`:
    /// full groups of 8 tokens by 8 × 8 transposes of 32-bit words, the
    /// rest one word at a time. Lanes past the last token hold zero.
    ///
    /// # Safety
    /// AVX2 on the running CPU.
    #[target_feature(enable = "avx2")]
    unsafe fn interleave(a: &[BlockQ8K], tokens: usize, n: usize, sums: bool, biased: bool, tk: &mut Tokens) {
        let groups = tokens.div_ceil(NL);
        // Every line is written below (resizing keeps old contents).
        tk.lines.resize(groups * n * QK / 4, Line([0; NL]));
        tk.sums.resize(if sums { groups * n * 8 } else { 0 }, Line([0; NL]));
        tk.scales.resize(groups * n, Scales([0.0; NL]));
        let bias_word = if biased { 0x8080_8080u32 } else { 0 };
        let bias = _mm256_set1_epi32(bias_word as i32);
        for g in 0..groups {
            let nt = (tokens - g * NL).min(NL);
            for b in 0..n {
                let gb = g * n + b;
                let blk = |l: usize| &a[(g * NL + l) * n + b];
                for l in 0..NL {
                    tk.scales[gb].0[l] = if l < nt { blk(l).d } else { 0.0 };
                    if sums {
                        for p in 0..8 {
                            tk.sums[gb * 8 + p].0[l] = if l < nt {
                                let s = &blk(l).bsums;
                                (s[2 * p] as u16 as u32) | ((s[2 * p + 1] as u16 as u32) << 16)
                            } else {
                                0
                            };
                        }
                    }
                }
                let lines = &mut tk.lines[gb * QK / 4..(gb + 1) * QK / 4];
                if nt < NL {
                    for (k, line) in lines.iter_mut().enumerate() {
                        for l in 0..NL {
                            line.0[l] = if l < nt {
                                let q = &blk(l).qs[4 * k..4 * k + 4];
                                u32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]) ^ bias_word
                            } else {
                                0
                            };
                        }
                    }
                    continue;
                }
                for (eighth, lines) in lines.chunks_exact_mut(NL).enumerate() {
                    let rows: [__m256i; NL] = std::array::from_fn(|l| {
                        let q = &blk(l).qs[32 * eighth..32 * eighth + 32];
                        // SAFETY: `q` is 32 bytes.
                        _mm256_xor_si256(unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }, bias)
                    });
                    for (line, c) in lines.iter_mut().zip(transpose8(rows)) {
                        // SAFETY: a line is 32 bytes, 32-byte aligned.
                        unsafe { _mm256_store_si256((line as *mut Line).cast(), c) };
                    }
                }
            }
        }
    }

    /// One group of tokens: its lines, block sums and scales.
    #[derive(Clone, Copy)]
    struct Group {
        lines: *const Line,
        sums: *const Line,
        scales: *const Scales,
    }

    /// One group of (up to) 8 tokens × the strip's `MR` rows, over `n`
    /// super-blocks, `G` lines summed in 16 bits per widening: `un[r·n + b]`
    /// the rows' unpacked super-blocks; row `r < nr`, token `t < nt` into
    /// `out[t·stride + r]`.
    ///
    /// # Safety
    /// AVX2, FMA and F16C on the running CPU; `un` holds `MR·n`
    /// super-blocks, the group `64·n` lines, `8·n` sums (with `MINS`) and
    /// `n` scales; `out` holds `(nt−1)·stride + nr` values, `nr ≤ MR`,
    /// `nt ≤ 8`; `G` lines of the type's pair sums fit 16 bits.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn group<const SUB: usize, const MINS: bool, const G: usize>(
        un: *const Unpacked,
        grp: Group,
        n: usize,
        (nr, nt): (usize, usize),
        out: *mut f32,
        stride: usize,
    ) {
        let zero = _mm256_setzero_si256();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); MR];
        for b in 0..n {
            // SAFETY: r < MR, b < n: inside `un`.
            let blk: [&Unpacked; MR] = std::array::from_fn(|r| unsafe { &*un.add(r * n + b) });
            let words: [*const i32; MR] = std::array::from_fn(|r| blk[r].q.as_ptr().cast::<i32>());
            let mut s: [__m256i; MR] = std::array::from_fn(|r| _mm256_set1_epi32(blk[r].corr.wrapping_neg()));
            // SAFETY: the group's lines of super-block b.
            let line = unsafe { grp.lines.add(b * QK / 4) };
            for sub in 0..QK / SUB {
                let ls: [__m256i; MR] =
                    std::array::from_fn(|r| if SUB == QK { ones } else { _mm256_set1_epi16(blk[r].ls[sub] as i16) });
                for k0 in (sub * SUB / 4..(sub + 1) * SUB / 4).step_by(G) {
                    let mut p = [zero; MR];
                    for k in k0..k0 + G {
                        // SAFETY: k < 64 lines of super-block b, 32-byte aligned.
                        let x = unsafe { _mm256_load_si256(line.add(k).cast()) };
                        for r in 0..MR {
                            // SAFETY: word k of the 64 words of row r's levels.
                            let w = _mm256_set1_epi32(unsafe { *words[r].add(k) });
                            p[r] = _mm256_add_epi16(p[r], _mm256_maddubs_epi16(x, w));
                        }
                    }
                    for r in 0..MR {
                        s[r] = _mm256_add_epi32(s[r], _mm256_madd_epi16(p[r], ls[r]));
                    }
                }
            }
            // SAFETY: scale line b of the group, 32-byte aligned.
            let da = unsafe { _mm256_load_ps((*grp.scales.add(b)).0.as_ptr()) };
            let mut res: [__m256; MR] =
                std::array::from_fn(|r| _mm256_mul_ps(_mm256_set1_ps(blk[r].d), _mm256_cvtepi32_ps(s[r])));
            if MINS {
                // s2 = Σ_j m_j·bsum_j: pairs of i16 per lane, `vpmaddwd`.
                let mut s2 = [zero; MR];
                for p in 0..8 {
                    // SAFETY: sum line p of super-block b, 32-byte aligned.
                    let x = unsafe { _mm256_load_si256(grp.sums.add(b * 8 + p).cast()) };
                    for r in 0..MR {
                        // SAFETY: pair p of the 16 i16 minimums.
                        let m = _mm256_set1_epi32(unsafe { *blk[r].mins.as_ptr().cast::<i32>().add(p) });
                        s2[r] = _mm256_add_epi32(s2[r], _mm256_madd_epi16(x, m));
                    }
                }
                for r in 0..MR {
                    // res − dmin·s2, one FMA.
                    res[r] = _mm256_fnmadd_ps(_mm256_set1_ps(blk[r].dmin), _mm256_cvtepi32_ps(s2[r]), res[r]);
                }
            }
            for r in 0..MR {
                acc[r] = _mm256_fmadd_ps(res[r], da, acc[r]);
            }
        }
        let mut v = [[0f32; NL]; MR];
        for r in 0..nr {
            // SAFETY: `v[r]` is 8 floats.
            unsafe { _mm256_storeu_ps(v[r].as_mut_ptr(), acc[r]) };
        }
        for t in 0..nt {
            for (r, v) in v.iter().enumerate().take(nr) {
                // SAFETY: t < nt, r < nr: inside `out`.
                unsafe { *out.add(t * stride + r) = v[t] };
            }
        }
    }

    /// [`group`] for types whose levels do not [`fit`](fits) the biased
    /// pair sums (Q3_K, IQ4_XS, up to 128): the token lines hold the signed
    /// levels, and each product is ggml's sign trick, `vpmaddubsw` of the
    /// weight bytes' magnitudes with the token bytes negated where the
    /// weight is negative (zeroed where it is zero) — exact, as a token
    /// level is never −128 — whose pair sums (at most 2·128·127) are
    /// widened by the scale at once; no bias, so no correction.
    ///
    /// # Safety
    /// As [`group`]'s, without `MINS`, with lines interleaved unbiased.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn group_signed<const SUB: usize>(
        un: *const Unpacked,
        grp: Group,
        n: usize,
        (nr, nt): (usize, usize),
        out: *mut f32,
        stride: usize,
    ) {
        let zero = _mm256_setzero_si256();
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); MR];
        for b in 0..n {
            // SAFETY: r < MR, b < n: inside `un`.
            let blk: [&Unpacked; MR] = std::array::from_fn(|r| unsafe { &*un.add(r * n + b) });
            let words: [*const i32; MR] = std::array::from_fn(|r| blk[r].q.as_ptr().cast::<i32>());
            let mut s = [zero; MR];
            // SAFETY: the group's lines of super-block b.
            let line = unsafe { grp.lines.add(b * QK / 4) };
            for sub in 0..QK / SUB {
                let ls: [__m256i; MR] =
                    std::array::from_fn(|r| if SUB == QK { ones } else { _mm256_set1_epi16(blk[r].ls[sub] as i16) });
                for k in sub * SUB / 4..(sub + 1) * SUB / 4 {
                    // SAFETY: k < 64 lines of super-block b, 32-byte aligned.
                    let x = unsafe { _mm256_load_si256(line.add(k).cast()) };
                    for r in 0..MR {
                        // SAFETY: word k of the 64 words of row r's levels.
                        let w = _mm256_set1_epi32(unsafe { *words[r].add(k) });
                        let p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
                        s[r] = _mm256_add_epi32(s[r], _mm256_madd_epi16(p, ls[r]));
                    }
                }
            }
            // SAFETY: scale line b of the group, 32-byte aligned.
            let da = unsafe { _mm256_load_ps((*grp.scales.add(b)).0.as_ptr()) };
            for r in 0..MR {
                let res = _mm256_mul_ps(_mm256_set1_ps(blk[r].d), _mm256_cvtepi32_ps(s[r]));
                acc[r] = _mm256_fmadd_ps(res, da, acc[r]);
            }
        }
        let mut v = [[0f32; NL]; MR];
        for r in 0..nr {
            // SAFETY: `v[r]` is 8 floats.
            unsafe { _mm256_storeu_ps(v[r].as_mut_ptr(), acc[r]) };
        }
        for t in 0..nt {
            for (r, v) in v.iter().enumerate().take(nr) {
                // SAFETY: t < nt, r < nr: inside `out`.
                unsafe { *out.add(t * stride + r) = v[t] };
            }
        }
    }

    /// Products of weight rows of a type with [`Unpack`] with Q8_K tokens.
    ///
    /// `w` holds `w.len() / n` rows and `a` `a.len() / n` tokens of `n`
    /// super-blocks; `out.at(t, r)` receives row `r` · token `t`,
    /// bit-identical to the batch dot product of the two (see the module
    /// documentation).
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `out` as [`GemmOut`] says.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn gemm<W: Unpack>(w: &[W], a: &[BlockQ8K], n: usize, out: GemmOut) {
        if n == 0 {
            return;
        }
        let (rows, tokens) = (w.len() / n, a.len() / n);
        let biased = fits::<W>();
        // The signed products have no minimum term (no such type has one).
        assert!(biased || !W::MINS, "{}: levels above 64 with minimums", W::TYPE);
        let g = lines_per_madd(W::MAX_LEVEL, W::SUB);
        BUF.with_borrow_mut(|(un, tk)| {
            // SAFETY: the features are the caller's.
            unsafe { interleave(a, tokens, n, W::MINS, biased, tk) };
            let mut r0 = 0;
            while r0 < rows {
                let nr = (rows - r0).min(MR);
                un.clear();
                for r in 0..MR {
                    for b in 0..n {
                        let blk = (r < nr).then(|| &w[(r0 + r) * n + b]);
                        // SAFETY: the features are the caller's.
                        un.push(unsafe { unpack(blk) });
                    }
                }
                let mut t0 = 0;
                while t0 < tokens {
                    let (gi, nt) = (t0 / NL, (tokens - t0).min(NL));
                    // SAFETY: `un` holds MR·n super-blocks; the group's
                    // lines, sums and scales start at g·n·64, g·n·8 and
                    // g·n (`sums` is only read with MINS, when it was
                    // filled); `out` holds token t0 + t, row r0 + r for
                    // t < nt, r < nr (the caller's); `g` lines of pair sums
                    // fit 16 bits (`lines_per_madd`); the features are the
                    // caller's.
                    unsafe {
                        let (o, stride) = (out.at(t0, r0), out.stride);
                        let grp = Group {
                            lines: tk.lines.as_ptr().add(gi * n * QK / 4),
                            sums: tk.sums.as_ptr().wrapping_add(gi * n * 8),
                            scales: tk.scales.as_ptr().add(gi * n),
                        };
                        let u = un.as_ptr();
                        let on = (nr, nt);
                        if !biased {
                            match W::SUB {
                                16 => group_signed::<16>(u, grp, n, on, o, stride),
                                32 => group_signed::<32>(u, grp, n, on, o, stride),
                                _ => group_signed::<QK>(u, grp, n, on, o, stride),
                            }
                            t0 += nt;
                            continue;
                        }
                        match (W::SUB, W::MINS, g) {
                            (16, false, 1) => group::<16, false, 1>(u, grp, n, on, o, stride),
                            (16, false, 2) => group::<16, false, 2>(u, grp, n, on, o, stride),
                            (16, false, _) => group::<16, false, 4>(u, grp, n, on, o, stride),
                            (16, true, 1) => group::<16, true, 1>(u, grp, n, on, o, stride),
                            (16, true, 2) => group::<16, true, 2>(u, grp, n, on, o, stride),
                            (16, true, _) => group::<16, true, 4>(u, grp, n, on, o, stride),
                            (32, false, 1) => group::<32, false, 1>(u, grp, n, on, o, stride),
                            (32, false, 2) => group::<32, false, 2>(u, grp, n, on, o, stride),
                            (32, false, 4) => group::<32, false, 4>(u, grp, n, on, o, stride),
                            (32, false, _) => group::<32, false, 8>(u, grp, n, on, o, stride),
                            (32, true, 1) => group::<32, true, 1>(u, grp, n, on, o, stride),
                            (32, true, 2) => group::<32, true, 2>(u, grp, n, on, o, stride),
                            (32, true, 4) => group::<32, true, 4>(u, grp, n, on, o, stride),
                            (32, true, _) => group::<32, true, 8>(u, grp, n, on, o, stride),
                            (_, false, 1) => group::<QK, false, 1>(u, grp, n, on, o, stride),
                            (_, false, 2) => group::<QK, false, 2>(u, grp, n, on, o, stride),
                            (_, false, 4) => group::<QK, false, 4>(u, grp, n, on, o, stride),
                            (_, false, _) => group::<QK, false, 8>(u, grp, n, on, o, stride),
                            (_, true, 1) => group::<QK, true, 1>(u, grp, n, on, o, stride),
                            (_, true, 2) => group::<QK, true, 2>(u, grp, n, on, o, stride),
                            (_, true, 4) => group::<QK, true, 4>(u, grp, n, on, o, stride),
                            (_, true, _) => group::<QK, true, 8>(u, grp, n, on, o, stride),
                        }
                    }
                    t0 += nt;
                }
                r0 += nr;
            }
        });
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn lines_per_madd_keeps_pair_sums_in_16_bits() {
            assert_eq!(lines_per_madd(15, 32), 4);
            assert_eq!(lines_per_madd(31, 32), 2);
            assert_eq!(lines_per_madd(32, 16), 2);
            assert_eq!(lines_per_madd(45, 256), 1);
            assert_eq!(lines_per_madd(9, 16), 4);
            assert_eq!(lines_per_madd(1, 16), 4);
            for max in 1..=64u8 {
                for sub in [16, 32, 256] {
                    let g = lines_per_madd(max, sub);
                    assert!(g * 2 * 255 * max as usize <= 32767 && g <= sub / 4, "{max} {sub}");
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{Unpack, Unpacked};
    use crate::quant::blocks::*;

    /// The largest level magnitude over many random super-blocks of `W`.
    fn largest_level<W: Unpack>() -> u8 {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut largest = 0;
        for _ in 0..500 {
            let bytes: Vec<u8> = (0..std::mem::size_of::<W>())
                .map(|_| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    (state >> 33) as u8
                })
                .collect();
            let blk: W = bytemuck::pod_read_unaligned(&bytes);
            // SAFETY: the caller checked AVX2, FMA and F16C.
            let u = unsafe {
                let mut u = Unpacked::zero();
                W::unpack(&blk, &mut u);
                u
            };
            for q in u.q {
                // SAFETY: a 256-bit register is 32 bytes.
                let q: [i8; 32] = unsafe { std::mem::transmute(q) };
                largest = q.iter().map(|v| v.unsigned_abs()).fold(largest, u8::max);
            }
        }
        largest
    }

    /// Every type's `MAX_LEVEL` is what its unpacking reaches: not less
    /// (the AVX2 kernel's 16-bit sums would overflow) and not more (it
    /// would widen them more often than it needs to).
    #[test]
    fn max_level_is_the_largest_level_unpacked() {
        if !crate::quant::simd::Isa::Avx2.available() {
            eprintln!("no AVX2 here: the unpacking is not run");
            return;
        }
        fn check<W: Unpack>() {
            assert_eq!(largest_level::<W>(), W::MAX_LEVEL, "{}", W::TYPE);
        }
        check::<BlockQ2K>();
        check::<BlockQ3K>();
        check::<BlockQ4K>();
        check::<BlockQ5K>();
        check::<BlockQ6K>();
        check::<BlockIQ4XS>();
        check::<BlockIQ3S>();
        check::<BlockIQ3XXS>();
        check::<BlockIQ2XXS>();
        check::<BlockIQ2XS>();
        check::<BlockIQ2S>();
        check::<BlockIQ1S>();
        check::<BlockIQ1M>();
    }
}
