//! The same GEMM on CPUs with AVX2 but no AVX-512 VNNI: 8 tokens per
//! 256-bit register, lines of 4 values × 8 tokens, and `vpmaddubsw` (the
//! biased token bytes times 2 broadcast weight bytes, pair sums in 16 bits)
//! in place of `vpdpbusd`. A type's [`Unpack::MAX_LEVEL`] bounds each 16-bit
//! pair sum by 2·255·`MAX_LEVEL`; up to `G` lines of them are added in 16
//! bits while that stays below 2¹⁵ (Q4_K: 4, Q5_K and Q6_K: 2, the others
//! 1 or 4), then one `vpmaddwd` by the sub-block's scale widens them and
//! multiplies by it at once. Types whose levels exceed 64 (Q3_K, IQ4_XS)
//! take unbiased token lines and ggml's sign trick instead
//! ([`gemm`]). Every partial sum is exact, so the integer `s` is the
//! VNNI kernel's and the float steps are the same.

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

/// Writes a strip's accumulators: row `r < nr`, token `t < nt` into
/// `out[t·stride + r]`.
///
/// # Safety
/// AVX2 on the running CPU; `out` holds `(nt−1)·stride + nr` values, `nr ≤
/// MR`, `nt ≤ 8`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn store(acc: &[__m256; MR], (nr, nt): (usize, usize), out: *mut f32, stride: usize) {
    let mut v = [[0f32; NL]; MR];
    for r in 0..nr {
        // SAFETY: `v[r]` is 8 floats.
        unsafe { _mm256_storeu_ps(v[r].as_mut_ptr(), acc[r]) };
    }
    for t in 0..nt {
        for (r, v) in v.iter().enumerate().take(nr) {
            // SAFETY: t < nt, r < nr: inside `out` (the caller's).
            unsafe { *out.add(t * stride + r) = v[t] };
        }
    }
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
    // SAFETY: the caller's `out`.
    unsafe { store(&acc, (nr, nt), out, stride) };
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
    // SAFETY: the caller's `out`.
    unsafe { store(&acc, (nr, nt), out, stride) };
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
