//! `quantmix bench` runs and reports well-formed results (no timing is
//! asserted: speed belongs in the benchmark output, not in tests).

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
        for key in
            ["quantize_mb_s", "dequantize_gb_s_f32", "dequantize_gb_s_weights", "vec_dot_gb_s", "vec_dot_scalar_gb_s"]
        {
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
