//! Every SIMD activation quantizer (Q8_0, Q8_1, Q8_K: what the matrix
//! products quantize their inputs to) gives exactly the bytes of the scalar
//! reference, on inputs that reach every branch: ordinary values, ties of
//! the largest magnitude with either sign, all-zero blocks, subnormal
//! blocks whose inverse scale overflows, infinities and NaNs.

use quantmix::gguf::GgmlType;
use quantmix::quant::simd::Isa;
use quantmix::quant::{quantize_activations_with, QuantError};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

const TYPES: [GgmlType; 3] = [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K];

/// A row of `n` values of flavour `kind` (0..8).
fn row(kind: u64, n: usize, r: &mut Rng) -> Vec<f32> {
    let mut x: Vec<f32> = (0..n).map(|_| r.unit() * 3.0).collect();
    let at = |r: &mut Rng| (r.next() % n as u64) as usize;
    match kind {
        0 => {}
        // Ties of the largest magnitude, both signs: the first one sets Q8_K's sign.
        1 => {
            let (i, j) = (at(r), at(r));
            x[i] = 7.5;
            x[j] = -7.5;
        }
        2 => x.iter_mut().step_by(3).for_each(|v| *v = 0.0),
        // Whole blocks of zeros (and negative zeros).
        3 => x
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| (i / 32) % 2 == 0)
            .for_each(|(i, v)| *v = if i % 2 == 0 { 0.0 } else { -0.0 }),
        // Subnormal values: 127/amax overflows.
        4 => x.iter_mut().for_each(|v| *v *= 1e-39),
        5 => {
            let i = at(r);
            x[i] = f32::INFINITY;
            let j = at(r);
            x[j] = f32::NEG_INFINITY;
        }
        6 => {
            let i = at(r);
            x[i] = f32::NAN;
        }
        // Levels on exact halves (round half to even) and large values.
        _ => x.iter_mut().enumerate().for_each(|(i, v)| *v = if i % 7 == 0 { 127.0 } else { (i % 255) as f32 - 127.5 }),
    }
    x
}

fn quantized(isa: Isa, ty: GgmlType, x: &[f32]) -> Result<Vec<u8>, QuantError> {
    let mut out = vec![0xA5u8; x.len() / ty.block_size() * ty.type_size()];
    quantize_activations_with(isa, ty, x, &mut out)?;
    Ok(out)
}

#[test]
fn simd_activation_quantizers_equal_scalar_byte_for_byte() {
    if !Isa::Avx2.available() {
        eprintln!("no AVX2 on this CPU: nothing to compare");
        return;
    }
    for ty in TYPES {
        for seed in 0..400u64 {
            let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let n = 256 * (1 + seed as usize % 3);
            let x = row(seed % 8, n, &mut r);
            let want = quantized(Isa::Scalar, ty, &x).unwrap();
            let got = quantized(Isa::Avx2, ty, &x).unwrap_or_else(|e| panic!("{ty}: no AVX2 quantizer: {e}"));
            if got != want {
                let i = (0..want.len()).find(|&i| got[i] != want[i]).unwrap();
                panic!("{ty}: seed {seed} (kind {}): byte {i} is {:#04x}, scalar {:#04x}", seed % 8, got[i], want[i]);
            }
        }
    }
}

#[test]
fn activation_quantizer_paths_refuse_bad_input() {
    let x = vec![0.5f32; 256];
    let mut short = vec![0u8; 10];
    assert!(quantize_activations_with(Isa::Scalar, GgmlType::Q8_K, &x, &mut short).is_err());
    let mut out = vec![0u8; 256 / 32 * GgmlType::Q4_0.type_size()];
    assert!(
        quantize_activations_with(Isa::Scalar, GgmlType::Q4_0, &x, &mut out).is_err(),
        "Q4_0 is no activation type"
    );
}
