//! Every weight type's dot product with its activation type equals the f32
//! dot product of the dequantized operands (the integer parts are exact, so
//! only float rounding of the block scales may differ).

mod common;

use quantmix::gguf::GgmlType;
use quantmix::quant;

/// Seeded test data, uniform in [-1, 1).
fn data(seed: u64, n: usize) -> Vec<f32> {
    common::uniform01(seed, n).map(|u| (u - 0.5) * 2.0).collect()
}

const WEIGHT_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::Q1_0,
    GgmlType::Q2_0,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::MXFP4,
    GgmlType::IQ3_XXS,
    GgmlType::IQ3_S,
    GgmlType::IQ2_S,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ1_S,
    GgmlType::IQ1_M,
];

fn quantized(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; ty.row_bytes(x.len() as u64).unwrap() as usize];
    // The types ggml makes only with an importance vector get a flat one.
    let ones = vec![1.0; x.len()];
    let imatrix = quant::caps(ty).requires_imatrix.then_some(&ones[..]);
    quant::quantize_row(ty, x, &mut q, imatrix).unwrap();
    q
}

fn dequantized(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut x = vec![0f32; n];
    quant::dequantize_row(ty, q, &mut x).unwrap();
    x
}

#[test]
fn vec_dot_equals_dot_of_dequantized() {
    let n = 1024;
    for (k, &ty) in WEIGHT_TYPES.iter().enumerate() {
        let aty = quant::vec_dot_type(ty).unwrap();
        for seed in 0..8u64 {
            let w = quantized(ty, &data(seed * 31 + k as u64, n));
            let a = quantized(aty, &data(seed * 17 + 1000 + k as u64, n));
            let got = quant::vec_dot(ty, n, &w, &a).unwrap() as f64;
            let (wd, ad) = (dequantized(ty, &w, n), dequantized(aty, &a, n));
            let want: f64 = wd.iter().zip(&ad).map(|(&p, &q)| p as f64 * q as f64).sum();
            let scale: f64 = wd.iter().zip(&ad).map(|(&p, &q)| (p as f64 * q as f64).abs()).sum();
            // Q8_1 carries `s = d·Σq` rounded to f16, which Q4_1/Q5_1 use for
            // their minimum term: allow for that rounding.
            let tol = if aty == GgmlType::Q8_1 { 1e-4 } else { 1e-5 };
            assert!(
                (got - want).abs() <= tol * scale + 1e-6,
                "{ty}·{aty} seed {seed}: vec_dot {got} vs dequantized dot {want} (scale {scale})"
            );
        }
    }
}

#[test]
fn vec_dot_approximates_the_f32_dot_product() {
    // With 8-bit activations the result stays close to the exact product of
    // the dequantized weights with the original activations.
    let n = 2048;
    for &ty in WEIGHT_TYPES {
        let aty = quant::vec_dot_type(ty).unwrap();
        let x = data(7, n);
        let w = quantized(ty, &data(3, n));
        let a = quantized(aty, &x);
        let wd = dequantized(ty, &w, n);
        let want: f64 = wd.iter().zip(&x).map(|(&p, &q)| p as f64 * q as f64).sum();
        let norm = (wd.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()
            * x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>())
        .sqrt();
        let got = quant::vec_dot(ty, n, &w, &a).unwrap() as f64;
        assert!((got - want).abs() <= 0.01 * norm, "{ty}: {got} vs {want} (norm {norm})");
    }
}
