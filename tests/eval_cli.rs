//! `quantmix eval` end to end on SmolLM2: the Q4_1 file from PyPI and a
//! Q8_0 requant made by `quantmix quantize --type Q8_0`. The perplexity of
//! each file must equal llama.cpp's (tests/tools/llama_perplexity.py, the
//! llama-cpp-python build CI installs) within 0.5%; the KLD of Q4_1 against
//! the Q8_0 reference must be positive and finite, the same-top-token
//! fraction in (0.5, 1]; the picture must be written as SVG and PNG.
//! Plus the error paths: missing file, text too short, unsupported
//! architecture.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn quantmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn llama_cpp_ppl(py: &Path, model: &Path, out: &Path) -> f64 {
    let st = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/llama_perplexity.py"))
        .arg("ppl")
        .arg(model)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/eval.txt"))
        .args(["512", "2"])
        .arg(out)
        .status()
        .expect("run llama_perplexity.py");
    assert!(st.success(), "llama_perplexity.py failed");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    v["ppl"].as_f64().unwrap()
}

#[test]
fn eval_smollm2_q4_1_against_q8_0() {
    let (Some(model), Some(py)) = (common::smollm2(), common::python()) else { return };
    let dir = common::tempdir();
    let q8 = dir.path().join("smollm2-q8_0.gguf");
    let o = quantmix(&["quantize", s(&model), "-o", s(&q8), "--type", "Q8_0", "-q"]);
    assert!(o.status.success(), "quantize: {}", String::from_utf8_lossy(&o.stderr));

    let plot = dir.path().join("eval.svg");
    let o = quantmix(&[
        "eval",
        s(&model),
        s(&q8),
        "--reference",
        s(&q8),
        "--ctx",
        "512",
        "--chunks",
        "2",
        "--reps",
        "1",
        "--pp",
        "64",
        "--tg",
        "4",
        "--json",
        "--plot",
        s(&plot),
    ]);
    assert!(o.status.success(), "eval: {}", String::from_utf8_lossy(&o.stderr));
    let rows: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 2);
    for r in rows {
        for k in [
            "file",
            "bytes",
            "bpw",
            "ppl",
            "ppl_err",
            "kld_mean",
            "kld_p99",
            "same_top_p",
            "pp_tokens_per_s",
            "tg_tokens_per_s",
        ] {
            assert!(r.get(k).is_some(), "key {k} missing in {r}");
        }
        assert!(r["text"].as_str().unwrap().contains("held-out"), "{}", r["text"]);
        assert_eq!(r["scored"], 510);
        assert!(r["pp_tokens_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["tg_tokens_per_s"].as_f64().unwrap() > 0.0);
        assert!(r["pp_min"].as_f64().unwrap() <= r["pp_max"].as_f64().unwrap());
    }
    let (q4, r8) = (&rows[0], &rows[1]);
    assert_eq!(q4["reference"], false);
    assert_eq!(r8["reference"], true);
    assert_eq!(q4["bytes"].as_u64().unwrap(), std::fs::metadata(&model).unwrap().len());
    assert!(q4["bpw"].as_f64().unwrap() > 4.5 && q4["bpw"].as_f64().unwrap() < 6.0, "{}", q4["bpw"]);
    assert!(r8["bpw"].as_f64().unwrap() > 8.0 && r8["bpw"].as_f64().unwrap() < 9.0, "{}", r8["bpw"]);
    // The reference is not compared with itself.
    assert!(r8["kld_mean"].is_null() && r8["same_top_p"].is_null());

    let kld = q4["kld_mean"].as_f64().unwrap();
    assert!(kld > 0.0 && kld.is_finite(), "KLD {kld}");
    let p99 = q4["kld_p99"].as_f64().unwrap();
    assert!(p99 >= kld && p99.is_finite(), "p99 {p99}");
    let same = q4["same_top_p"].as_f64().unwrap();
    assert!(same > 0.5 && same <= 1.0, "same top {same}");
    assert!(q4["rms_dp"].as_f64().unwrap() > 0.0);
    // ΔPPL is against the reference's PPL of the same run.
    let d = q4["delta_ppl"].as_f64().unwrap();
    assert!((d - (q4["ppl"].as_f64().unwrap() - r8["ppl"].as_f64().unwrap())).abs() < 1e-3 * d.abs().max(1.0));

    for (r, path) in [(q4, &model), (r8, &q8)] {
        let ours = r["ppl"].as_f64().unwrap();
        let theirs = llama_cpp_ppl(&py, path, &dir.path().join("llama.json"));
        eprintln!("{}: PPL quantmix eval {ours:.4}, llama.cpp {theirs:.4}", path.display());
        assert!((ours / theirs - 1.0).abs() < 0.005, "PPL {ours} vs llama.cpp {theirs}");
    }

    let svg = std::fs::read_to_string(dir.path().join("eval.svg")).expect("SVG written");
    assert!(svg.starts_with("<svg"));
    assert_eq!(svg.matches("<circle").count(), 2, "one marker per file");
    assert!(svg.contains("SmolLM2-135M-Instruct.Q4_1.gguf") && svg.contains("smollm2-q8_0.gguf"));
    assert!(svg.contains("tok/s"), "throughput labels");
    let png = std::fs::read(dir.path().join("eval.png")).expect("PNG written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 5000, "PNG of {} bytes", png.len());
}

#[test]
fn eval_errors_are_clear() {
    let dir = common::tempdir();
    // Missing file.
    let missing = dir.path().join("nope.gguf");
    let o = quantmix(&["eval", s(&missing), "--no-speed"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nope.gguf") && err.contains("no such file"), "{err}");

    // Unsupported architecture: a GGUF without tensors that says it is BERT.
    let bert = dir.path().join("bert.gguf");
    {
        use quantmix::gguf::{GgufWriter, MetaValue, Metadata};
        let mut m = Metadata::default();
        m.set("general.architecture", MetaValue::String("bert".into()));
        let w = GgufWriter::create(&bert, &m, &[], 32).unwrap();
        w.finish().unwrap();
    }
    let o = quantmix(&["eval", s(&bert), "--no-speed"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bert") && err.contains("not supported"), "{err}");

    // Text too short.
    let Some(model) = common::smollm2() else { return };
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "Only a few words.").unwrap();
    let o = quantmix(&["eval", s(&model), "--text", s(&short), "--no-speed"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("short.txt") && err.contains("tokens"), "{err}");
}
