//! `quantmix inspect` through the binary: text summary and tables, the JSON
//! schema, split models, and clean failures (exit codes, messages naming
//! the file).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use quantmix::gguf::{GgufFile, GgufModel};

fn quantmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("inspect --json prints one JSON object")
}

/// JSON equality with floats compared at f32 precision (the report prints
/// an f32 in its shortest form, which reads back as a different f64).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Number(x), Number(y)) if x.is_f64() || y.is_f64() => x.as_f64().unwrap() as f32 == y.as_f64().unwrap() as f32,
        (Array(x), Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        _ => a == b,
    }
}

/// The JSON report agrees with the library reader tensor by tensor.
fn check_json_against(v: &serde_json::Value, m: &GgufModel) {
    let ts = v["tensors"].as_array().unwrap();
    assert_eq!(ts.len(), m.tensors().len());
    for (j, t) in ts.iter().zip(m.tensors()) {
        assert_eq!(j["name"], t.name.as_str());
        let shape: Vec<u64> = j["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(shape, t.shape);
        assert_eq!(j["type"], t.ty.name());
        assert_eq!(j["bytes"], t.n_bytes());
        assert_eq!(j["offset"], t.offset);
        let bpw = j["bpw"].as_f64().unwrap();
        assert!((bpw - t.n_bytes() as f64 * 8.0 / t.n_elements() as f64).abs() < 1e-9);
    }
    let md = v["metadata"].as_object().unwrap();
    assert_eq!(md.len(), m.metadata().len());
    for (k, val) in m.metadata().iter() {
        assert!(same(&md[k], &serde_json::to_value(val).unwrap()), "{k}: {} vs {val:?}", md[k]);
    }
}

#[test]
fn json_report_on_the_fixture() {
    let f = common::fixture("presets/synth12-llama-f16.gguf");
    let o = quantmix(&["inspect", "--json", s(&f)]);
    let v = json(&o);
    for k in ["format", "version", "files", "file_bytes", "metadata", "tensors"] {
        assert!(v.get(k).is_some(), "missing key {k}");
    }
    assert_eq!(v["format"], "GGUF");
    assert_eq!(v["file_bytes"], std::fs::metadata(&f).unwrap().len());
    let t0 = v["tensors"][0].as_object().unwrap();
    let mut keys: Vec<&str> = t0.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["bpw", "bytes", "name", "offset", "shape", "type"], "an unsplit model has no `shard`");
    assert_eq!(v["metadata"]["tokenizer.ggml.tokens"].as_array().unwrap().len(), 1024);
    check_json_against(&v, &GgufModel::open(&f).unwrap());
    // Metadata keys keep the file's order (general.name comes before general.file_type).
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.find("\"general.name\"").unwrap() < text.find("\"general.file_type\"").unwrap());
}

#[test]
fn text_report_summarizes() {
    let f = common::fixture("presets/synth12-llama-f16.gguf");
    let o = quantmix(&["inspect", s(&f)]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "GGUF v3",
        "architecture",
        "llama",
        "MOSTLY_F16 (1)",
        "layers            12",
        "1024 tokens",
        "string[1024]",
        "tensors (111)",
        "per type",
        "per layer",
        "(global)",
        "… 71 more",
    ] {
        assert!(out.contains(want), "missing `{want}` in:\n{out}");
    }
    // The vocabulary is summarized, not printed.
    assert!(out.lines().count() < 150, "{} lines", out.lines().count());
    let all = quantmix(&["inspect", "--all", s(&f)]);
    let all = String::from_utf8_lossy(&all.stdout);
    assert!(all.contains("output.weight") && !all.contains("more (use --all"));
    // Per-type totals: F16 and F32 rows and a total that adds up to the tensor data.
    let g = GgufFile::open(&f).unwrap();
    let total: u64 = g.tensors().iter().map(|t| t.n_bytes()).sum();
    let line = out.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(line.contains(&total.to_string()), "{line}");
}

#[test]
fn smollm2_summary() {
    let Some(f) = common::smollm2() else { return };
    let o = quantmix(&["inspect", s(&f)]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for want in ["MOSTLY_Q4_1 (3)", "49152 tokens", "tensors (272)", "Q8_0", "Q4_1"] {
        assert!(out.contains(want), "missing `{want}`");
    }
    check_json_against(&json(&quantmix(&["inspect", "--json", s(&f)])), &GgufModel::open(&f).unwrap());
}

#[test]
fn split_model_is_one_report() {
    let src = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    let paths = common::write_split(&src, &dir.path().join("s12"), 2);
    let v = json(&quantmix(&["inspect", "--json", s(&paths[1])]));
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    assert!(v["metadata"].as_object().unwrap().keys().all(|k| !k.starts_with("split.")));
    check_json_against(&v, &GgufModel::open(&paths[0]).unwrap());
    let orig = json(&quantmix(&["inspect", "--json", s(&src)]));
    assert_eq!(v["metadata"], orig["metadata"]);
    let shards: Vec<u64> = v["tensors"].as_array().unwrap().iter().map(|t| t["shard"].as_u64().unwrap()).collect();
    assert_eq!(shards.first(), Some(&0));
    assert_eq!(shards.last(), Some(&1));
    let text = String::from_utf8_lossy(&quantmix(&["inspect", s(&paths[0])]).stdout).to_string();
    assert!(text.contains("2 files") && text.contains("s12-00002-of-00002.gguf"), "{text}");
}

#[test]
fn failures_exit_nonzero_and_name_the_file() {
    let dir = common::tempdir();
    // A malformed file: a tensor's data runs past the end.
    let bad = dir.path().join("truncated-model.gguf");
    let f = std::fs::read(common::fixture("presets/synth12-llama-f16.gguf")).unwrap();
    std::fs::write(&bad, &f[..f.len() / 2]).unwrap();
    for args in [vec!["inspect", s(&bad)], vec!["inspect", "--json", s(&bad)]] {
        let o = quantmix(&args);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("quantmix: error: "), "{err}");
        assert!(err.contains("truncated-model.gguf") && err.contains("byte offset"), "{err}");
        assert!(err.contains("lies outside the file's data section"), "{err}");
        assert!(o.stdout.is_empty());
    }
    // Not a GGUF at all.
    let txt = dir.path().join("notes.gguf");
    std::fs::write(&txt, "hello world, not a model").unwrap();
    let o = quantmix(&["inspect", s(&txt)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad magic \"hell\""));
    // Missing file.
    let o = quantmix(&["inspect", s(&dir.path().join("absent.gguf"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("absent.gguf"));
    // Usage errors exit 2.
    assert_eq!(quantmix(&["inspect"]).status.code(), Some(2));
    assert_eq!(quantmix(&["inspect", "--frobnicate", "x.gguf"]).status.code(), Some(2));
    assert_eq!(quantmix(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(quantmix(&["--help"]).status.code(), Some(0));
}
