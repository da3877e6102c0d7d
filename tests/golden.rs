//! Bit-exactness against ggml: for every golden case and every type, our
//! quantizer must produce exactly the bytes `ggml_quantize_chunk` produced
//! (with the case's importance vector when it has one), and our dequantizer
//! must decode ggml's bytes bit for bit as gguf-py's numpy decoder does
//! (k-quant decoding is checked the same way in `golden_kquants.rs`).
//! Every `fixtures/golden/*.gguf` is checked; IQ4_NL and IQ4_XS are only in `extra-quants.gguf`,
//! IQ3_XXS and IQ3_S only in `iq3-quants.gguf`, IQ2_S only in `iq2s-quants.gguf`,
//! IQ2_XXS and IQ2_XS only in `iq2-quants.gguf`, IQ1_S and IQ1_M only in `iq1-quants.gguf`.
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
    ("iq4_nl", GgmlType::IQ4_NL),
    ("iq4_xs", GgmlType::IQ4_XS),
    ("q1_0", GgmlType::Q1_0),
    ("q2_0", GgmlType::Q2_0),
    ("tq1_0", GgmlType::TQ1_0),
    ("tq2_0", GgmlType::TQ2_0),
    ("mxfp4", GgmlType::MXFP4),
    ("iq3_xxs", GgmlType::IQ3_XXS),
    ("iq3_s", GgmlType::IQ3_S),
    ("iq2_s", GgmlType::IQ2_S),
    ("iq2_xxs", GgmlType::IQ2_XXS),
    ("iq2_xs", GgmlType::IQ2_XS),
    ("iq1_s", GgmlType::IQ1_S),
    ("iq1_m", GgmlType::IQ1_M),
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
        }
    }
    (checked, bad)
}

/// Every golden file in `fixtures/golden/` (one per generator run, see fixtures/README.md).
fn golden_files() -> Vec<std::path::PathBuf> {
    let dir = common::fixture("golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    files.sort();
    files
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

#[test]
fn iq4_types_match_ggml() {
    // Both types in every case whose row length fits, half of them with an
    // importance vector (extra-quants.gguf only: 37 cases for IQ4_NL, 31 for IQ4_XS).
    run(|t| matches!(t, GgmlType::IQ4_NL | GgmlType::IQ4_XS), 68);
}

#[test]
fn low_bit_types_match_ggml() {
    // lowbit-quants.gguf: every case whose row length fits (all 37 for Q2_0
    // and MXFP4, 32-value rows aside), with and without importance vectors
    // (ggml ignores them for these five types).
    run(|t| matches!(t, GgmlType::Q1_0 | GgmlType::Q2_0 | GgmlType::TQ1_0 | GgmlType::TQ2_0 | GgmlType::MXFP4), 150);
}

#[test]
fn iq3_types_match_ggml() {
    // Both types in every case of iq3-quants.gguf whose row length fits (31 cases,
    // 15 with an importance vector); `extreme` and `extreme_imat` are left out
    // because ggml aborts on them (tests/tools/gen_golden.py).
    run(|t| matches!(t, GgmlType::IQ3_XXS | GgmlType::IQ3_S), 62);
}

#[test]
fn iq2_s_matches_ggml() {
    // Every case of iq2s-quants.gguf whose row length is a multiple of 256 but
    // `extreme` and `extreme_imat`, on which ggml aborts (tests/tools/gen_golden.py).
    run(|t| t == GgmlType::IQ2_S, 31);
}

#[test]
fn iq2_xxs_and_iq2_xs_match_ggml() {
    // iq2-quants.gguf: ggml quantizes these types only with an importance
    // vector, so the 14 cases with one whose row length is a multiple of 256
    // (`extreme_imat` aside, on which ggml aborts), for each type.
    run(|t| matches!(t, GgmlType::IQ2_XXS | GgmlType::IQ2_XS), 28);
}

#[test]
fn iq1_types_match_ggml() {
    // iq1-quants.gguf: IQ1_M in every case whose row length is a multiple of
    // 256 but `extreme`, on which ggml aborts (32), IQ1_S in those of them
    // with an importance vector (ggml requires one; 15, `extreme_imat`
    // included).
    run(|t| matches!(t, GgmlType::IQ1_S | GgmlType::IQ1_M), 47);
}

/// Independent decode of the legacy, float, IQ1, IQ2, IQ3, IQ4, ternary and MXFP4 golden tensors: gguf-py's numpy
/// dequantizers (same float operation order as ggml's `dequantize_row_*`).
const GGUF_PY_DEQUANT: &str = r#"
import sys, numpy as np, gguf
out = open(sys.argv[1], "wb")
suffixes = sys.argv[2].split(",")
for path in sys.argv[3:]:
    r = gguf.GGUFReader(path)
    f = r.fields["golden.cases"]
    cases = [bytes(f.parts[i]).decode() for i in f.data]
    tensors = {t.name: t for t in r.tensors}
    for case in cases:
        for suffix in suffixes:
            t = tensors.get(f"{case}.{suffix}")
            if t is not None:
                out.write(gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype("<f4").tobytes())
out.close()
"#;

#[test]
fn legacy_and_float_dequantize_match_gguf_py() {
    let Some(py) = common::python() else { return };
    // gguf-py 0.19.0 has no Q1_0/Q2_0 decoder: those are checked against ggml below.
    let types: Vec<(&str, GgmlType)> = TYPES
        .iter()
        .copied()
        .filter(|(_, t)| !t.is_k_quant() && !matches!(t, GgmlType::Q1_0 | GgmlType::Q2_0))
        .collect();
    let suffixes: Vec<&str> = types.iter().map(|(s, _)| *s).collect();
    let files = golden_files();
    let dir = common::tempdir();
    let out = dir.path().join("dequant.f32");
    let status = std::process::Command::new(py)
        .arg("-c")
        .arg(GGUF_PY_DEQUANT)
        .arg(&out)
        .arg(suffixes.join(","))
        .args(&files)
        .status()
        .expect("run python");
    assert!(status.success(), "gguf-py dequantization failed");
    let theirs = f32s(&std::fs::read(&out).unwrap());
    let (mut pos, mut n_tensors, mut n_values) = (0, 0, 0);
    // Bit equality, except that any NaN matches any NaN.
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    for file in &files {
        let g = GgufFile::open(file).expect("golden file");
        let cases: Vec<String> = match g.metadata().get("golden.cases") {
            Some(MetaValue::Array(_, v)) => v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
            other => panic!("golden.cases missing or not an array: {other:?}"),
        };
        for case in &cases {
            let input = g.tensor(&format!("{case}.input")).expect("input tensor");
            let n = input.row_len() as usize;
            for &(suffix, ty) in &types {
                let Some(t) = g.tensor(&format!("{case}.{suffix}")) else { continue };
                let mut ours = vec![0f32; t.n_elements() as usize];
                quant::dequantize_rows(ty, g.tensor_data(t), n, &mut ours).expect("dequantize");
                let want = &theirs[pos..pos + ours.len()];
                pos += ours.len();
                if let Some(i) = ours.iter().zip(want).position(|(&a, &b)| !same(a, b)) {
                    panic!(
                        "{}: {case}.{suffix} value {i} (row {}, column {}): ours {} ({:#010x}) gguf-py {} ({:#010x})",
                        file.display(),
                        i / n,
                        i % n,
                        ours[i],
                        ours[i].to_bits(),
                        want[i],
                        want[i].to_bits()
                    );
                }
                n_tensors += 1;
                n_values += ours.len();
            }
        }
    }
    assert_eq!(pos, theirs.len(), "gguf-py decoded a different set of tensors");
    assert!(n_tensors >= 200, "only {n_tensors} tensors compared");
    eprintln!(
        "{n_tensors} legacy/float/IQ1/IQ2/IQ3/IQ4/TQ/MXFP4 tensors ({n_values} values) dequantize exactly as gguf-py does"
    );
}

/// Q1_0 and Q2_0 golden tensors decode exactly as ggml's own `to_float`
/// (`dequantize_row_q1_0` / `_q2_0` of libggml-base, through
/// `tests/tools/ggml_cpu.py`).
#[test]
fn q1_0_and_q2_0_dequantize_match_ggml() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let mut jobs = Vec::new();
    let mut ours = Vec::new();
    for file in golden_files() {
        let g = GgufFile::open(&file).expect("golden file");
        for t in g.tensors() {
            let Some((case, suffix)) = t.name.rsplit_once('.') else { continue };
            let ty = match suffix {
                "q1_0" => GgmlType::Q1_0,
                "q2_0" => GgmlType::Q2_0,
                _ => continue,
            };
            let n = g.tensor(&format!("{case}.input")).expect("input").row_len() as usize;
            let data = g.tensor_data(t);
            let mut v = vec![0f32; data.len() / ty.type_size() * ty.block_size()];
            quant::dequantize_rows(ty, data, n, &mut v).expect("dequantize");
            let (inp, out) =
                (dir.path().join(format!("{}.in", jobs.len())), dir.path().join(format!("{}.out", jobs.len())));
            std::fs::write(&inp, data).unwrap();
            jobs.push(format!("to_float {} {n} {} {}", ty.id(), inp.display(), out.display()));
            ours.push((t.name.clone(), v, out));
        }
    }
    assert!(jobs.len() >= 60, "only {} Q1_0/Q2_0 golden tensors", jobs.len());
    common::ggml_cpu(&py, &jobs);
    for (name, v, out) in ours {
        let theirs = f32s(&std::fs::read(out).unwrap());
        assert_eq!(v.len(), theirs.len(), "{name}");
        if let Some(i) = v.iter().zip(&theirs).position(|(a, b)| a.to_bits() != b.to_bits()) {
            panic!("{name} value {i}: ours {} ggml {}", v[i], theirs[i]);
        }
    }
}
