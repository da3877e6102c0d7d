//! The exact-activations measuring mode: from an already-quantized source,
//! 8-bit activation rounding puts a floor under every candidate's ΔKLD that
//! changes the tensor's kernel; measured on an f32 copy with dequantized
//! candidates, a near-lossless candidate (Q8_0 of Q4_0 weights) measures
//! close to nothing, and keeping the source type exactly nothing.

mod common;

use std::path::Path;
use std::process::Command;

use quantmix::sensitivity::schema::SensitivityTable;

fn quantmix(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn mean_kld(path: &Path, ty: &str) -> f64 {
    let t = SensitivityTable::load(path).unwrap();
    let v: Vec<f64> = t.tensors.iter().flat_map(|t| &t.candidates).filter(|c| c.ty == ty).map(|c| c.kld).collect();
    assert!(!v.is_empty());
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn exact_activations_remove_the_rounding_floor_of_a_quantized_source() {
    let dir = common::tempdir();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    quantmix(&["quantize", model.to_str().unwrap(), "--type", "Q4_0", "-o", &d("q4_0.gguf"), "--quiet"]);
    let fast = ["--ctx", "32", "--chunks", "2", "--types", "Q8_0", "--imatrix-chunks", "2", "--quiet"];
    for mode in ["off", "on"] {
        let mut a = vec!["sensitivity", &d("q4_0.gguf")[..]].into_iter().map(String::from).collect::<Vec<_>>();
        a.extend(["-o".into(), d(&format!("{mode}.json")), "--exact-activations".into(), mode.into()]);
        a.extend(fast.iter().map(|s| s.to_string()));
        quantmix(&a.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let (off, on) = (mean_kld(&dir.path().join("off.json"), "Q8_0"), mean_kld(&dir.path().join("on.json"), "Q8_0"));
    eprintln!("mean ΔKLD of Q8_0 candidates: {off:.3e} with 8-bit activations, {on:.3e} exact");
    assert!(on < 0.2 * off, "{on} vs {off}");
    assert_eq!(mean_kld(&dir.path().join("on.json"), "Q4_0"), 0.0);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("on.json")).unwrap()).unwrap();
    assert_eq!(j["calibration"]["exact_activations"], true);
    // The default for a quantized source is the exact mode; no temporary copy is left.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.starts_with(".quantmix")), "{names:?}");
}
