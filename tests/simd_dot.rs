//! Every SIMD dot product equals the scalar reference on random valid blocks:
//! exactly when all scales are 1 (then every partial sum is an integer below
//! 2²⁴, so only the integer arithmetic is compared), and within float
//! rounding with random scales. The scalar path in turn matches the f64 dot
//! product of the dequantized operands.
//!
//! Blocks are built directly from random bytes (any bit pattern of the level
//! fields is a valid block) with finite f16 scales; activations are built
//! with levels in -127..=127 and consistent sums, as their quantizers make
//! them.

use half::{bf16, f16};
use quantmix::gguf::GgmlType;
use quantmix::quant::simd::Isa;
use quantmix::quant::{self, blocks::*};
use quantmix::quant::{vec_dot_with, VEC_DOT_TYPES};

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 32) as u8
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.byte())
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// A level in -lim..=lim.
    fn level(&mut self, lim: i32) -> i8 {
        ((self.next() >> 33) % (2 * lim as u64 + 1)) as i32 as i8 - lim as i8
    }
    /// A finite scale: magnitude in [2^-12, 2), either sign.
    fn scale(&mut self) -> f32 {
        let m = (2.0f32).powf(-12.0 + 13.0 * (self.unit() * 0.5 + 0.5));
        if self.byte() & 1 == 0 {
            m
        } else {
            -m
        }
    }
}

/// How scales and activation levels are drawn.
#[derive(Clone, Copy)]
enum Mode {
    /// All scales 1, activation levels in -8..=8: sums stay exact integers.
    Unit,
    /// Random scales, activation levels over the whole -127..=127.
    Random,
}

fn sc16(r: &mut Rng, mode: Mode) -> f16 {
    match mode {
        Mode::Unit => f16::ONE,
        Mode::Random => f16::from_f32(r.scale()),
    }
}

fn act_lim(mode: Mode) -> i32 {
    match mode {
        Mode::Unit => 8,
        Mode::Random => 127,
    }
}

fn bytes_of<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// Random weight blocks of type `ty` covering `n` values.
fn weights(ty: GgmlType, n: usize, r: &mut Rng, mode: Mode) -> Vec<u8> {
    let nb = n / ty.block_size();
    macro_rules! blocks {
        ($f:expr) => {
            bytes_of(&(0..nb).map(|_| $f).collect::<Vec<_>>())
        };
    }
    match ty {
        GgmlType::F32 => blocks!(r.unit()),
        GgmlType::F16 => blocks!(f16::from_f32(r.unit())),
        GgmlType::BF16 => blocks!(bf16::from_f32(r.unit())),
        GgmlType::Q4_0 => blocks!(BlockQ4_0 { d: sc16(r, mode), qs: r.bytes() }),
        GgmlType::Q4_1 => blocks!(BlockQ4_1 { d: sc16(r, mode), m: sc16(r, mode), qs: r.bytes() }),
        GgmlType::Q5_0 => blocks!(BlockQ5_0 { d: sc16(r, mode), qh: r.bytes(), qs: r.bytes() }),
        GgmlType::Q5_1 => blocks!(BlockQ5_1 { d: sc16(r, mode), m: sc16(r, mode), qh: r.bytes(), qs: r.bytes() }),
        GgmlType::Q8_0 => blocks!(BlockQ8_0 { d: sc16(r, mode), qs: bytemuck::cast(r.bytes::<32>()) }),
        GgmlType::Q2_K => {
            blocks!(BlockQ2K { scales: r.bytes(), qs: r.bytes(), d: sc16(r, mode), dmin: sc16(r, mode) })
        }
        GgmlType::Q3_K => {
            blocks!(BlockQ3K { hmask: r.bytes(), qs: r.bytes(), scales: r.bytes(), d: sc16(r, mode) })
        }
        GgmlType::Q4_K => {
            blocks!(BlockQ4K { d: sc16(r, mode), dmin: sc16(r, mode), scales: r.bytes(), qs: r.bytes() })
        }
        GgmlType::Q5_K => {
            blocks!(BlockQ5K { d: sc16(r, mode), dmin: sc16(r, mode), scales: r.bytes(), qh: r.bytes(), qs: r.bytes() })
        }
        GgmlType::Q6_K => {
            let b = |r: &mut Rng| BlockQ6K {
                ql: r.bytes(),
                qh: r.bytes(),
                scales: bytemuck::cast(r.bytes::<16>()),
                d: sc16(r, mode),
            };
            blocks!(b(r))
        }
        GgmlType::IQ4_NL => blocks!(BlockIQ4NL { d: sc16(r, mode), qs: r.bytes() }),
        GgmlType::IQ4_XS => blocks!(BlockIQ4XS {
            d: sc16(r, mode),
            scales_h: u16::from_le_bytes(r.bytes()),
            scales_l: r.bytes(),
            qs: r.bytes()
        }),
        GgmlType::Q1_0 => blocks!(BlockQ1_0 { d: sc16(r, mode), qs: r.bytes() }),
        GgmlType::Q2_0 => blocks!(BlockQ2_0 { d: sc16(r, mode), qs: r.bytes() }),
        GgmlType::TQ1_0 => blocks!(BlockTQ1_0 { qs: r.bytes(), qh: r.bytes(), d: sc16(r, mode) }),
        GgmlType::TQ2_0 => blocks!(BlockTQ2_0 { qs: r.bytes(), d: sc16(r, mode) }),
        GgmlType::MXFP4 => blocks!(BlockMXFP4 {
            e: match mode {
                Mode::Unit => 128,
                Mode::Random => 100 + r.byte() % 50,
            },
            qs: r.bytes()
        }),
        GgmlType::IQ3_XXS => blocks!(BlockIQ3XXS { d: sc16(r, mode), qs: r.bytes() }),
        GgmlType::IQ3_S => {
            blocks!(BlockIQ3S { d: sc16(r, mode), qs: r.bytes(), qh: r.bytes(), signs: r.bytes(), scales: r.bytes() })
        }
        GgmlType::IQ2_S => {
            blocks!(BlockIQ2S { d: sc16(r, mode), qs: r.bytes(), qh: r.bytes(), scales: r.bytes() })
        }
        GgmlType::IQ2_XXS => blocks!(BlockIQ2XXS { d: sc16(r, mode), qs: r.bytes() }),
        GgmlType::IQ2_XS => blocks!(BlockIQ2XS { d: sc16(r, mode), qs: r.bytes(), scales: r.bytes() }),
        GgmlType::IQ1_S => blocks!(BlockIQ1S { d: sc16(r, mode), qs: r.bytes(), qh: bytemuck::cast(r.bytes::<16>()) }),
        GgmlType::IQ1_M => {
            let b = |r: &mut Rng| {
                // The f16 scale lives in the top nibbles of the 4 scale words.
                let (d, mut scales) = (sc16(r, mode).to_bits(), r.bytes::<8>());
                for i in 0..4 {
                    scales[2 * i + 1] = (scales[2 * i + 1] & 0x0F) | ((((d >> (4 * i)) & 0xF) as u8) << 4);
                }
                BlockIQ1M { qs: r.bytes(), qh: r.bytes(), scales }
            };
            blocks!(b(r))
        }
        _ => unreachable!("{ty} is not a weight type"),
    }
}

/// Random activation blocks of type `ty` covering `n` values.
fn activations(ty: GgmlType, n: usize, r: &mut Rng, mode: Mode) -> Vec<u8> {
    let lim = act_lim(mode);
    let nb = n / ty.block_size();
    let levels = |r: &mut Rng| -> [i8; 32] { std::array::from_fn(|_| r.level(lim)) };
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => weights(ty, n, r, mode),
        GgmlType::Q8_0 => bytes_of(&(0..nb).map(|_| BlockQ8_0 { d: sc16(r, mode), qs: levels(r) }).collect::<Vec<_>>()),
        GgmlType::Q8_1 => bytes_of(
            &(0..nb)
                .map(|_| {
                    let (d, qs) = (sc16(r, mode), levels(r));
                    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
                    BlockQ8_1 { d, s: f16::from_f32(d.to_f32() * sum as f32), qs }
                })
                .collect::<Vec<_>>(),
        ),
        GgmlType::Q8_K => bytes_of(
            &(0..nb)
                .map(|_| {
                    let d = match mode {
                        Mode::Unit => 1.0,
                        Mode::Random => r.scale(),
                    };
                    let qs: [i8; 256] = std::array::from_fn(|_| r.level(lim));
                    let bsums = std::array::from_fn(|j| qs[16 * j..16 * j + 16].iter().map(|&q| q as i16).sum());
                    BlockQ8K { d, qs, bsums }
                })
                .collect::<Vec<_>>(),
        ),
        _ => unreachable!("{ty} is not an activation type"),
    }
}

fn simd_paths() -> Vec<Isa> {
    let v: Vec<Isa> = Isa::ALL.iter().copied().filter(|&i| i != Isa::Scalar && i.available()).collect();
    if v.is_empty() {
        eprintln!("no SIMD path available on this CPU: only the scalar path is checked");
    }
    v
}

fn dequantized(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut v = vec![0f32; n];
    quant::dequantize_row(ty, bytes, &mut v).unwrap();
    v
}

#[test]
fn simd_integer_sums_equal_scalar_exactly() {
    for &ty in VEC_DOT_TYPES.iter().filter(|t| t.block_size() > 1) {
        let aty = quant::vec_dot_type(ty).unwrap();
        for seed in 0..40u64 {
            let mut r = Rng::new(seed * 1000 + ty.id() as u64);
            let n = 256 * (1 + seed as usize % 2);
            let (w, a) = (weights(ty, n, &mut r, Mode::Unit), activations(aty, n, &mut r, Mode::Unit));
            let want = vec_dot_with(Isa::Scalar, ty, n, &w, &a).unwrap();
            // IQ3_XXS's and the IQ2 types' dot products are a quarter / an eighth of their integer sums.
            // IQ1_S's and IQ1_M's are their integer sums plus an eighth of their shift sums.
            let q = match ty {
                GgmlType::IQ3_XXS => 4.0,
                GgmlType::IQ2_S | GgmlType::IQ2_XXS | GgmlType::IQ2_XS | GgmlType::IQ1_S | GgmlType::IQ1_M => 8.0,
                _ => 1.0,
            };
            assert_eq!(want * q, (want * q).round(), "{ty}: unit-scale result is not an integer");
            for isa in simd_paths() {
                let got = vec_dot_with(isa, ty, n, &w, &a).unwrap();
                assert_eq!(got, want, "{ty} {}: seed {seed}", isa.name());
            }
        }
    }
}

#[test]
fn simd_equals_scalar_within_rounding() {
    for &ty in VEC_DOT_TYPES {
        let aty = quant::vec_dot_type(ty).unwrap();
        for seed in 0..12u64 {
            let mut r = Rng::new(seed * 7919 + ty.id() as u64);
            // Lengths with and without a float tail (32-value chunks).
            let n = if ty.block_size() == 1 { 4096 + 17 * seed as usize } else { 256 * (1 + seed as usize) };
            let (w, a) = (weights(ty, n, &mut r, Mode::Random), activations(aty, n, &mut r, Mode::Random));
            let (wd, ad) = (dequantized(ty, &w, n), dequantized(aty, &a, n));
            let mag: f64 = wd.iter().zip(&ad).map(|(&p, &q)| (p as f64 * q as f64).abs()).sum();
            let want = vec_dot_with(Isa::Scalar, ty, n, &w, &a).unwrap() as f64;
            for isa in simd_paths() {
                let got = vec_dot_with(isa, ty, n, &w, &a).unwrap() as f64;
                assert!(
                    (got - want).abs() <= 2e-6 * mag + 1e-30,
                    "{ty} {}: seed {seed}: {got} vs scalar {want} (Σ|w·a| {mag})",
                    isa.name()
                );
            }
        }
    }
}

/// The batch dot products (tiled GEMM, tinyBLAS) of the k-quants and the
/// IQ4 and IQ3 types: every SIMD path
/// gives the scalar twin's bits, on random blocks with random scales, and
/// the result is the dot product of the dequantized operands within
/// rounding.
#[test]
fn batch_dot_simd_equals_scalar_exactly() {
    let mut checked = 0;
    for &ty in VEC_DOT_TYPES {
        let aty = quant::vec_dot_type(ty).unwrap();
        for seed in 0..12u64 {
            let mut r = Rng::new(seed * 104_729 + ty.id() as u64);
            let n = 256 * (1 + seed as usize);
            let (w, a) = (weights(ty, n, &mut r, Mode::Random), activations(aty, n, &mut r, Mode::Random));
            let Some(want) = quant::batch_dot_with(Isa::Scalar, ty, n, &w, &a).unwrap() else { continue };
            checked += 1;
            let (wd, ad) = (dequantized(ty, &w, n), dequantized(aty, &a, n));
            let exact: f64 = wd.iter().zip(&ad).map(|(&p, &q)| p as f64 * q as f64).sum();
            let mag: f64 = wd.iter().zip(&ad).map(|(&p, &q)| (p as f64 * q as f64).abs()).sum();
            assert!((want as f64 - exact).abs() <= 2e-6 * mag + 1e-30, "{ty}: seed {seed}: {want} vs {exact}");
            for isa in simd_paths() {
                let got = quant::batch_dot_with(isa, ty, n, &w, &a).unwrap().unwrap();
                assert_eq!(got.to_bits(), want.to_bits(), "{ty} {}: seed {seed}", isa.name());
            }
        }
    }
    assert_eq!(
        checked,
        14 * 12,
        "the five k-quants, IQ4_NL, IQ4_XS, IQ3_XXS, IQ3_S, the three IQ2 types, IQ1_S and IQ1_M have a batch dot product"
    );
}

/// The AVX-512 VNNI dot products (Q2_K … Q6_K, IQ3, IQ2, IQ1) give the AVX2
/// kernels' bits (ggml's), on random blocks with random scales.
#[test]
fn vnni_dot_equals_avx2_exactly() {
    if !Isa::Avx2.available() || !quant::simd::avx512_vnni_detected() || std::env::var_os("QUANTMIX_SIMD").is_some() {
        eprintln!("no AVX-512 VNNI here (or QUANTMIX_SIMD set): the VNNI dot products are not checked");
        return;
    }
    let mut checked = Vec::new();
    for &ty in VEC_DOT_TYPES {
        let aty = quant::vec_dot_type(ty).unwrap();
        for seed in 0..24u64 {
            let mut r = Rng::new(seed * 15_485_863 + ty.id() as u64);
            let n = 256 * (1 + seed as usize % 12);
            let mode = if seed % 3 == 0 { Mode::Unit } else { Mode::Random };
            let (w, a) = (weights(ty, n, &mut r, mode), activations(aty, n, &mut r, mode));
            let Some(got) = quant::vec_dot_vnni_with(ty, n, &w, &a).unwrap() else { continue };
            let want = vec_dot_with(Isa::Avx2, ty, n, &w, &a).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{ty}: seed {seed}: {got} vs AVX2 {want}");
            if seed == 0 {
                checked.push(ty);
            }
        }
    }
    assert_eq!(
        checked,
        [
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
            GgmlType::IQ3_XXS,
            GgmlType::IQ3_S,
            GgmlType::IQ2_S,
            GgmlType::IQ2_XXS,
            GgmlType::IQ2_XS,
            GgmlType::IQ1_S,
            GgmlType::IQ1_M
        ]
    );
}

#[test]
fn scalar_equals_dot_of_dequantized() {
    for &ty in VEC_DOT_TYPES {
        let aty = quant::vec_dot_type(ty).unwrap();
        for seed in 0..6u64 {
            let mut r = Rng::new(seed * 104_729 + ty.id() as u64);
            let n = 1024;
            let (w, a) = (weights(ty, n, &mut r, Mode::Random), activations(aty, n, &mut r, Mode::Random));
            let (wd, ad) = (dequantized(ty, &w, n), dequantized(aty, &a, n));
            let want: f64 = wd.iter().zip(&ad).map(|(&p, &q)| p as f64 * q as f64).sum();
            let mag: f64 = wd.iter().zip(&ad).map(|(&p, &q)| (p as f64 * q as f64).abs()).sum();
            // Q4_1/Q5_1 use the activation's stored `s = d·Σq`, rounded to
            // f16, for the minimum term: allow for its rounding (≤ 2⁻¹¹ of
            // |m·d·Σq| per block, bounded by |m|·|d|·Σ|q|).
            let extra: f64 = if aty == GgmlType::Q8_1 {
                let (xb, yb): (Vec<u8>, Vec<u8>) = (w.clone(), a.clone());
                let bx = ty.type_size();
                (0..n / 32)
                    .map(|i| {
                        let m = f16::from_le_bytes([xb[i * bx + 2], xb[i * bx + 3]]).to_f32() as f64;
                        let s = f16::from_le_bytes([yb[i * 36 + 2], yb[i * 36 + 3]]).to_f32() as f64;
                        (m * s).abs() * 1e-3
                    })
                    .sum()
            } else {
                0.0
            };
            let got = vec_dot_with(Isa::Scalar, ty, n, &w, &a).unwrap() as f64;
            assert!(
                (got - want).abs() <= 2e-6 * mag + extra + 1e-30,
                "{ty}: seed {seed}: scalar {got} vs dequantized {want} (Σ|w·a| {mag})"
            );
        }
    }
}

#[test]
fn vec_dot_with_rejects_bad_input() {
    let w = vec![0u8; 18];
    let a = vec![0u8; 34];
    assert!(vec_dot_with(Isa::Scalar, GgmlType::Q4_0, 32, &w, &a).is_ok());
    assert!(vec_dot_with(Isa::Scalar, GgmlType::Q4_0, 32, &w[..17], &a).is_err());
    assert!(vec_dot_with(Isa::Scalar, GgmlType::Q4_0, 31, &w, &a).is_err());
    assert!(vec_dot_with(Isa::Scalar, GgmlType::Q4_0, 32, &w, &a[..33]).is_err());
    assert!(vec_dot_with(Isa::Scalar, GgmlType::NVFP4, 256, &[0; 144], &[0; 292]).is_err());
}

/// The float kernels' summation order is pinned by a scalar twin
/// (`dot_lanes`): the AVX2 dot product and the AVX-512 tile kernels that the
/// matrix product runs for several tokens give exactly its bits, so the
/// forward pass computes the same numbers whichever kernel runs.
#[test]
fn float_kernels_equal_their_scalar_twin_exactly() {
    use quantmix::quant::float::dot::scalar::dot_lanes;
    use quantmix::quant::matmul::{matmul, Weights};
    if !Isa::Avx2.available() {
        eprintln!("no AVX2 on this CPU: the float kernels are not checked");
        return;
    }
    if !quant::simd::avx512_detected() {
        eprintln!("no AVX-512 on this CPU: the tile kernels are not checked (the AVX2 dot product is)");
    }
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for (seed, (rows, n, tokens)) in
            [(7, 96, 5), (5, 576, 13), (11, 4096 + 17, 6), (3, 40, 2), (1, 31, 9)].into_iter().enumerate()
        {
            let mut r = Rng::new(seed as u64 * 31 + ty.id() as u64);
            let wf: Vec<f32> = (0..rows * n).map(|_| r.unit() * 3.0).collect();
            let xf: Vec<f32> = (0..tokens * n).map(|_| r.unit()).collect();
            let (mut w, mut x) = (vec![0u8; rows * n * ty.type_size()], vec![0u8; tokens * n * ty.type_size()]);
            quant::quantize_rows(ty, &wf, n, None, &mut w).unwrap();
            quant::quantize_rows(ty, &xf, n, None, &mut x).unwrap();
            let twin = |a: &[u8], b: &[u8]| match ty {
                GgmlType::F32 => dot_lanes::<f32>(bytemuck::cast_slice(a), bytemuck::cast_slice(b)),
                GgmlType::F16 => dot_lanes::<f16>(bytemuck::cast_slice(a), bytemuck::cast_slice(b)),
                _ => dot_lanes::<bf16>(bytemuck::cast_slice(a), bytemuck::cast_slice(b)),
            };
            // The matrix product of all tokens (tile kernels where AVX-512 is),
            // against the twin and the AVX2 dot product, output by output.
            let mut out = vec![f32::NAN; rows * tokens];
            let back: Vec<f32> = {
                let mut v = vec![0f32; tokens * n];
                quant::dequantize_rows(ty, &x, n, &mut v).unwrap();
                v
            };
            matmul(&Weights::new(ty, rows, n, &w).unwrap(), &back, &mut out).unwrap();
            let rb = n * ty.type_size();
            for t in 0..tokens {
                let xa = &x[t * rb..(t + 1) * rb];
                for row in 0..rows {
                    let wr = &w[row * rb..(row + 1) * rb];
                    let want = twin(wr, xa);
                    let avx2 = vec_dot_with(Isa::Avx2, ty, n, wr, xa).unwrap();
                    assert_eq!(avx2.to_bits(), want.to_bits(), "{ty} AVX2 dot, n={n} row {row} token {t}");
                    assert_eq!(out[t * rows + row].to_bits(), want.to_bits(), "{ty} matmul, n={n} row {row} token {t}");
                }
            }
        }
    }
}
