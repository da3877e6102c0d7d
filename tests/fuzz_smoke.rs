//! The fuzzing entry points of `quantmix::fuzz` (the readers of untrusted
//! input: GGUF header, safetensors header, recipe, importance matrix,
//! sensitivity file) fed seeded mutations of small valid inputs: each must
//! return without panicking, and what it accepts must be consistent (the
//! entry points assert it). The coverage-guided versions are the cargo-fuzz
//! targets in `fuzz/`.
//!
//! By default every target gets a few thousand inputs (seconds). For a long
//! run: `QUANTMIX_FUZZ_SECS=900 [QUANTMIX_FUZZ_TARGET=recipe] cargo test
//! --release --test fuzz_smoke -- --nocapture` (seconds per target);
//! `QUANTMIX_FUZZ_SEEDS=fuzz/corpus` also writes the seeds as cargo-fuzz
//! corpora (`fuzz/corpus/TARGET/`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use quantmix::gguf::{GgmlType, GgufWriter, MetaValue, Metadata, TensorSpec};
use quantmix::sensitivity::imatrix::{Entry, Imatrix};

use common::Rng;

const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "1",
    "65535",
    "65536",
    "4294967290",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999999",
    "1e400",
    "-1e400",
    "inf",
    "-inf",
    "nan",
    "0.5",
    "1e-45",
    "\"\"",
    "[]",
    "{}",
    "null",
];
const INTERESTING: [u64; 10] = [0, 1, 31, 32, 255, 0xffff_ffff, 1 << 33, u64::MAX, u64::MAX / 2, 0x8000_0000_0000_0000];

/// One mutation of `base`: byte flips, interesting integers, cut, duplicate
/// or delete a range, splice with another seed; for text, numbers replaced
/// by extreme ones and lines shuffled.
fn mutate(rng: &mut Rng, base: &[u8], other: &[u8], text: bool) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            v.push(rng.next() as u8);
        }
        let at = rng.below(v.len());
        match rng.below(if text { 9 } else { 7 }) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v[at] = rng.next() as u8,
            2 => {
                let x = INTERESTING[rng.below(INTERESTING.len())];
                let w = [1usize, 2, 4, 8][rng.below(4)];
                for (k, b) in x.to_le_bytes().iter().take(w).enumerate() {
                    if let Some(p) = v.get_mut(at + k) {
                        *p = *b;
                    }
                }
            }
            3 => v.truncate(at),
            4 => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                let piece = v[at..end].to_vec();
                let to = rng.below(v.len());
                v.splice(to..to, piece);
            }
            5 => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                v.drain(at..end);
            }
            6 => {
                if !other.is_empty() {
                    let s = rng.below(other.len());
                    let e = (s + 1 + rng.below(256)).min(other.len());
                    v.splice(at..at, other[s..e].iter().copied());
                }
            }
            7 => {
                // Replace the number (or word) at `at` with an extreme one.
                let is_tok = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'+';
                let (mut s, mut e) = (at, at);
                while s > 0 && is_tok(v[s - 1]) {
                    s -= 1;
                }
                while e < v.len() && is_tok(v[e]) {
                    e += 1;
                }
                let n = NUMBERS[rng.below(NUMBERS.len())];
                v.splice(s..e, n.bytes());
            }
            _ => {
                // Duplicate a line.
                let s = v[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                let e = v[at..].iter().position(|&b| b == b'\n').map_or(v.len(), |p| at + p + 1);
                let line = v[s..e].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, line);
            }
        }
    }
    // Inputs grow by splicing and duplicating: keep them small enough to run fast.
    v.truncate(if text { 16 << 10 } else { 1 << 20 });
    v
}

fn gguf_seeds() -> Vec<Vec<u8>> {
    let dir = common::tempdir();
    let p = dir.path().join("a.gguf");
    let mut md = Metadata::default();
    md.set("general.architecture", MetaValue::String("llama".into()));
    md.set("llama.block_count", MetaValue::U32(1));
    md.set("arr", MetaValue::Array(quantmix::gguf::MetaType::U8, (0..20).map(MetaValue::U8).collect()));
    let specs = vec![
        TensorSpec { name: "blk.0.attn_q.weight".into(), shape: vec![32, 2], ty: GgmlType::Q8_0 },
        TensorSpec { name: "blk.0.attn_norm.weight".into(), shape: vec![32], ty: GgmlType::F32 },
    ];
    let mut w = GgufWriter::create(&p, &md, &specs, 32).unwrap();
    for s in &specs {
        w.write_tensor(&vec![1u8; s.n_bytes().unwrap() as usize]).unwrap();
    }
    w.finish().unwrap();
    vec![std::fs::read(&p).unwrap()]
}

fn safetensors_seeds() -> Vec<Vec<u8>> {
    let header = r#"{"__metadata__":{"format":"pt"},"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"model.embed_tokens.weight":{"dtype":"BF16","shape":[2,4],"data_offsets":[16,32]},"x":{"dtype":"I64","shape":[1],"data_offsets":[32,40]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend((0..40u8).map(|i| i.wrapping_mul(37)));
    vec![b]
}

fn recipe_seeds() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/recipes"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    v.push(
        b"default = \"Q4_K\"\n\n[[rule]]\nrole = \"attn_v\"\nlayers = \"first 1/8, last 2, every 3rd from 1/8+2, 0-1\"\ntype = \"Q8_0\"\nwhy = \"x\"\n\n[[rule]]\nregex = \"blk\\\\.[0-9]+\\\\.ffn_.*\"\ntype = \"keep\"\noptional = true\n\n[fallback]\nQ4_K = \"Q5_0\"\n\n[imatrix]\nfile = \"i.gguf\"\n"
            .to_vec(),
    );
    v.push(b"preset = \"Q4_K_M\"\n[[rule]]\nname = \"blk.*.attn_q.weight\"\nlayers = \"more_bits\"\ntype = \"Q6_K\"\n[budget]\nsize = \"105.5MB\"\nsensitivity = \"s.json\"\n".to_vec());
    v.push(b"[budget]\nbpw = 4.5\n".to_vec());
    v
}

fn imatrix_seeds() -> Vec<Vec<u8>> {
    let dir = common::tempdir();
    let p = dir.path().join("i.gguf");
    let mut m = Imatrix { datasets: vec!["cal.txt".into()], chunk_count: 2, chunk_size: 512, ..Default::default() };
    m.entries.insert("blk.0.attn_q.weight".into(), Entry { sums: vec![2.0; 32], counts: vec![2.0] });
    m.entries.insert("blk.0.ffn_up_exps.weight".into(), Entry { sums: vec![1.0; 64], counts: vec![1.0, 3.0] });
    m.save_gguf(&p).unwrap();
    let mut legacy = Vec::new();
    legacy.extend_from_slice(&2i32.to_le_bytes());
    for name in [&b"blk.0.attn_k.weight"[..], b"output.weight"] {
        legacy.extend_from_slice(&(name.len() as i32).to_le_bytes());
        legacy.extend_from_slice(name);
        legacy.extend_from_slice(&4i32.to_le_bytes());
        legacy.extend_from_slice(&3i32.to_le_bytes());
        for x in [8f32, 12.0, 0.5] {
            legacy.extend_from_slice(&x.to_le_bytes());
        }
    }
    legacy.extend_from_slice(&10i32.to_le_bytes());
    legacy.extend_from_slice(&3i32.to_le_bytes());
    legacy.extend_from_slice(b"abc");
    vec![std::fs::read(&p).unwrap(), legacy]
}

fn sensitivity_seeds() -> Vec<Vec<u8>> {
    let (_, tensors) = quantmix::fuzz::small_model();
    let mut ts = Vec::new();
    let mut fixed = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        if t.shape.len() < 2 {
            fixed.push(serde_json::json!({"name": t.name, "type": t.ty.name(), "bytes": t.n_bytes()}));
            continue;
        }
        let cands: Vec<_> = [GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q2_K]
            .iter()
            .map(|ty| {
                let bytes = ty.row_bytes(t.row_len()).unwrap() * t.n_rows();
                let kld = if *ty == GgmlType::F16 { 0.0 } else { (i + 1) as f64 * 1e-3 / bytes as f64 * 1e5 };
                serde_json::json!({"type": ty.name(), "requested": [ty.name()], "bytes": bytes, "bpw": 1.0,
                    "kld": kld, "kld_err": 0.0, "proxy": kld})
            })
            .collect();
        ts.push(serde_json::json!({"name": t.name, "layer": null, "role": "", "shape": t.shape,
            "n_elements": t.n_elements(), "source_type": t.ty.name(), "source_bytes": t.n_bytes(), "candidates": cands}));
    }
    let j = serde_json::json!({"format": "quantmix-sensitivity", "version": 1,
        "model": {"path": "m.gguf", "bytes": 1, "arch": "llama", "n_layer": 4}, "imatrix": null,
        "metric": "kld", "tensors": ts, "fixed": fixed});
    vec![serde_json::to_vec_pretty(&j).unwrap(), serde_json::to_vec(&j).unwrap()]
}

type Target = (&'static str, fn(&[u8]) -> bool, fn() -> Vec<Vec<u8>>, bool);

const TARGETS: &[Target] = &[
    ("gguf_header", quantmix::fuzz::gguf_header, gguf_seeds, false),
    ("safetensors_header", quantmix::fuzz::safetensors_header, safetensors_seeds, false),
    ("recipe", quantmix::fuzz::recipe, recipe_seeds, true),
    ("imatrix", quantmix::fuzz::imatrix, imatrix_seeds, false),
    ("sensitivity_json", quantmix::fuzz::sensitivity_json, sensitivity_seeds, true),
];

/// Run one target: the seeds, then mutations until `n` inputs or the
/// deadline. Mutants the target accepts join the pool (up to 256, replacing
/// old ones), so mutations stack up on inputs that get deep into the
/// reader; a quarter of the time a seed is mutated again. Returns the
/// number of executions and of accepted inputs.
fn run(
    name: &str,
    f: fn(&[u8]) -> bool,
    seeds: &[Vec<u8>],
    text: bool,
    n: u64,
    deadline: Option<Instant>,
) -> (u64, u64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
    let mut pool: Vec<Vec<u8>> = seeds.to_vec();
    let (mut runs, mut accepted) = (0u64, 0u64);
    for s in seeds {
        accepted += f(s) as u64;
        runs += 1;
    }
    loop {
        if deadline.map_or(runs >= n, |d| runs % 256 == 0 && Instant::now() >= d) {
            return (runs, accepted);
        }
        let base = if rng.below(4) == 0 { &seeds[rng.below(seeds.len())] } else { &pool[rng.below(pool.len())] };
        let other = &pool[rng.below(pool.len())];
        let input = mutate(&mut rng, base, other, text);
        let result = std::panic::catch_unwind(|| f(&input));
        let ok = match result {
            Ok(ok) => ok,
            Err(_) => {
                let dir = std::env::temp_dir().join(format!("quantmix-fuzz-{name}"));
                let _ = std::fs::create_dir_all(&dir);
                let p = dir.join(format!("crash-{runs}"));
                let _ = std::fs::write(&p, &input);
                panic!("{name}: input #{runs} panicked; saved to {}", p.display());
            }
        };
        runs += 1;
        if ok {
            accepted += 1;
            if pool.len() < 256 {
                pool.push(input);
            } else {
                let i = seeds.len() + rng.below(256 - seeds.len());
                pool[i] = input;
            }
        }
    }
}

#[test]
fn fuzz_entry_points_survive_mutated_inputs() {
    let secs: Option<u64> = std::env::var("QUANTMIX_FUZZ_SECS").ok().and_then(|s| s.parse().ok());
    let only = std::env::var("QUANTMIX_FUZZ_TARGET").ok();
    // QUANTMIX_FUZZ_SEEDS=DIR: also write every target's seeds to DIR/TARGET/ (cargo-fuzz corpora).
    let seeds_dir = std::env::var_os("QUANTMIX_FUZZ_SEEDS").map(std::path::PathBuf::from);
    for (name, f, seeds, text) in TARGETS {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let seeds = seeds();
        if let Some(dir) = &seeds_dir {
            let d = dir.join(if *name == "gguf_header" { "gguf_reader" } else { name });
            std::fs::create_dir_all(&d).unwrap();
            for (i, s) in seeds.iter().enumerate() {
                std::fs::write(d.join(format!("seed-{i}")), s).unwrap();
            }
        }
        let deadline = secs.map(|s| Instant::now() + Duration::from_secs(s));
        let t = Instant::now();
        let (runs, accepted) = run(name, *f, &seeds, *text, 20_000, deadline);
        eprintln!("{name}: {runs} inputs ({accepted} accepted) in {:.1} s, no panic", t.elapsed().as_secs_f64());
    }
}

#[test]
fn seeds_are_accepted() {
    // The seeds are valid inputs: the mutations start from the interesting side.
    for s in safetensors_seeds() {
        assert!(quantmix::convert::safetensors::parse_header(Path::new("s"), &s).is_ok());
    }
    for s in imatrix_seeds() {
        assert!(Imatrix::parse(Path::new("i"), &s).is_ok());
    }
    for s in recipe_seeds() {
        let t = String::from_utf8(s).unwrap();
        assert!(quantmix::recipe::Recipe::from_toml_str(&t, "r").is_ok(), "{t}");
    }
    let (md, tensors) = quantmix::fuzz::small_model();
    let base = quantmix::recipe::Recipe::from_toml_str("[budget]\nbpw = 16.0\n", "b").unwrap();
    for s in sensitivity_seeds() {
        let table = quantmix::sensitivity::schema::SensitivityTable::parse(Path::new("s"), &s).unwrap();
        let req = quantmix::plan::budget::BudgetRequest {
            base: &base,
            table: &table,
            table_path: Path::new("s"),
            limit: &quantmix::recipe::Budget::Bpw(4.5),
            imatrix: None,
            imatrix_name: None,
            origin: "seed".into(),
        };
        let p = quantmix::plan::budget::plan_under_budget(&md, &tensors, &req);
        assert!(p.is_ok(), "{:?}", p.err());
    }
}
