//! The k-quants (Q2_K … Q6_K) against ggml 0.25.3:
//!
//! - quantization, row by row through the typed [`GgmlBlock`] API, must give
//!   exactly ggml's bytes for every golden case, with and without the case's
//!   importance vector; a mismatch names the file, case, row, super-block,
//!   field and first differing byte;
//! - dequantization of ggml's bytes must equal, bit for bit, what gguf-py's
//!   independent numpy decoder gives (needs the Python venv);
//! - the parallel byte-level [`quant::quantize_rows`] gives the same bytes
//!   with 1 thread and with several.
//!
//! Golden files: `fixtures/golden/ggml-quants.gguf`, `fixtures/golden/extra-quants.gguf`
//! (see fixtures/README.md), plus any files listed in `$QUANTMIX_GOLDEN_EXTRA`
//! (colon-separated; e.g. a large output of `tests/tools/gen_golden.py`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use quantmix::gguf::{GgmlType, GgufFile, MetaValue};
use quantmix::quant::{self, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, GgmlBlock};

/// The k-quant types, by tensor-name suffix in the golden files.
const KTYPES: &[(&str, GgmlType)] = &[
    ("q2_k", GgmlType::Q2_K),
    ("q3_k", GgmlType::Q3_K),
    ("q4_k", GgmlType::Q4_K),
    ("q5_k", GgmlType::Q5_K),
    ("q6_k", GgmlType::Q6_K),
];

/// Byte ranges of the fields of each block layout, to name the field a
/// mismatch is in.
fn field_at(ty: GgmlType, off: usize) -> &'static str {
    let fields: &[(&str, usize)] = match ty {
        GgmlType::Q2_K => &[("scales", 16), ("qs", 64), ("d", 2), ("dmin", 2)],
        GgmlType::Q3_K => &[("hmask", 32), ("qs", 64), ("scales", 12), ("d", 2)],
        GgmlType::Q4_K => &[("d", 2), ("dmin", 2), ("scales", 12), ("qs", 128)],
        GgmlType::Q5_K => &[("d", 2), ("dmin", 2), ("scales", 12), ("qh", 32), ("qs", 128)],
        GgmlType::Q6_K => &[("ql", 128), ("qh", 64), ("scales", 16), ("d", 2)],
        _ => &[],
    };
    let mut start = 0;
    for &(name, len) in fields {
        if off < start + len {
            return name;
        }
        start += len;
    }
    "?"
}

struct Case {
    file: PathBuf,
    name: String,
    n_per_row: usize,
    input: Vec<f32>,
    imatrix: Option<Vec<f32>>,
    /// ggml's bytes for each k-quant type present.
    outputs: Vec<(GgmlType, Vec<u8>)>,
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn case_names(g: &GgufFile) -> Vec<String> {
    match g.metadata().get("golden.cases") {
        Some(MetaValue::Array(_, v)) => v.iter().filter_map(|s| s.as_str().map(str::to_string)).collect(),
        other => panic!("{}: golden.cases missing or not an array: {other:?}", g.path().display()),
    }
}

fn golden_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["golden/ggml-quants.gguf", "golden/extra-quants.gguf"]
        .iter()
        .map(|p| common::fixture(p))
        .inspect(|p| assert!(p.exists(), "golden file {} missing", p.display()))
        .collect();
    if let Ok(extra) = std::env::var("QUANTMIX_GOLDEN_EXTRA") {
        files.extend(extra.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    files
}

fn load(path: &Path) -> Vec<Case> {
    let g = GgufFile::open(path).expect("golden file");
    case_names(&g)
        .into_iter()
        .map(|name| {
            let input = g.tensor(&format!("{name}.input")).expect("input tensor");
            let outputs = KTYPES
                .iter()
                .filter_map(|&(suffix, ty)| {
                    let t = g.tensor(&format!("{name}.{suffix}"))?;
                    assert_eq!(t.ty, ty, "{name}.{suffix} has the wrong type");
                    Some((ty, g.tensor_data(t).to_vec()))
                })
                .collect();
            Case {
                file: path.to_path_buf(),
                n_per_row: input.row_len() as usize,
                input: f32s(g.tensor_data(input)),
                imatrix: g.tensor(&format!("{name}.imatrix")).map(|t| f32s(g.tensor_data(t))),
                outputs,
                name,
            }
        })
        .collect()
}

/// Quantize every row of `case` to `B` and compare with `expected`; `None`
/// when identical, else a description of the first difference.
fn check<B: GgmlBlock>(case: &Case, expected: &[u8]) -> Option<String> {
    let n = case.n_per_row;
    let row_bytes = n / B::BLCK_SIZE * std::mem::size_of::<B>();
    assert_eq!(expected.len(), case.input.len() / n * row_bytes, "{}: {} size", case.name, B::TYPE.name());
    let mut blocks = vec![B::zeroed(); n / B::BLCK_SIZE];
    let mut n_bad_rows = 0;
    let mut first = None;
    for (r, (x, want)) in case.input.chunks_exact(n).zip(expected.chunks_exact(row_bytes)).enumerate() {
        B::quantize_row(x, &mut blocks, case.imatrix.as_deref());
        let ours: &[u8] = bytemuck::cast_slice(&blocks);
        if let Some(i) = ours.iter().zip(want).position(|(a, b)| a != b) {
            n_bad_rows += 1;
            if first.is_none() {
                let (blk, off) = (i / std::mem::size_of::<B>(), i % std::mem::size_of::<B>());
                first = Some(format!(
                    "row {r}, super-block {blk}, byte {off} ({}): ours {:#04x} ggml {:#04x}",
                    field_at(B::TYPE, off),
                    ours[i],
                    want[i]
                ));
            }
        }
    }
    first.map(|f| {
        format!(
            "{}: {}.{}{}: {n_bad_rows} of {} rows differ; first at {f}",
            case.file.display(),
            case.name,
            B::TYPE.name(),
            if case.imatrix.is_some() { " (imatrix)" } else { "" },
            case.input.len() / n
        )
    })
}

fn check_type(ty: GgmlType, case: &Case, expected: &[u8]) -> Option<String> {
    match ty {
        GgmlType::Q2_K => check::<BlockQ2K>(case, expected),
        GgmlType::Q3_K => check::<BlockQ3K>(case, expected),
        GgmlType::Q4_K => check::<BlockQ4K>(case, expected),
        GgmlType::Q5_K => check::<BlockQ5K>(case, expected),
        GgmlType::Q6_K => check::<BlockQ6K>(case, expected),
        _ => unreachable!("not a k-quant: {ty:?}"),
    }
}

#[test]
fn kquant_bytes_match_ggml() {
    // (type, with imatrix) -> (identical tensors, tensors, rows)
    let mut tally: BTreeMap<(&str, bool), (usize, usize, usize)> = BTreeMap::new();
    let mut bad = Vec::new();
    for file in golden_files() {
        for case in load(&file) {
            for (ty, expected) in &case.outputs {
                let entry = tally.entry((ty.name(), case.imatrix.is_some())).or_default();
                entry.1 += 1;
                entry.2 += case.input.len() / case.n_per_row;
                match check_type(*ty, &case, expected) {
                    None => entry.0 += 1,
                    Some(msg) => bad.push(msg),
                }
            }
        }
    }
    for ((ty, imat), (ok, total, rows)) in &tally {
        eprintln!(
            "{ty:>5} {:<14} {ok}/{total} tensors identical ({rows} rows)",
            if *imat { "with imatrix" } else { "no imatrix" }
        );
    }
    assert!(bad.is_empty(), "{} k-quant tensors differ from ggml:\n{}", bad.len(), bad.join("\n"));
    // Both golden files hold every k-quant type with and without imatrix.
    for &(_, ty) in KTYPES {
        for imat in [false, true] {
            let (ok, _, _) = tally.get(&(ty.name(), imat)).copied().unwrap_or_default();
            assert!(ok >= 10, "{} (imatrix {imat}): only {ok} golden tensors checked", ty.name());
        }
    }
}

/// Independent decode: gguf-py's numpy dequantizers (same float operation
/// order as ggml's `dequantize_row_*`), run on ggml's golden bytes.
const GGUF_PY_DEQUANT: &str = r#"
import sys, numpy as np, gguf
out = open(sys.argv[1], "wb")
for path in sys.argv[2:]:
    r = gguf.GGUFReader(path)
    f = r.fields["golden.cases"]
    cases = [bytes(f.parts[i]).decode() for i in f.data]
    tensors = {t.name: t for t in r.tensors}
    for case in cases:
        for suffix in ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k"):
            t = tensors.get(f"{case}.{suffix}")
            if t is not None:
                out.write(gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype("<f4").tobytes())
out.close()
"#;

#[test]
fn kquant_dequantize_matches_gguf_py() {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let out = dir.path().join("dequant.f32");
    let files = golden_files();
    let status = std::process::Command::new(py)
        .arg("-c")
        .arg(GGUF_PY_DEQUANT)
        .arg(&out)
        .args(&files)
        .status()
        .expect("run python");
    assert!(status.success(), "gguf-py dequantization failed");
    let theirs = f32s(&std::fs::read(&out).unwrap());
    let mut pos = 0;
    let (mut n_tensors, mut n_values) = (0, 0);
    for file in &files {
        for case in load(file) {
            for (ty, bytes) in &case.outputs {
                let mut ours = vec![0f32; case.input.len()];
                quant::dequantize_rows(*ty, bytes, case.n_per_row, &mut ours).expect("dequantize");
                let want = &theirs[pos..pos + ours.len()];
                pos += ours.len();
                // Bit equality, except that any NaN matches any NaN.
                let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                if let Some(i) = ours.iter().zip(want).position(|(&a, &b)| !same(a, b)) {
                    panic!(
                        "{}: {}.{} value {i} (row {}, column {}): ours {} gguf-py {}",
                        file.display(),
                        case.name,
                        ty.name(),
                        i / case.n_per_row,
                        i % case.n_per_row,
                        ours[i],
                        want[i]
                    );
                }
                n_tensors += 1;
                n_values += ours.len();
            }
        }
    }
    assert_eq!(pos, theirs.len(), "gguf-py decoded a different set of tensors");
    assert!(n_tensors >= 100, "only {n_tensors} tensors compared");
    eprintln!("{n_tensors} k-quant tensors ({n_values} values) dequantize exactly as gguf-py does");
}

#[test]
fn quantize_rows_is_independent_of_thread_count() {
    let cases: Vec<Case> = load(&common::fixture("golden/extra-quants.gguf"))
        .into_iter()
        .filter(|c| c.n_per_row % 256 == 0 && c.input.len() / c.n_per_row >= 8)
        .collect();
    let run = |threads: usize, ty: GgmlType, c: &Case| {
        let row_bytes = ty.row_bytes(c.n_per_row as u64).unwrap() as usize;
        let mut dst = vec![0u8; c.input.len() / c.n_per_row * row_bytes];
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| quant::quantize_rows(ty, &c.input, c.n_per_row, c.imatrix.as_deref(), &mut dst))
            .expect("quantize_rows");
        dst
    };
    let mut checked = 0;
    for c in &cases {
        for ty in [GgmlType::Q4_K, GgmlType::Q3_K] {
            let one = run(1, ty, c);
            let many = run(4, ty, c);
            assert!(one == many, "{}.{}: 1 and 4 threads give different bytes", c.name, ty.name());
            if let Some((_, expected)) = c.outputs.iter().find(|(t, _)| *t == ty) {
                assert!(&one == expected, "{}.{}: quantize_rows differs from ggml", c.name, ty.name());
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} tensors checked");
}
