//! read → write → read keeps metadata (order and values) and tensor bytes;
//! the writer's predicted size is exact; an unfinished write leaves nothing;
//! gguf-py (an independent reader) reads what we write.

mod common;

use quantmix::gguf::{gguf_file_size, GgufFile, GgufWriter, TensorSpec};
use std::path::Path;

fn rewrite(src: &Path, dst: &Path, chunked: bool) -> u64 {
    let g = GgufFile::open(src).unwrap();
    let specs: Vec<TensorSpec> =
        g.tensors().iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect();
    let align = g.metadata().get_u64("general.alignment").unwrap_or(32);
    let mut w = GgufWriter::create(dst, g.metadata(), &specs, align).unwrap();
    for t in g.tensors() {
        let data = g.tensor_data(t);
        if chunked {
            for c in data.chunks(1000) {
                w.write_tensor_chunk(c).unwrap();
            }
            w.end_tensor().unwrap();
        } else {
            w.write_tensor(data).unwrap();
        }
    }
    let n = w.finish().unwrap();
    assert_eq!(n, gguf_file_size(g.metadata(), &specs, align), "predicted size");
    assert_eq!(n, std::fs::metadata(dst).unwrap().len());
    n
}

fn assert_same(a: &Path, b: &Path) {
    let (x, y) = (GgufFile::open(a).unwrap(), GgufFile::open(b).unwrap());
    let xm: Vec<_> = x.metadata().iter().collect();
    let ym: Vec<_> = y.metadata().iter().collect();
    assert_eq!(xm, ym, "metadata differs");
    assert_eq!(x.tensors().len(), y.tensors().len());
    for (s, t) in x.tensors().iter().zip(y.tensors()) {
        assert_eq!((&s.name, &s.shape, s.ty), (&t.name, &t.shape, t.ty));
        assert!(x.tensor_data(s) == y.tensor_data(t), "tensor {} bytes differ", s.name);
    }
}

#[test]
fn roundtrip_fixtures() {
    let dir = common::tempdir();
    for f in ["presets/synth12-llama-f16.gguf", "golden/ggml-quants.gguf"] {
        let src = common::fixture(f);
        for chunked in [false, true] {
            let out = dir.path().join(format!("out-{chunked}.gguf"));
            rewrite(&src, &out, chunked);
            assert_same(&src, &out);
        }
    }
}

/// A file copied into memory (what a model about to run gets where it fits)
/// holds the same bytes as the map of the file, and says so.
#[cfg(unix)]
#[test]
fn resident_copy_equals_the_mapped_file() {
    for f in ["presets/synth12-llama-f16.gguf", "golden/ggml-quants.gguf"] {
        let src = common::fixture(f);
        let mapped = GgufFile::open(&src).unwrap();
        let mut copy = GgufFile::open(&src).unwrap();
        assert!(!copy.is_resident());
        copy.make_resident().unwrap();
        assert!(copy.is_resident());
        assert!(copy.bytes() == std::fs::read(&src).unwrap().as_slice(), "{f}: copy differs from the file");
        for t in mapped.tensors() {
            assert!(copy.tensor_data(t) == mapped.tensor_data(t), "{f}: tensor {} differs", t.name);
        }
        // Twice is a no-op.
        copy.make_resident().unwrap();
        assert_eq!(copy.bytes().len(), mapped.bytes().len());
    }
}

#[test]
fn roundtrip_smollm2_and_gguf_py_reads_it() {
    let Some(src) = common::smollm2() else { return };
    let dir = common::tempdir();
    let out = dir.path().join("smollm2.gguf");
    rewrite(&src, &out, true);
    assert_same(&src, &out);
    // Our layout is the same as the source's (written by llama.cpp's tooling),
    // byte for byte.
    let (a, b) = (std::fs::read(&src).unwrap(), std::fs::read(&out).unwrap());
    assert!(a == b, "rewritten SmolLM2 differs from the original file");
    let Some(py) = common::python() else { return };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/gguf_check.py");
    let st = std::process::Command::new(py).arg(script).arg(&out).arg(&src).status().unwrap();
    assert!(st.success(), "gguf-py disagrees with our file");
}

#[test]
fn dropped_writer_leaves_no_file() {
    let dir = common::tempdir();
    let out = dir.path().join("never.gguf");
    let g = GgufFile::open(common::fixture("presets/synth12-llama-f16.gguf")).unwrap();
    let specs: Vec<TensorSpec> =
        g.tensors().iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect();
    let mut w = GgufWriter::create(&out, g.metadata(), &specs, 32).unwrap();
    w.write_tensor(g.tensor_data(&g.tensors()[0])).unwrap();
    // A wrong length is an error, not a corrupt file.
    assert!(w.write_tensor(&[0u8; 3]).is_err());
    drop(w);
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "temporary file left behind");
    // finish() before all tensors are written is an error, and leaves nothing.
    let w = GgufWriter::create(&out, g.metadata(), &specs, 32).unwrap();
    assert!(w.finish().is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn specs_of(g: &GgufFile) -> Vec<TensorSpec> {
    g.tensors().iter().map(|t| TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }).collect()
}

#[test]
fn cancel_flag_aborts_and_leaves_no_file() {
    let dir = common::tempdir();
    let out = dir.path().join("cancelled.gguf");
    let g = GgufFile::open(common::fixture("presets/synth12-llama-f16.gguf")).unwrap();
    let specs = specs_of(&g);
    let flag = quantmix::job::Cancel::new();
    let mut w = GgufWriter::create(&out, g.metadata(), &specs, 32).unwrap();
    w.set_cancel(flag.clone());
    let t0 = &g.tensors()[0];
    let data = g.tensor_data(t0);
    let half = data.len() / 2;
    w.write_tensor_chunk(&data[..half]).unwrap();
    flag.cancel();
    let e = w.write_tensor_chunk(&data[half..]).unwrap_err();
    assert!(matches!(e.kind, quantmix::gguf::GgufErrorKind::Interrupted(_)), "{e}");
    drop(w);
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "temporary file left behind");
}

#[test]
fn non_default_alignment_is_recorded_and_honoured() {
    use quantmix::gguf::{GgufErrorKind, MetaValue};
    let dir = common::tempdir();
    let g = GgufFile::open(common::fixture("presets/synth12-llama-f16.gguf")).unwrap();
    let specs = specs_of(&g);
    assert!(g.metadata().get("general.alignment").is_none());
    for align in [64u64, 256, 4096] {
        let out = dir.path().join(format!("a{align}.gguf"));
        let mut w = GgufWriter::create(&out, g.metadata(), &specs, align).unwrap();
        for t in g.tensors() {
            w.write_tensor(g.tensor_data(t)).unwrap();
        }
        let n = w.finish().unwrap();
        assert_eq!(n, gguf_file_size(g.metadata(), &specs, align));
        let r = GgufFile::open(&out).unwrap();
        assert_eq!(r.header.alignment, align);
        assert_eq!(r.metadata().get("general.alignment"), Some(&MetaValue::U32(align as u32)));
        assert_eq!(r.header.data_offset % align, 0);
        for (s, t) in g.tensors().iter().zip(r.tensors()) {
            assert_eq!(t.offset % align, 0);
            assert!(g.tensor_data(s) == r.tensor_data(t));
        }
    }
    // A metadata alignment that disagrees with the requested one is refused.
    let mut m = g.metadata().clone();
    m.set("general.alignment", MetaValue::U32(64));
    let e = GgufWriter::create(&dir.path().join("x.gguf"), &m, &specs, 32).err().unwrap();
    assert!(matches!(e.kind, GgufErrorKind::BadMetadata { .. }), "{e}");
    assert!(GgufWriter::create(&dir.path().join("x.gguf"), g.metadata(), &specs, 48).is_err());
}

#[test]
fn invalid_specs_are_refused_before_writing() {
    use quantmix::gguf::{GgmlType, GgufErrorKind, Metadata};
    let dir = common::tempdir();
    let out = dir.path().join("bad.gguf");
    let m = Metadata::default();
    let spec = |name: &str, shape: &[u64], ty| TensorSpec { name: name.into(), shape: shape.to_vec(), ty };
    type Check = fn(&GgufErrorKind) -> bool;
    let cases: Vec<(Vec<TensorSpec>, Check)> = vec![
        (vec![spec("a", &[100], GgmlType::Q4_0)], |k| matches!(k, GgufErrorKind::RowNotBlockMultiple { .. })),
        (vec![spec("a", &[32], GgmlType::F32), spec("a", &[32], GgmlType::F32)], |k| {
            matches!(k, GgufErrorKind::DuplicateTensor(_))
        }),
        (vec![spec(&"x".repeat(64), &[32], GgmlType::F32)], |k| matches!(k, GgufErrorKind::BadTensorName { .. })),
        (vec![spec("a", &[32, 0], GgmlType::F32)], |k| matches!(k, GgufErrorKind::BadDim { .. })),
        (vec![spec("a", &[1, 1, 1, 1, 1], GgmlType::F32)], |k| matches!(k, GgufErrorKind::TooManyDims { .. })),
        (vec![spec("a", &[1 << 40, 1 << 40], GgmlType::F32)], |k| matches!(k, GgufErrorKind::DimOverflow { .. })),
    ];
    for (specs, want) in cases {
        let e = GgufWriter::create(&out, &m, &specs, 32).err().unwrap();
        assert!(want(&e.kind), "{e}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
