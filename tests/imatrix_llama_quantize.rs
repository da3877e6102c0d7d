//! Quantizing with an importance matrix gives exactly what llama-quantize
//! gives with the same matrix: same types (llama.cpp's preset logic knows
//! about the imatrix) and byte-identical tensor data. The imatrix file is
//! written by quantmix in llama.cpp's GGUF imatrix format and read by both.

mod common;

use std::process::Command;

use quantmix::gguf::GgufFile;
use quantmix::sensitivity::imatrix::{Entry, Imatrix};

/// Deterministic positive pseudo-random values with a heavy tail, like real
/// activation statistics.
fn values(seed: u64, n: usize) -> Vec<f32> {
    common::uniform01(seed, n).map(|u| 0.01 + u * u * u * 50.0).collect()
}

/// A synthetic importance matrix for every 2-D layer matrix of `model`.
fn synthetic_imatrix(model: &std::path::Path, out: &std::path::Path) {
    let g = GgufFile::open(model).unwrap();
    let mut m = Imatrix { datasets: vec!["synthetic".into()], chunk_count: 4, chunk_size: 512, ..Default::default() };
    for (i, t) in g.tensors().iter().enumerate() {
        if t.shape.len() == 2 && t.name.starts_with("blk.") && !t.name.contains("norm") {
            let n = t.shape[0] as usize;
            m.entries.insert(t.name.clone(), Entry { sums: values(i as u64 + 1, n), counts: vec![512.0 * 4.0] });
        }
    }
    m.save_gguf(out).unwrap();
}

/// `recipe --preset P --imatrix FILE` writes the explicit recipe of a preset
/// whose types need an importance matrix (refused without one, the message
/// pointing at `--imatrix`), and quantizing with it and that matrix gives
/// the preset's tensors.
#[test]
fn recipe_with_imatrix_reproduces_the_low_bit_presets() {
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    let imat = dir.path().join("synth12.imatrix.gguf");
    synthetic_imatrix(&model, &imat);
    let run = |args: &[&std::ffi::OsStr]| Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().unwrap();
    let os = |p: &std::path::Path| p.as_os_str().to_owned();
    for preset in ["IQ3_XXS", "IQ2_XXS", "IQ1_S"] {
        let r = dir.path().join(format!("{preset}.toml"));
        let o = run(&[
            "recipe".as_ref(),
            "--preset".as_ref(),
            preset.as_ref(),
            model.as_os_str(),
            "-o".as_ref(),
            r.as_os_str(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("requires an importance matrix") && err.contains("--imatrix"),
            "{err}"
        );
        let o = run(&[
            "recipe".as_ref(),
            "--preset".as_ref(),
            preset.as_ref(),
            "--imatrix".as_ref(),
            imat.as_os_str(),
            model.as_os_str(),
            "-o".as_ref(),
            r.as_os_str(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (a, b) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
        for (out, how, what) in [(&a, "--recipe", os(&r)), (&b, "--preset", preset.into())] {
            let o = run(&[
                "quantize".as_ref(),
                model.as_os_str(),
                how.as_ref(),
                what.as_os_str(),
                "--imatrix".as_ref(),
                imat.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
                "-q".as_ref(),
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let (ga, gb) = (GgufFile::open(&a).unwrap(), GgufFile::open(&b).unwrap());
        assert!(ga.tensors().iter().any(|t| t.ty.name() == preset), "{preset}: no {preset} tensor");
        for (x, y) in ga.tensors().iter().zip(gb.tensors()) {
            assert_eq!((&x.name, x.ty), (&y.name, y.ty), "{preset}");
            assert!(ga.tensor_data(x) == gb.tensor_data(y), "{preset}: {}", x.name);
        }
    }
}

/// Quantize `model` with each preset and a synthetic importance matrix
/// (every 2-D layer matrix), with quantmix and with llama-quantize, and
/// compare every tensor's type and bytes.
fn compare_with_llama_quantize(model: &std::path::Path, presets: &[&str]) {
    let Some(py) = common::python() else { return };
    let dir = common::tempdir();
    let imat = dir.path().join("model.imatrix.gguf");
    synthetic_imatrix(model, &imat);
    for preset in presets {
        let ours = dir.path().join(format!("ours-{preset}.gguf"));
        let theirs = dir.path().join(format!("llama-{preset}.gguf"));
        let o = Command::new(env!("CARGO_BIN_EXE_quantmix"))
            .args(["quantize", "--preset", preset, "--imatrix"])
            .arg(&imat)
            .arg(model)
            .arg("-o")
            .arg(&ours)
            .arg("-q")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = Command::new(&py)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/llama_quantize.py"))
            .arg(model)
            .arg(&theirs)
            .arg(preset)
            .arg("--imatrix")
            .arg(&imat)
            .output()
            .unwrap();
        assert!(o.status.success(), "llama_model_quantize: {}", String::from_utf8_lossy(&o.stderr));
        let (a, b) = (GgufFile::open(&ours).unwrap(), GgufFile::open(&theirs).unwrap());
        let mut bad = Vec::new();
        for t in a.tensors() {
            let u = b.tensor(&t.name).unwrap_or_else(|| panic!("{preset}: llama.cpp has no {}", t.name));
            if t.ty != u.ty || a.tensor_data(t) != b.tensor_data(u) {
                bad.push(format!("{} (ours {}, llama.cpp {})", t.name, t.ty, u.ty));
            }
        }
        assert!(bad.is_empty(), "{preset} with imatrix differs from llama-quantize: {}", bad.join(", "));
        eprintln!("{preset} + imatrix: {} tensors identical to llama-quantize", a.tensors().len());
        std::fs::remove_file(&ours).unwrap();
        std::fs::remove_file(&theirs).unwrap();
    }
}

#[test]
fn imatrix_quantization_matches_llama_quantize() {
    compare_with_llama_quantize(
        &common::fixture("presets/synth12-llama-f16.gguf"),
        &[
            "Q4_K_M", "Q2_K", "Q3_K_S", "Q5_K_S", "Q4_0", "Q5_1", "Q6_K", "IQ4_NL", "IQ4_XS", "IQ3_XS", "IQ3_S",
            "IQ3_M", "IQ3_XXS", "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S", "Q2_K_S",
        ],
    );
}

/// The presets that need an importance matrix on SmolLM2 (its 1536-wide
/// feed-forward rows take the 1- and 2-bit types; 576-wide rows fall back to IQ4_NL).
#[test]
fn smollm2_low_bit_presets_match_llama_quantize() {
    let Some(m) = common::smollm2() else { return };
    compare_with_llama_quantize(&m, &["IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S"]);
}

/// Without an importance matrix llama-quantize refuses IQ3_XS on synth12
/// (IQ3_XXS on its 256-wide attention and feed-forward rows) and Q2_K_S
/// (whose Q2_K tensors need one), and so does quantmix, naming the tensor.
#[test]
fn presets_without_imatrix_are_refused_like_llama_quantize() {
    let Some(py) = common::python() else { return };
    let model = common::fixture("presets/synth12-llama-f16.gguf");
    let dir = common::tempdir();
    for (preset, msg) in [
        ("IQ3_XS", "IQ3_XXS requires an importance matrix"),
        ("Q2_K_S", "Q2_K in a Q2_K_S file requires an importance matrix"),
    ] {
        let o = Command::new(&py)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/llama_quantize.py"))
            .arg(&model)
            .arg(dir.path().join("llama.gguf"))
            .arg(preset)
            .output()
            .unwrap();
        assert!(!o.status.success(), "llama-quantize made {preset} without an imatrix");
        let o = Command::new(env!("CARGO_BIN_EXE_quantmix"))
            .args(["quantize", "--preset", preset])
            .arg(&model)
            .arg("-o")
            .arg(dir.path().join("ours.gguf"))
            .arg("-q")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(msg) && err.contains("`blk.0.attn_"), "{preset}: {err}");
        assert!(!dir.path().join("ours.gguf").exists());
    }
}
