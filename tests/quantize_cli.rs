//! The main job end to end through the binary: `quantmix quantize` with the
//! mixed recipe (tests/data/mixed-recipe.toml) on SmolLM2; llama.cpp loads and runs the output;
//! gguf-py dequantizes every tensor to what quantmix's dequantizer gives;
//! the quant map is in the metadata and the sidecar; bad input fails
//! cleanly without leaving an output file.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use quantmix::gguf::GgufFile;

fn quantmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix")
}

fn test_recipe(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn tool(name: &str) -> String {
    format!("{}/tests/tools/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn mixed_recipe_smollm2_runs_in_llama_cpp_and_matches_gguf_py() {
    let Some(model) = common::smollm2() else { return };
    let dir = common::tempdir();
    let out = dir.path().join("hybrid.gguf");
    let o = quantmix(&["quantize", "--recipe", &test_recipe("mixed-recipe.toml"), s(&model), "-o", s(&out), "--quiet"]);
    assert!(o.status.success(), "quantize failed: {}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("requantized"), "requantizing a Q4_1 source must warn: {stderr}");

    // The quant map: metadata and sidecar agree with the file.
    let g = GgufFile::open(&out).unwrap();
    let md = g.metadata();
    assert!(md.get_str("quantmix.recipe").unwrap().contains("[[rule]]"));
    let names = md.get("quantmix.tensor.names").unwrap().as_array().unwrap();
    let types = md.get("quantmix.tensor.types").unwrap().as_array().unwrap();
    assert_eq!(names.len(), g.tensors().len());
    for ((n, ty), t) in names.iter().zip(types).zip(g.tensors()) {
        assert_eq!((n.as_str().unwrap(), ty.as_str().unwrap()), (t.name.as_str(), t.ty.name()));
    }
    let side: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("hybrid.quantmap.json")).unwrap()).unwrap();
    let tensors = side["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), g.tensors().len());
    assert_eq!(side["file_bytes"].as_u64().unwrap(), std::fs::metadata(&out).unwrap().len());
    for (j, t) in tensors.iter().zip(g.tensors()) {
        assert_eq!(j["name"], t.name.as_str());
        assert_eq!(j["type"], t.ty.name());
        assert_eq!(j["bytes"].as_u64().unwrap(), t.n_bytes());
        for key in ["shape", "source_type", "reason", "bpw", "rel_error"] {
            assert!(j.get(key).is_some(), "sidecar tensor lacks `{key}`");
        }
        // Round-trip errors are measured, and k-quant/legacy errors are bounded.
        let e = j["rel_error"].as_f64().unwrap();
        assert!((0.0..0.35).contains(&e), "{}: round-trip error {e}", t.name);
    }
    // The recipe's fallbacks are reported as such (576 is not a multiple of 256).
    assert!(tensors.iter().any(|t| t["reason"].as_str().unwrap().contains("fallback from Q2_K")));

    let Some(py) = common::python() else { return };
    // llama.cpp loads it and returns finite logits.
    let r = Command::new(&py).arg(tool("llama_run.py")).arg(&out).output().unwrap();
    assert!(r.status.success(), "llama.cpp failed on our file: {}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["finite"], true);
    // gguf-py's dequantizer agrees with ours on every tensor.
    let f32_out = dir.path().join("dequant.gguf");
    let o = quantmix(&["quantize", "--type", "F32", s(&out), "-o", s(&f32_out), "--quiet"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = Command::new(&py).arg(tool("gguf_dequant_check.py")).arg(&out).arg(&f32_out).output().unwrap();
    assert!(
        r.status.success(),
        "gguf-py disagrees: {}{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn dry_run_predicts_the_exact_size_and_writes_nothing() {
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    let out = dir.path().join("x.gguf");
    let o = quantmix(&["quantize", s(&model), "--preset", "Q4_K_M", "-o", s(&out), "--dry-run", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!out.exists());
    let o = quantmix(&["quantize", "--threads", "2", s(&model), "-o", s(&out), "--preset", "Q4_K_M", "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(plan["file_bytes"].as_u64().unwrap(), std::fs::metadata(&out).unwrap().len());

    // The output and its sidecar are as readable as any new file (not the
    // private 0o600 of a temporary file).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        assert_eq!(mode(&out), mode(&plain), "GGUF output mode");
        assert_eq!(mode(&dir.path().join("x.quantmap.json")), mode(&plain), "quant map mode");
    }
}

#[test]
fn bad_input_fails_cleanly() {
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    let out = dir.path().join("never.gguf");
    let bad = dir.path().join("bad.toml");
    let cases: &[(&str, &str)] = &[
        ("default = \"Q9_K\"\n", "unknown type"),
        ("default = \"Q4_K\"\n\n[[rule]]\nrole = \"attn_vv\"\ntype = \"Q8_0\"\n", ":3: rule #1: unknown role"),
        (
            "default = \"Q4_K\"\n[[rule]]\nrole = \"attn_v\"\nlayers = \"40-41\"\ntype = \"Q8_0\"\n",
            "layer 41 does not exist",
        ),
        ("default = \"Q4_K\"\n[[rule]]\nname = \"nothing.*\"\ntype = \"Q8_0\"\n", "matches no tensor"),
        (
            "default = \"Q4_K\"\n[[rule]]\nrole = \"attn_v\"\nlayers = \"every 0th\"\ntype = \"Q8_0\"\n",
            "invalid layer set",
        ),
        ("default = \"Q4_K\"\n[budget]\nsize = \"10MB\"\n", "budget"),
        ("default = \"Q4_K\"\ncolour = 3\n", "unknown field"),
    ];
    for (text, want) in cases {
        std::fs::write(&bad, text).unwrap();
        let o = quantmix(&["quantize", s(&model), "--recipe", s(&bad), "-o", s(&out)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{text}: {err}");
        assert!(err.contains(want) && err.contains("bad.toml"), "{text}: expected `{want}` in: {err}");
        assert!(!out.exists());
    }
    // A missing or malformed model names the file.
    let o = quantmix(&["quantize", "/nonexistent.gguf", "--type", "Q8_0", "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.gguf"));
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let o = quantmix(&["quantize", s(&bad), "--type", "Q8_0", "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.toml"));
    // Usage errors exit with 2.
    assert_eq!(
        quantmix(&["quantize", s(&model), "--type", "Q4_K", "--preset", "Q2_K", "-o", s(&out)]).status.code(),
        Some(2)
    );
    assert_eq!(quantmix(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only bad.toml may exist");
}

#[test]
fn recipe_command_writes_an_equivalent_explicit_recipe() {
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    for (preset, bumped) in [("Q4_K_M", "Q6_K"), ("IQ4_XS", "Q5_K"), ("IQ3_M", "Q4_K")] {
        let dir = common::tempdir();
        let r = dir.path().join("recipe.toml");
        let o = quantmix(&["recipe", "--preset", preset, s(&model), "-o", s(&r)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&r).unwrap();
        assert!(text.contains("[[rule]]") && text.contains(bumped), "{text}");
        // Quantizing with the explicit recipe and with the preset gives the same tensors.
        let (a, b) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
        assert!(quantmix(&["quantize", s(&model), "--recipe", s(&r), "-o", s(&a), "-q"]).status.success());
        assert!(quantmix(&["quantize", s(&model), "--preset", preset, "-o", s(&b), "-q"]).status.success());
        let (ga, gb) = (GgufFile::open(&a).unwrap(), GgufFile::open(&b).unwrap());
        for (x, y) in ga.tensors().iter().zip(gb.tensors()) {
            assert_eq!((&x.name, x.ty), (&y.name, y.ty));
            assert!(ga.tensor_data(x) == gb.tensor_data(y), "{preset}: {}", x.name);
        }
    }
}

#[test]
fn inspect_json_lists_tensors() {
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    let o = quantmix(&["inspect", "--json", s(&model)]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["metadata"]["general.architecture"], "llama");
    let t = &v["tensors"][0];
    for k in ["name", "shape", "type", "bytes"] {
        assert!(t.get(k).is_some(), "missing {k}");
    }
    let o = quantmix(&["inspect", s(&model)]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("per type"));
}
