//! `quantmix convert`: a lossless GGUF → GGUF rewrite; a split source is
//! merged into one file with the same metadata (minus `split.*`) and
//! byte-identical tensors; failures leave no output.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use quantmix::gguf::GgufFile;

fn quantmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_same_model(a: &Path, b: &Path) {
    let (x, y) = (GgufFile::open(a).unwrap(), GgufFile::open(b).unwrap());
    let xm: Vec<_> = x.metadata().iter().collect();
    let ym: Vec<_> = y.metadata().iter().collect();
    assert_eq!(xm, ym, "metadata differs");
    assert_eq!(x.tensors().len(), y.tensors().len());
    for (s, t) in x.tensors().iter().zip(y.tensors()) {
        assert_eq!((&s.name, &s.shape, s.ty), (&t.name, &t.shape, t.ty));
        assert!(x.tensor_data(s) == y.tensor_data(t), "tensor {} differs", s.name);
    }
}

#[test]
fn convert_is_lossless() {
    let src = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    let out = dir.path().join("copy.gguf");
    let o = quantmix(&["convert", s(&src), "-o", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("111 tensors"));
    assert_same_model(&src, &out);
    // Same layout as the source (both 32-aligned, tensors in order): the same bytes.
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&out).unwrap());
}

#[test]
fn convert_merges_a_split() {
    let src = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    let shards = common::write_split(&src, &dir.path().join("parts"), 2);
    for (i, sh) in shards.iter().enumerate() {
        let out = dir.path().join(format!("merged{i}.gguf"));
        let o = quantmix(&["convert", s(sh), "-o", s(&out), "--quiet"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(o.stderr.is_empty() && o.stdout.is_empty(), "--quiet printed something");
        assert_same_model(&src, &out);
        let g = GgufFile::open(&out).unwrap();
        assert!(g.metadata().iter().all(|(k, _)| !k.starts_with("split.")));
    }
}

#[test]
fn convert_smollm2_is_byte_identical() {
    let Some(src) = common::smollm2() else { return };
    let dir = common::tempdir();
    let out = dir.path().join("smol.gguf");
    let o = quantmix(&["convert", s(&src), "-o", s(&out), "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&src).unwrap() == std::fs::read(&out).unwrap());
}

#[test]
fn failed_convert_leaves_nothing() {
    let dir = common::tempdir();
    let bad = dir.path().join("bad.gguf");
    let f = std::fs::read(common::fixture("presets/synth12-llama-f16.gguf")).unwrap();
    std::fs::write(&bad, &f[..4096]).unwrap();
    let out = dir.path().join("out.gguf");
    let o = quantmix(&["convert", s(&bad), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("quantmix: error: ") && err.contains("bad.gguf"), "{err}");
    assert!(!out.exists());
    // An output directory that does not exist: an error naming the output.
    let src = common::fixture("presets/synth12-llama-f16.gguf");
    let nowhere = dir.path().join("no/such/dir/out.gguf");
    let o = quantmix(&["convert", s(&src), "-o", s(&nowhere)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such/dir/out.gguf"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "something was left behind");
    // Missing -o is a usage error.
    assert_eq!(quantmix(&["convert", s(&src)]).status.code(), Some(2));
}
