//! The AVX-512 VNNI kernel (see the module [`super`]).

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
