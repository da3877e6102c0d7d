//! `quantmix sensitivity` on the synthetic 12-layer llama fixture (dims
//! multiples of 256, so every k-quant applies): the JSON schema, the
//! measurement itself (restarting at the changed layer gives what a whole
//! forward pass of a quantized file gives), shards + merge, resume after
//! Ctrl-C, and the plan it feeds.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use quantmix::gguf::GgmlType;
use quantmix::model::{LlamaModel, Tokenizer, WeightOverride};
use quantmix::sensitivity::calibration::Calibration;
use quantmix::sensitivity::imatrix::Imatrix;
use quantmix::sensitivity::measure::{quantize_candidate, row_kld, targets, Reference};
use quantmix::sensitivity::schema::{SensTensor, SensitivityTable};
use serde_json::Value;

const MODEL: &str = "presets/synth12-llama-f16.gguf";
/// Small settings: 2 sequences of 32 tokens, 3 types, imatrix on 2 chunks.
const FAST: &[&str] = &["--ctx", "32", "--chunks", "2", "--types", "Q2_K,Q4_K,Q8_0", "--quiet"];

fn quantmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).output().expect("run quantmix")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "quantmix failed: {:?}\n{err}", o.status);
    err
}

/// One full measurement (imatrix collected on 2 chunks), shared by tests.
fn measured(dir: &Path) -> (PathBuf, SensitivityTable) {
    let out = dir.join("sens.json");
    let model = common::fixture(MODEL);
    let mut args = vec!["sensitivity", s(&model), "-o", s(&out), "--imatrix-chunks", "2"];
    args.extend_from_slice(FAST);
    ok(&quantmix(&args));
    let t = SensitivityTable::load(&out).unwrap();
    (out, t)
}

fn tensors_equal(a: &[SensTensor], b: &[SensTensor]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.candidates.len(), y.candidates.len(), "{}", x.name);
        for (c, d) in x.candidates.iter().zip(&y.candidates) {
            assert_eq!((&c.ty, c.bytes), (&d.ty, d.bytes), "{}", x.name);
            let tol = 1e-9 * c.kld.abs().max(1e-12);
            assert!((c.kld - d.kld).abs() <= tol, "{} {}: {} vs {}", x.name, c.ty, c.kld, d.kld);
            assert!((c.proxy - d.proxy).abs() <= 1e-9 * c.proxy.abs().max(1e-12), "{} {}", x.name, c.ty);
        }
    }
}

#[test]
fn measures_every_tensor_and_writes_the_documented_schema() {
    let dir = common::tempdir();
    let (out, t) = measured(dir.path());
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(j["format"], "quantmix-sensitivity");
    assert_eq!(j["version"], 1);
    assert_eq!(j["model"]["arch"], "llama");
    assert_eq!(j["model"]["n_layer"], 12);
    assert_eq!(j["calibration"]["ctx"], 32);
    assert_eq!(j["calibration"]["chunks"], 2);
    assert!(j["calibration"]["tokens"].as_u64().unwrap() >= 30_000, "default calibration set");
    assert_eq!(j["calibration"]["imatrix_chunks"], 2);
    // The imatrix sits beside the JSON, named relative to it.
    assert_eq!(j["imatrix"], "sens.imatrix.gguf");
    let im = Imatrix::load(&dir.path().join("sens.imatrix.gguf")).unwrap();
    assert_eq!(im.entries.len(), 12 * 7);

    // 12 blocks × 7 matrices + token_embd + output; norms are fixed.
    assert_eq!(t.tensors.len(), 86);
    assert!(t.fixed.iter().any(|f| f.name == "output_norm.weight"));
    assert!(t.fixed.iter().all(|f| f.name.ends_with("norm.weight")), "{:?}", t.fixed);
    let mut order = [0usize; 3];
    for x in &t.tensors {
        let types: Vec<&str> = x.candidates.iter().map(|c| c.ty.as_str()).collect();
        assert_eq!(types, ["Q2_K", "Q4_K", "Q8_0", "F16"], "{}", x.name);
        assert_eq!(x.source_type, "F16");
        let f16 = &x.candidates[3];
        assert_eq!((f16.kld, f16.bytes), (0.0, x.source_bytes));
        assert!(f16.requested.is_empty());
        for c in &x.candidates {
            assert!(c.kld >= 0.0 && c.kld.is_finite(), "{} {}: {}", x.name, c.ty, c.kld);
            let expect = GgmlType::from_name(&c.ty).unwrap().row_bytes(x.shape[0]).unwrap() * x.shape[1];
            assert_eq!(c.bytes, expect, "{} {}", x.name, c.ty);
            assert!((c.bpw - c.bytes as f64 * 8.0 / x.n_elements as f64).abs() < 1e-9);
        }
        let k: Vec<f64> = x.candidates.iter().map(|c| c.kld).collect();
        let p: Vec<f64> = x.candidates.iter().map(|c| c.proxy).collect();
        assert!(p[0] > p[1] && p[1] > p[2], "{}: proxy {p:?}", x.name);
        order[0] += (k[0] > k[1]) as usize;
        order[1] += (k[1] > k[2]) as usize;
        order[2] += (x.layer.is_some() == x.name.starts_with("blk.")) as usize;
    }
    // Fewer bits do more damage, for (almost) every tensor.
    assert!(order[0] >= 80 && order[1] >= 80, "{order:?}");
    assert_eq!(order[2], 86);
    let q2: f64 = t.tensors.iter().map(|x| x.candidates[0].kld).sum();
    let q8: f64 = t.tensors.iter().map(|x| x.candidates[2].kld).sum();
    assert!(q2 > 20.0 * q8, "Q2_K {q2} vs Q8_0 {q8}");
    let rc = t.rank_correlation.unwrap();
    assert_eq!(rc.pairs, 86 * 3);
    assert!(rc.spearman > 0.3 && rc.spearman <= 1.0, "{rc:?}");

    // Reports beside it; no partial file left.
    for ext in ["md", "svg", "png"] {
        let p = out.with_extension(ext);
        assert!(std::fs::metadata(&p).map(|m| m.len() > 500).unwrap_or(false), "{}", p.display());
    }
    let md = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(md.contains("blk.11.ffn_down.weight") && md.contains("Spearman"));
    assert!(!dir.path().join("sens.json.partial").exists());
}

/// The shortcut (restart at the changed layer from the cached residual
/// stream) gives exactly the divergence of a whole forward pass, and that
/// of a file `quantmix quantize` writes with the same tensor quantized.
#[test]
fn restarting_at_the_changed_layer_equals_a_full_pass_of_the_quantized_file() {
    let dir = common::tempdir();
    let model_path = common::fixture(MODEL);
    let model = LlamaModel::open(&model_path).unwrap();
    let tok = Tokenizer::from_metadata(model.file().metadata(), &model_path).unwrap();
    let tokens = tok.encode(&Calibration::default_set().joined(), true, false).unwrap();
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let reference = Reference::compute(&model, &tokens, bos, 32, 2).unwrap();

    // An imatrix to quantize with.
    let im_path = dir.path().join("im.gguf");
    ok(&quantmix(&["imatrix", s(&model_path), "--chunks", "2", "-o", s(&im_path), "--quiet"]));
    let importance = Imatrix::load(&im_path).unwrap().importance();

    let (all, _) = targets(&model, &[GgmlType::Q2_K]);
    let name = "blk.7.attn_v.weight";
    let target = all.iter().find(|t| t.info.name == name).unwrap();
    assert_eq!(target.start_layer, 7);
    let w = quantmix::sensitivity::measure::weights_f32(&model, &target.info).unwrap();
    let imp = importance.get(name).map(Vec::as_slice);
    assert!(imp.is_some());
    let (q, _) = quantize_candidate(GgmlType::Q2_K, &w, 256, imp).unwrap();
    let over = || WeightOverride { name, ty: GgmlType::Q2_K, data: &q };
    let (k_short, _) = reference.divergence(&model, 7, over()).unwrap();
    let (k_full, _) = reference.divergence(&model, 0, over()).unwrap();
    assert!(k_short > 1e-6, "{k_short}");
    assert_eq!(k_short, k_full);

    // The same tensor quantized by `quantmix quantize` with the imatrix.
    let recipe = dir.path().join("one.toml");
    std::fs::write(
        &recipe,
        format!(
            "default = \"keep\"\n[[rule]]\nname = \"{name}\"\ntype = \"Q2_K\"\n[imatrix]\nfile = \"{}\"\n",
            im_path.display()
        ),
    )
    .unwrap();
    let qfile = dir.path().join("one.gguf");
    ok(&quantmix(&["quantize", "--recipe", s(&recipe), s(&model_path), "-o", s(&qfile), "--quiet"]));
    let qmodel = LlamaModel::open(&qfile).unwrap();
    let qi = qmodel.file().tensors().iter().find(|t| t.name == name).unwrap().clone();
    assert_eq!(qi.ty, GgmlType::Q2_K);
    assert_eq!(qmodel.file().tensor_data(&qi), &q[..], "sensitivity quantizes as quantize does");
    let qref = Reference::compute(&qmodel, &tokens, bos, 32, 2).unwrap();
    let n = reference.n_vocab;
    let kl: Vec<f64> = qref
        .logprobs
        .chunks_exact(n)
        .zip(reference.logprobs.chunks_exact(n))
        .map(|(q, r)| {
            // logprobs are logits up to a constant per row: KL is the same.
            row_kld(r, q)
        })
        .collect();
    let mean = kl.iter().sum::<f64>() / kl.len() as f64;
    assert!((mean - k_short).abs() <= 1e-6 * k_short, "{mean} vs {k_short}");
}

#[test]
fn shards_merge_into_the_whole_run_and_resume_continues_after_ctrl_c() {
    let dir = common::tempdir();
    let (full_path, full) = measured(dir.path());
    let model = common::fixture(MODEL);
    let im = dir.path().join("sens.imatrix.gguf");

    // Shards with the same imatrix, merged.
    let mut parts = Vec::new();
    for i in 1..=3 {
        let out = dir.path().join(format!("part{i}.json"));
        let shard = format!("{i}/3");
        let mut args = vec!["sensitivity", s(&model), "-o", s(&out), "--imatrix", s(&im), "--shard", &shard];
        args.extend_from_slice(FAST);
        ok(&quantmix(&args));
        let t = SensitivityTable::load(&out).unwrap();
        assert_eq!(t.shard.unwrap().index, i);
        assert!((28..=29).contains(&t.tensors.len()), "{}", t.tensors.len());
        assert!(!out.with_extension("svg").exists(), "a shard writes no reports");
        parts.push(out);
    }
    let merged = dir.path().join("merged.json");
    // Out of order on purpose.
    ok(&quantmix(&["sensitivity", "--merge", s(&parts[2]), s(&parts[0]), s(&parts[1]), "-o", s(&merged)]));
    let m = SensitivityTable::load(&merged).unwrap();
    assert!(m.shard.is_none());
    tensors_equal(&full.tensors, &m.tensors);
    assert_eq!(m.rank_correlation.unwrap().pairs, full.rank_correlation.unwrap().pairs);
    assert!(merged.with_extension("svg").exists());
    // A missing shard is an error.
    let o = quantmix(&["sensitivity", "--merge", s(&parts[0]), s(&parts[1]), "-o", s(&dir.path().join("x.json"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard 3/3 is missing"));

    // Ctrl-C after a few tensors, then --resume.
    let out = dir.path().join("resumed.json");
    let partial = dir.path().join("resumed.json.partial");
    let mut args = vec!["sensitivity", s(&model), "-o", s(&out), "--imatrix", s(&im), "--threads", "1"];
    args.extend_from_slice(FAST);
    let mut child = Command::new(env!("CARGO_BIN_EXE_quantmix"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&partial).map(|s| s.lines().count()).unwrap_or(0);
        if lines >= 4 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no progress in {}", partial.display());
        if let Some(st) = child.try_wait().unwrap() {
            panic!("finished before it could be interrupted: {st}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    assert!(!out.exists());
    assert!(partial.exists());
    let kept = std::fs::read_to_string(&partial).unwrap().lines().count() - 1;
    assert!((3..86).contains(&kept), "{kept}");

    args.push("--resume");
    let err = ok(&quantmix(&args));
    assert!(err.contains(&format!("resuming, {kept} of 86 tensors already measured")), "{err}");
    assert!(!partial.exists());
    tensors_equal(&full.tensors, &SensitivityTable::load(&out).unwrap().tensors);

    // --resume with other settings is refused.
    std::fs::write(&partial, std::fs::read_to_string(&full_path).unwrap().lines().next().unwrap()).unwrap();
    let o = quantmix(&args);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn the_measured_table_plans_a_file_within_budget() {
    let dir = common::tempdir();
    let (sens, _) = measured(dir.path());
    let model = common::fixture(MODEL);
    // Q4_K_M of this model by llama-quantize: the budget.
    let presets: Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture("presets/synth12-llama-presets.json")).unwrap())
            .unwrap();
    let budget = presets["Q4_K_M"]["file_bytes"].as_u64().unwrap();
    let plan = dir.path().join("plan.toml");
    ok(&quantmix(&["plan", s(&model), "--sensitivity", s(&sens), "--budget", &budget.to_string(), "-o", s(&plan)]));
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(text.contains("sens.imatrix.gguf"), "the plan quantizes with the measured imatrix");
    let out = dir.path().join("out.gguf");
    ok(&quantmix(&["quantize", "--recipe", s(&plan), s(&model), "-o", s(&out), "--quiet"]));
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size <= budget && size as f64 >= 0.97 * budget as f64, "{size} vs {budget}");
}

#[test]
fn bad_arguments_fail_cleanly() {
    let dir = common::tempdir();
    let model = common::fixture(MODEL);
    let out = dir.path().join("x.json");
    for (args, msg) in [
        (vec!["--shard", "3/2"], "needs 1 ≤ i ≤ n"),
        (vec!["--shard", "x"], "expected i/n"),
        (vec!["--types", "Q4_K,NOPE"], "unknown type `NOPE`"),
        (vec!["--ctx", "100000"], "sequences of 100000 tokens need"),
    ] {
        let mut a = vec!["sensitivity", s(&model), "-o", s(&out), "--imatrix-chunks", "2", "--quiet"];
        a.extend(args);
        let o = quantmix(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{a:?}: {err}");
        assert!(err.contains(msg), "{a:?}: {err}");
        assert!(!out.exists());
    }
    let o = quantmix(&["sensitivity", s(&common::fixture("README.md")), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("README.md"));
}

/// `sensitivity --types TYPES --exhaustive` on the fixture (short
/// sequences): for every tensor, its candidates of `types` in that order
/// (each must be there).
fn measured_candidates(types: &[&str]) -> Vec<(String, Vec<quantmix::sensitivity::schema::SensCandidate>)> {
    let t = measure_types(types);
    t.tensors
        .iter()
        .map(|x| {
            let get = |ty: &str| {
                x.candidates
                    .iter()
                    .find(|c| c.ty == ty)
                    .unwrap_or_else(|| panic!("{}: no {ty} candidate", x.name))
                    .clone()
            };
            (x.name.clone(), types.iter().map(|ty| get(ty)).collect())
        })
        .collect()
}

/// An exhaustive sensitivity run of the fixture with `--types`.
fn measure_types(types: &[&str]) -> SensitivityTable {
    let dir = common::tempdir();
    let out = dir.path().join("types.json");
    let model = common::fixture(MODEL);
    let list = types.join(",");
    ok(&quantmix(&[
        "sensitivity",
        s(&model),
        "-o",
        s(&out),
        "--imatrix-chunks",
        "2",
        "--ctx",
        "32",
        "--chunks",
        "2",
        "--types",
        &list,
        "--exhaustive",
        "--quiet",
    ]));
    let t = SensitivityTable::load(&out).unwrap();
    assert!(!t.tensors.is_empty());
    t
}

/// `--types` takes the IQ4 types: every tensor of the fixture (rows of 256
/// and 768) gets both as candidates, each measured by a forward pass with
/// a positive divergence, IQ4_NL costing more bytes than IQ4_XS.
#[test]
fn iq4_types_are_measured_candidates() {
    for (name, c) in measured_candidates(&["IQ4_XS", "IQ4_NL"]) {
        assert!(c[0].kld > 0.0 && c[1].kld > 0.0, "{name}: {} / {}", c[0].kld, c[1].kld);
        assert!(c[1].bytes > c[0].bytes, "{name}");
    }
}

/// `--types` takes the IQ3 types and IQ2_S: every tensor of the fixture
/// gets all three as candidates, each measured by a forward pass with a
/// positive divergence, in the order of their sizes (measured with the
/// importance matrix the run collects, as IQ3_XXS and IQ2_S require).
#[test]
fn iq3_types_are_measured_candidates() {
    for (name, c) in measured_candidates(&["IQ2_S", "IQ3_XXS", "IQ3_S"]) {
        assert!(c.iter().all(|c| c.kld > 0.0), "{name}");
        assert!(c[2].bytes > c[1].bytes && c[1].bytes > c[0].bytes, "{name}");
    }
}

/// `--types` takes the 1- and 2-bit i-quants: every layer matrix of the
/// fixture gets each as a measured candidate (positive divergence), in the
/// order of their sizes; the token embeddings and the output projection,
/// which have no importance vector (the imatrix skips the output, as
/// llama-imatrix does), get none of the types ggml makes only with one
/// (IQ1_S, IQ2_XXS, IQ2_XS) but do get IQ1_M.
#[test]
fn iq1_and_iq2_types_are_measured_candidates() {
    let types = ["IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS"];
    let t = measure_types(&types);
    for x in &t.tensors {
        let get = |ty: &str| x.candidates.iter().find(|c| c.ty == ty);
        if x.name == "token_embd.weight" || x.name == "output.weight" {
            assert!(get("IQ1_S").is_none() && get("IQ2_XXS").is_none() && get("IQ2_XS").is_none(), "{}", x.name);
            assert!(get("IQ1_M").is_some_and(|c| c.kld > 0.0), "{}", x.name);
            continue;
        }
        let c: Vec<_> = types.iter().map(|ty| get(ty).unwrap_or_else(|| panic!("{}: no {ty}", x.name))).collect();
        assert!(c.iter().all(|c| c.kld > 0.0), "{}", x.name);
        assert!(c.windows(2).all(|w| w[0].bytes < w[1].bytes), "{}: sizes out of order", x.name);
    }
    assert!(t.tensors.iter().any(|x| x.name == "token_embd.weight"), "the embeddings are measured");
    assert!(t.tensors.iter().any(|x| x.name == "output.weight"), "the output projection is measured");
}

/// `--types` takes the low-bit types and MXFP4: every tensor of the fixture
/// gets each as a measured candidate (positive divergence), their sizes in
/// the order of their bits per weight, and the 1-bit type hurts more than
/// MXFP4 on every tensor.
#[test]
fn low_bit_types_are_measured_candidates() {
    for (name, c) in measured_candidates(&["Q1_0", "TQ1_0", "TQ2_0", "Q2_0", "MXFP4"]) {
        assert!(c.iter().all(|c| c.kld > 0.0), "{name}");
        assert!(c.windows(2).all(|w| w[0].bytes < w[1].bytes), "{name}: sizes out of order");
        assert!(c[0].kld > c[4].kld, "{name}: Q1_0 {} vs MXFP4 {}", c[0].kld, c[4].kld);
    }
}
