//! `sensitivity --predict-from`: only the anchor types are measured by a
//! forward pass; the other candidates are predicted from them (damage
//! proportional to the imatrix-weighted squared error). Anchors measure
//! exactly what the exhaustive run measures, predictions are marked, and
//! they rank the candidates as the exhaustive measurement does.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use quantmix::sensitivity::schema::SensitivityTable;

fn run(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    quantmix::sensitivity::schema::spearman(a, b).unwrap()
}

#[test]
fn anchors_are_measured_and_the_rest_predicted_in_the_same_order() {
    let dir = common::tempdir();
    let p = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    let m = model.to_str().unwrap();
    let fast = ["--ctx", "32", "--chunks", "2", "--types", "Q2_K,Q3_K,Q4_K,Q6_K", "--quiet"];
    let (all_out, pred_out) = (p("all.json"), p("pred.json"));
    let mut a = vec!["sensitivity", m, "-o", &all_out, "--imatrix-chunks", "2"];
    a.extend(fast);
    run(&a);
    let im = p("all.imatrix.gguf");
    let mut b = vec!["sensitivity", m, "-o", &pred_out, "--imatrix", &im, "--predict-from", "Q3_K"];
    b.extend(fast);
    let err = run(&b);
    assert!(err.contains("86 candidates measured"), "one forward pass per tensor: {err}");

    let all = SensitivityTable::load(&dir.path().join("all.json")).unwrap();
    let pred = SensitivityTable::load(&dir.path().join("pred.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p("pred.json")).unwrap()).unwrap();
    assert_eq!(j["calibration"]["predicted_from"], serde_json::json!(["Q3_K"]));
    let by: BTreeMap<(&str, &str), f64> = all
        .tensors
        .iter()
        .flat_map(|t| t.candidates.iter().map(|c| ((t.name.as_str(), c.ty.as_str()), c.kld)))
        .collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for t in &pred.tensors {
        for c in &t.candidates {
            let exhaustive = by[&(t.name.as_str(), c.ty.as_str())];
            assert!(c.kld.is_finite() && c.kld >= 0.0, "{} {}", t.name, c.ty);
            if c.ty == "Q3_K" || c.ty == t.source_type {
                assert!(!c.predicted);
                assert!((c.kld - exhaustive).abs() <= 1e-9 * exhaustive.max(1e-12), "{} {}", t.name, c.ty);
            } else {
                assert!(c.predicted, "{} {}", t.name, c.ty);
                x.push(c.kld);
                y.push(exhaustive);
            }
        }
    }
    let s = spearman(&x, &y);
    eprintln!("Spearman predicted vs measured over {} pairs: {s:.3}", x.len());
    assert!(s > 0.9, "{s}");
}
