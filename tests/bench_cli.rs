//! `quantmix bench` runs and reports well-formed results (no timing is
//! asserted: speed belongs in the benchmark output, not in tests).
//! `bench model --against` is checked with a fake `llama-bench` (a shell
//! script printing canned JSON, so the parser and the ratios are covered
//! everywhere) and, when tests/tools/build_llama_cpp.sh has built it, with
//! the real one on SmolLM2.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn quantmix(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix");
    assert!(out.status.success(), "quantmix {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn positive(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!(x.is_finite() && x > 0.0, "{key} = {x}");
    x
}

#[test]
fn bench_kernels_json() {
    let v = quantmix(&[
        "bench",
        "kernels",
        "--types",
        "q4_0,q4_k,f16",
        "--values",
        "8192",
        "--min-ms",
        "1",
        "--reps",
        "1",
        "--json",
    ]);
    positive(&v, "memcpy_gb_s");
    let rows = v["rows"].as_array().unwrap();
    let types: Vec<&str> = rows.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["Q4_0", "Q4_K", "F16"]);
    for r in rows {
        for key in [
            "quantize_mb_s",
            "quantize_imatrix_mb_s",
            "dequantize_gb_s_f32",
            "dequantize_gb_s_weights",
            "vec_dot_gb_s",
            "vec_dot_scalar_gb_s",
        ] {
            positive(r, key);
        }
    }
}

#[test]
fn bench_matmul_json() {
    let v = quantmix(&[
        "bench",
        "matmul",
        "--types",
        "q8_0",
        "--rows",
        "64",
        "--row-len",
        "256",
        "--tokens",
        "8",
        "--threads",
        "2",
        "--min-ms",
        "1",
        "--reps",
        "1",
        "--json",
    ]);
    let r = &v.as_array().unwrap()[0];
    assert_eq!(r["type"], "Q8_0");
    assert_eq!(r["threads"], 2);
    positive(r, "gflop_s");
    positive(r, "matvec_gb_s");
}

#[test]
fn bench_rejects_unknown_type() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_quantmix")).args(["bench", "kernels", "--types", "q9_9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn quantmix_out(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An executable shell script `dir/llama-bench` with `body`.
#[cfg(unix)]
fn fake_llama_bench(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("llama-bench");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

const CANNED: &str = r#"[
  {"build_commit": "fake123", "model_filename": "x", "n_threads": 1, "n_prompt": 16, "n_gen": 0, "n_depth": 0,
   "avg_ns": 80000000, "stddev_ns": 100, "avg_ts": 200.0, "stddev_ts": 2.5, "samples_ts": [197.5, 202.5]},
  {"build_commit": "fake123", "model_filename": "x", "n_threads": 1, "n_prompt": 0, "n_gen": 4, "n_depth": 0,
   "avg_ns": 40000000, "stddev_ns": 100, "avg_ts": 100.0, "stddev_ts": 1.0, "samples_ts": [99.0, 101.0]}
]"#;

fn synth() -> PathBuf {
    common::fixture("presets/synth12-llama-f16.gguf")
}

#[cfg(unix)]
#[test]
fn bench_model_against_fake_llama_bench() {
    let dir = common::tempdir();
    let args_file = dir.path().join("args.txt");
    let lb = fake_llama_bench(
        dir.path(),
        &format!("echo \"$@\" > '{}'\necho 'main: loading' >&2\ncat <<'EOF'\n{CANNED}\nEOF", s(&args_file)),
    );
    let model = synth();
    let args =
        ["bench", "model", s(&model), "--against", s(&lb), "--threads", "1", "--pp", "16", "--tg", "4", "--reps", "1"];
    let v = quantmix(&[&args[..], &["--json", "-q"]].concat());
    assert_eq!(
        std::fs::read_to_string(&args_file).unwrap().trim(),
        format!("-m {} -o json -p 16 -n 4 -t 1 -r 1", s(&model))
    );
    assert_eq!(v["threads"], 1);
    assert_eq!(v["reps"], 1);
    assert_eq!(v["llama_bench"], s(&lb));
    assert_eq!(v["llama_bench_build"], "fake123");
    if cfg!(target_os = "linux") {
        let la = v["load_average"].as_array().unwrap_or_else(|| panic!("load_average: {v}"));
        assert!(la.len() == 2 && la.iter().all(|x| x.as_f64().is_some_and(|x| x >= 0.0)), "{v}");
    }
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (r, test, theirs, sd) in [(&rows[0], "pp16", 200.0, 2.5), (&rows[1], "tg4", 100.0, 1.0)] {
        assert_eq!(r["test"], test);
        assert_eq!(r["file"], s(&model));
        let ours = positive(r, "ours_tokens_per_s");
        assert!(positive(r, "ours_min") <= ours && ours <= positive(r, "ours_max"), "{r}");
        assert_eq!(r["llama_bench_tokens_per_s"].as_f64(), Some(theirs));
        assert_eq!(r["llama_bench_stddev"].as_f64(), Some(sd));
        let ratio = positive(r, "ratio");
        assert!((ratio - ours / theirs).abs() <= 1e-9 * ratio, "{r}");
    }

    // The table names both and the ratio.
    let o = quantmix_out(&[&args[..], &["-q"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    for want in ["quantmix t/s", "llama-bench t/s", "ratio", "pp16", "tg4", "200.0 ± 2.5", "fake123"] {
        assert!(table.contains(want), "{want:?} missing from\n{table}");
    }
}

#[cfg(unix)]
#[test]
fn bench_model_reports_bad_llama_bench_output() {
    let dir = common::tempdir();
    let model = synth();
    let run = |lb: &Path| {
        let o = quantmix_out(&[
            "bench",
            "model",
            s(&model),
            "--against",
            s(lb),
            "--threads",
            "1",
            "--pp",
            "8",
            "--tg",
            "2",
            "--reps",
            "1",
            "-q",
        ]);
        assert!(!o.status.success(), "accepted {}", lb.display());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };

    // Markdown instead of JSON.
    let lb = fake_llama_bench(dir.path(), "echo '| model | size | params |'\necho '| --- | --- | --- |'");
    let e = run(&lb);
    assert!(e.contains("could not parse the output of") && e.contains("| model | size"), "{e}");

    // JSON without the requested tests.
    let lb = fake_llama_bench(dir.path(), &format!("cat <<'EOF'\n{CANNED}\nEOF"));
    let e = run(&lb);
    assert!(e.contains("no test with n_prompt 8 and n_gen 0") && e.contains("pp16 tg0"), "{e}");

    // llama-bench fails: its own message is shown.
    let lb = fake_llama_bench(dir.path(), "echo 'error: failed to load model' >&2\nexit 1");
    let e = run(&lb);
    assert!(e.contains("failed on") && e.contains("error: failed to load model"), "{e}");

    // No such executable: an error before anything is measured.
    let missing = dir.path().join("nowhere/llama-bench");
    let e = run(&missing);
    assert!(e.contains("llama-bench not found at") && e.contains("nowhere"), "{e}");
}

/// The real llama-bench, when tests/tools/build_llama_cpp.sh has built it
/// (CI does not build llama.cpp's command-line tools: skipped there).
#[test]
fn bench_model_against_real_llama_bench() {
    let lb = common::cache_dir().join("llama.cpp/build/bin/llama-bench");
    if !lb.is_file() {
        eprintln!("skipping: no llama-bench at {} (tests/tools/build_llama_cpp.sh builds it)", lb.display());
        return;
    }
    let Some(model) = common::smollm2() else { return };
    let v = quantmix(&[
        "bench",
        "model",
        s(&model),
        "--against",
        s(&lb),
        "--threads",
        "2",
        "--pp",
        "64",
        "--tg",
        "8",
        "--reps",
        "2",
        "--json",
        "-q",
    ]);
    assert_eq!(v["threads"], 2);
    assert!(v["llama_bench_build"].is_string(), "{v}");
    let rows = v["rows"].as_array().unwrap();
    let tests: Vec<&str> = rows.iter().map(|r| r["test"].as_str().unwrap()).collect();
    assert_eq!(tests, ["pp64", "tg8"]);
    for r in rows {
        let ours = positive(r, "ours_tokens_per_s");
        let theirs = positive(r, "llama_bench_tokens_per_s");
        let ratio = positive(r, "ratio");
        // No bound on the ratio itself: on a busy machine llama-bench's
        // spinning threads can slow down by 100x and more.
        assert!((ratio - ours / theirs).abs() <= 1e-9 * ratio, "{r}");
    }
}
