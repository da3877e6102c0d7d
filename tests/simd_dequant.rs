//! Every SIMD dequantizer gives exactly the bits of the scalar reference on
//! random valid blocks: any bit pattern of the level and scale bytes, with
//! every f16 (or f32, bf16) scale drawn from all finite values (zeros,
//! subnormals, negatives and the largest included). Bits are compared, so
//! even the sign of a zero must agree.

use bytemuck::Pod;
use half::{bf16, f16};
use quantmix::gguf::GgmlType;
use quantmix::quant::simd::Isa;
use quantmix::quant::{self, blocks::*, caps, dequantize_row_with, REGISTRY};

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
    /// Any finite f16, every bit pattern but infinities and NaNs.
    fn f16(&mut self) -> f16 {
        loop {
            let b = (self.next() >> 24) as u16;
            if (b >> 10) & 0x1F != 0x1F {
                return f16::from_bits(b);
            }
        }
    }
    fn bf16(&mut self) -> bf16 {
        loop {
            let b = (self.next() >> 24) as u16;
            if (b >> 7) & 0xFF != 0xFF {
                return bf16::from_bits(b);
            }
        }
    }
    fn f32(&mut self) -> f32 {
        loop {
            let v = f32::from_bits((self.next() >> 16) as u32);
            if v.is_finite() {
                return v;
            }
        }
    }
}

/// `nb` blocks of random bytes, their float fields then made finite by `fix`.
fn blocks<B: Pod>(nb: usize, r: &mut Rng, fix: impl Fn(&mut B, &mut Rng)) -> Vec<u8> {
    let v: Vec<B> = (0..nb)
        .map(|_| {
            let bytes: Vec<u8> = (0..std::mem::size_of::<B>()).map(|_| (r.next() >> 32) as u8).collect();
            let mut b: B = bytemuck::pod_read_unaligned(&bytes);
            fix(&mut b, r);
            b
        })
        .collect();
    bytemuck::cast_slice(&v).to_vec()
}

/// Random valid blocks of type `ty`, `nb` blocks.
fn random_blocks(ty: GgmlType, nb: usize, r: &mut Rng) -> Vec<u8> {
    match ty {
        GgmlType::F32 => blocks(nb, r, |b: &mut f32, r| *b = r.f32()),
        GgmlType::F16 => blocks(nb, r, |b: &mut f16, r| *b = r.f16()),
        GgmlType::BF16 => blocks(nb, r, |b: &mut bf16, r| *b = r.bf16()),
        GgmlType::Q4_0 => blocks(nb, r, |b: &mut BlockQ4_0, r| b.d = r.f16()),
        GgmlType::Q4_1 => blocks(nb, r, |b: &mut BlockQ4_1, r| (b.d, b.m) = (r.f16(), r.f16())),
        GgmlType::Q5_0 => blocks(nb, r, |b: &mut BlockQ5_0, r| b.d = r.f16()),
        GgmlType::Q5_1 => blocks(nb, r, |b: &mut BlockQ5_1, r| (b.d, b.m) = (r.f16(), r.f16())),
        GgmlType::Q8_0 => blocks(nb, r, |b: &mut BlockQ8_0, r| b.d = r.f16()),
        GgmlType::Q8_1 => blocks(nb, r, |b: &mut BlockQ8_1, r| (b.d, b.s) = (r.f16(), r.f16())),
        GgmlType::Q2_K => blocks(nb, r, |b: &mut BlockQ2K, r| (b.d, b.dmin) = (r.f16(), r.f16())),
        GgmlType::Q3_K => blocks(nb, r, |b: &mut BlockQ3K, r| b.d = r.f16()),
        GgmlType::Q4_K => blocks(nb, r, |b: &mut BlockQ4K, r| (b.d, b.dmin) = (r.f16(), r.f16())),
        GgmlType::Q5_K => blocks(nb, r, |b: &mut BlockQ5K, r| (b.d, b.dmin) = (r.f16(), r.f16())),
        GgmlType::Q6_K => blocks(nb, r, |b: &mut BlockQ6K, r| b.d = r.f16()),
        GgmlType::Q8_K => blocks(nb, r, |b: &mut BlockQ8K, r| b.d = r.f32()),
        GgmlType::IQ4_NL => blocks(nb, r, |b: &mut BlockIQ4NL, r| b.d = r.f16()),
        GgmlType::IQ4_XS => blocks(nb, r, |b: &mut BlockIQ4XS, r| b.d = r.f16()),
        GgmlType::Q1_0 => blocks(nb, r, |b: &mut BlockQ1_0, r| b.d = r.f16()),
        GgmlType::Q2_0 => blocks(nb, r, |b: &mut BlockQ2_0, r| b.d = r.f16()),
        GgmlType::TQ1_0 => blocks(nb, r, |b: &mut BlockTQ1_0, r| b.d = r.f16()),
        GgmlType::TQ2_0 => blocks(nb, r, |b: &mut BlockTQ2_0, r| b.d = r.f16()),
        GgmlType::MXFP4 => blocks(nb, r, |b: &mut BlockMXFP4, r| b.e = 1 + (r.f32().to_bits() % 250) as u8),
        GgmlType::IQ3_XXS => blocks(nb, r, |b: &mut BlockIQ3XXS, r| b.d = r.f16()),
        GgmlType::IQ3_S => blocks(nb, r, |b: &mut BlockIQ3S, r| b.d = r.f16()),
        GgmlType::IQ2_S => blocks(nb, r, |b: &mut BlockIQ2S, r| b.d = r.f16()),
        GgmlType::IQ2_XXS => blocks(nb, r, |b: &mut BlockIQ2XXS, r| b.d = r.f16()),
        GgmlType::IQ2_XS => blocks(nb, r, |b: &mut BlockIQ2XS, r| b.d = r.f16()),
        GgmlType::IQ1_S => blocks(nb, r, |b: &mut BlockIQ1S, r| b.d = r.f16()),
        GgmlType::IQ1_M => blocks(nb, r, |b: &mut BlockIQ1M, r| {
            // The f16 scale lives in the top nibbles of the 4 scale words.
            let d = r.f16().to_bits();
            for (i, w) in b.scales.chunks_exact_mut(2).enumerate() {
                let nib = ((d >> (4 * i)) & 0xF) as u8;
                w[1] = (w[1] & 0x0F) | (nib << 4);
            }
        }),
        _ => unreachable!("{ty} is not implemented"),
    }
}

fn simd_paths() -> Vec<Isa> {
    let v: Vec<Isa> = Isa::ALL.iter().copied().filter(|&i| i != Isa::Scalar && i.available()).collect();
    if v.is_empty() {
        eprintln!("no SIMD path available on this CPU: only the scalar path is checked");
    }
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn dequantized(isa: Isa, ty: GgmlType, w: &[u8], n: usize) -> Vec<f32> {
    // Start from NaN so that an unwritten value cannot pass.
    let mut v = vec![f32::NAN; n];
    dequantize_row_with(isa, ty, w, &mut v).unwrap();
    v
}

#[test]
fn the_slow_types_have_avx2_dequantizers() {
    if !cfg!(target_arch = "x86_64") {
        return;
    }
    use GgmlType::*;
    for ty in [F16, BF16, Q6_K, Q3_K, Q2_K, Q4_K, Q4_0, Q8_0, Q5_0, Q4_1, Q5_1, Q5_K, Q1_0, Q2_0, TQ1_0, TQ2_0, MXFP4] {
        assert!(caps(ty).dequantize_avx2 && caps(ty).dequantize_on(Isa::Avx2), "{ty}");
    }
}

#[test]
fn simd_dequantization_equals_scalar_bit_for_bit() {
    let mut checked = 0;
    for c in REGISTRY {
        let ty = c.ty;
        for isa in simd_paths().into_iter().filter(|&i| c.dequantize_on(i)) {
            for seed in 0..200u64 {
                let mut r = Rng::new(seed * 7919 + ty.id() as u64);
                // 1 to 9 blocks (256 to 2311 values for the float types: every
                // remainder of the 8-value steps).
                let nb = if ty.block_size() == 1 {
                    (1 + seed as usize % 9) * 256 + seed as usize % 8
                } else {
                    1 + seed as usize % 9
                };
                let n = nb * ty.block_size();
                let w = random_blocks(ty, nb, &mut r);
                let want = dequantized(Isa::Scalar, ty, &w, n);
                assert!(want.iter().all(|v| v.is_finite()), "{ty}: seed {seed}: non-finite scalar output");
                let got = dequantized(isa, ty, &w, n);
                if bits(&got) != bits(&want) {
                    let i = (0..n).find(|&i| got[i].to_bits() != want[i].to_bits()).unwrap();
                    panic!("{ty} {}: seed {seed}: value {i}: {} vs scalar {}", isa.name(), got[i], want[i]);
                }
            }
            checked += 1;
        }
    }
    if Isa::Avx2.available() {
        assert!(checked >= 7, "only {checked} SIMD dequantizers checked");
    }
}

#[test]
fn dispatching_dequantizer_equals_the_best_path() {
    // `dequantize_row` takes the best path (`Isa::best`, which
    // QUANTMIX_SIMD=scalar forces to scalar); either way, the same bits.
    for c in REGISTRY {
        let mut r = Rng::new(17 + c.ty.id() as u64);
        let nb = 4 * if c.ty.block_size() == 1 { 256 } else { 1 };
        let n = nb * c.ty.block_size();
        let w = random_blocks(c.ty, nb, &mut r);
        let mut got = vec![f32::NAN; n];
        quant::dequantize_row(c.ty, &w, &mut got).unwrap();
        assert_eq!(bits(&got), bits(&dequantized(Isa::Scalar, c.ty, &w, n)), "{}", c.ty);
        // Misaligned bytes take the copying path of the byte-level API.
        let mut shifted = vec![0u8; w.len() + 1];
        shifted[1..].copy_from_slice(&w);
        let mut got2 = vec![f32::NAN; n];
        quant::dequantize_row(c.ty, &shifted[1..], &mut got2).unwrap();
        assert_eq!(bits(&got2), bits(&got), "{} misaligned", c.ty);
    }
}

#[test]
fn dequantize_row_with_rejects_bad_input() {
    let w = vec![0u8; 22];
    let mut out = vec![0f32; 32];
    assert!(dequantize_row_with(Isa::Scalar, GgmlType::Q5_0, &w, &mut out).is_ok());
    assert!(dequantize_row_with(Isa::Scalar, GgmlType::Q5_0, &w[..21], &mut out).is_err());
    assert!(dequantize_row_with(Isa::Scalar, GgmlType::Q5_0, &w, &mut out[..31]).is_err());
    assert!(dequantize_row_with(Isa::Scalar, GgmlType::NVFP4, &[0; 144], &mut [0f32; 256]).is_err());
    // A type without an AVX2 dequantizer, or a CPU without AVX2: an error,
    // never a silent scalar fallback.
    for c in REGISTRY {
        let nb = if c.ty.block_size() == 1 { 8 } else { 1 };
        let (w, mut out) = (vec![0u8; nb * c.ty.type_size()], vec![0f32; nb * c.ty.block_size()]);
        let ok = dequantize_row_with(Isa::Avx2, c.ty, &w, &mut out).is_ok();
        assert_eq!(ok, c.dequantize_avx2 && Isa::Avx2.available(), "{}", c.ty);
    }
}
