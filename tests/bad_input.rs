//! Bad input, every class of issue #16 for every command it applies to, as
//! one table: each row generates its input in a fresh directory, runs the
//! command there, and must end in a clear error: exit code 1, no panic
//! (exit 101 or "panicked"), the expected words in the message (file,
//! tensor, key or recipe line), and nothing left behind or lost: the
//! directory holds exactly the files it held before, byte for byte.
//!
//! Classes: 1 non-finite values; 2 crashes (counts, huge allocations);
//! 3 data left behind or lost (outputs that are inputs, a sidecar that
//! cannot be written; signals are in `signals_leave_nothing_behind`, on
//! SmolLM2); 4 silently wrong (layer sets, budgets, foreign sensitivity
//! files, hyper-parameters, config shapes, recipe lines).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use quantmix::gguf::{GgmlType, GgufFile, GgufWriter, MetaType, MetaValue, Metadata, TensorSpec};

fn synth12() -> PathBuf {
    common::fixture("presets/synth12-llama-f16.gguf")
}

/// A model read into memory, to be changed and written (synth12 by default).
#[derive(Clone)]
struct Model {
    md: Metadata,
    tensors: Vec<(TensorSpec, Vec<u8>)>,
}

impl Model {
    fn synth12() -> Model {
        let g = GgufFile::open(synth12()).unwrap();
        let tensors = g
            .tensors()
            .iter()
            .map(|t| (TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty: t.ty }, g.tensor_data(t).to_vec()))
            .collect();
        Model { md: g.metadata().clone(), tensors }
    }

    fn set(mut self, key: &str, v: MetaValue) -> Model {
        self.md.set(key, v);
        self
    }

    fn tensor(&mut self, name: &str) -> &mut (TensorSpec, Vec<u8>) {
        self.tensors.iter_mut().find(|(s, _)| s.name == name).unwrap_or_else(|| panic!("no tensor {name}"))
    }

    /// Element `i` of an F16 or F32 tensor set to `v`.
    fn value(mut self, name: &str, i: usize, v: f32) -> Model {
        let (s, d) = self.tensor(name);
        match s.ty {
            GgmlType::F16 => d[2 * i..2 * i + 2].copy_from_slice(&half::f16::from_f32(v).to_bits().to_le_bytes()),
            GgmlType::F32 => d[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes()),
            t => panic!("{t}"),
        }
        self
    }

    /// An F16 tensor stored as F32 (same values).
    fn stored_as_f32(mut self, name: &str) -> Model {
        let (s, d) = self.tensor(name);
        assert_eq!(s.ty, GgmlType::F16);
        *d = d
            .chunks_exact(2)
            .flat_map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32().to_le_bytes())
            .collect();
        s.ty = GgmlType::F32;
        self
    }

    /// Only the first `n` layers (and block_count = n).
    fn layers(mut self, n: u32) -> Model {
        self.tensors.retain(|(s, _)| !matches!(quantmix::recipe::roles::layer_of(&s.name), Some(l) if l >= n));
        self.set("llama.block_count", MetaValue::U32(n))
    }

    fn add(mut self, name: &str, shape: Vec<u64>, ty: GgmlType) -> Model {
        let s = TensorSpec { name: name.into(), shape, ty };
        let n = s.n_bytes().unwrap() as usize;
        self.tensors.push((s, (0..n).map(|i| (i % 7) as u8 * 9).collect()));
        self
    }

    fn write(&self, path: &Path) {
        let specs: Vec<TensorSpec> = self.tensors.iter().map(|(s, _)| s.clone()).collect();
        let mut w = GgufWriter::create(path, &self.md, &specs, 32).unwrap();
        for (_, d) in &self.tensors {
            w.write_tensor(d).unwrap();
        }
        w.finish().unwrap();
    }
}

/// An importance matrix in llama.cpp's GGUF format, values as given (not
/// checked: the writer of the library refuses non-finite ones).
fn imatrix_gguf(path: &Path, entries: &[(&str, Vec<f32>, Vec<f32>)]) {
    let mut md = Metadata::default();
    md.set("general.type", MetaValue::String("imatrix".into()));
    md.set("imatrix.datasets", MetaValue::Array(MetaType::String, vec![MetaValue::String("x".into())]));
    md.set("imatrix.chunk_count", MetaValue::U32(1));
    md.set("imatrix.chunk_size", MetaValue::U32(512));
    let mut specs = Vec::new();
    for (name, sums, counts) in entries {
        let m = counts.len() as u64;
        specs.push(TensorSpec {
            name: format!("{name}.in_sum2"),
            shape: vec![sums.len() as u64 / m, m],
            ty: GgmlType::F32,
        });
        specs.push(TensorSpec { name: format!("{name}.counts"), shape: vec![1, m], ty: GgmlType::F32 });
    }
    let mut w = GgufWriter::create(path, &md, &specs, 32).unwrap();
    for (_, sums, counts) in entries {
        w.write_tensor(bytemuck::cast_slice(sums)).unwrap();
        w.write_tensor(bytemuck::cast_slice(counts)).unwrap();
    }
    w.finish().unwrap();
}

/// An importance matrix in the legacy `.dat` format with one entry.
fn imatrix_dat(path: &Path, name: &str, ncall: i32, nval: i32, values: &[f32]) {
    let mut b = Vec::new();
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&(name.len() as i32).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&ncall.to_le_bytes());
    b.extend_from_slice(&nval.to_le_bytes());
    for v in values {
        b.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

/// The importance vector length of synth12's 256-wide tensors with `bad`
/// at column 3 of `blk.0.attn_q.weight`.
fn imatrix_with(path: &Path, bad: f32) {
    let mut sums = vec![1.0f32; 256];
    sums[3] = bad;
    imatrix_gguf(path, &[("blk.0.attn_q.weight", sums, vec![1.0]), ("blk.0.attn_k.weight", vec![1.0; 256], vec![1.0])]);
}

/// Shared inputs made once: synth12's sensitivity file (with its imatrix)
/// and a Hugging Face export of synth12.
struct Shared {
    _dir: tempfile::TempDir,
    sens: PathBuf,
    hf: PathBuf,
}

fn quantmix_in(dir: &Path, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_quantmix")).args(args).current_dir(dir).output().expect("run quantmix")
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let dir = common::tempdir();
        let d = dir.path();
        std::fs::copy(synth12(), d.join("m.gguf")).unwrap();
        let args = "sensitivity m.gguf -o sens/sens.json --ctx 16 --chunks 1 --imatrix-chunks 1 --types Q8_0,Q4_K -q";
        std::fs::create_dir(d.join("sens")).unwrap();
        let o = quantmix_in(d, &args.split(' ').map(String::from).collect::<Vec<_>>());
        assert!(o.status.success(), "sensitivity: {}", String::from_utf8_lossy(&o.stderr));
        // export-hf needs a tokenizer it knows how to write.
        Model::synth12().set("tokenizer.ggml.pre", MetaValue::String("gpt-2".into())).write(&d.join("gpt2.gguf"));
        let o = quantmix_in(d, &["export-hf".into(), "gpt2.gguf".into(), "-o".into(), "hf".into()]);
        assert!(o.status.success(), "export-hf: {}", String::from_utf8_lossy(&o.stderr));
        Shared { sens: d.join("sens"), hf: d.join("hf"), _dir: dir }
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Every file under `dir` and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), b"<dir>".to_vec());
                stack.push(p);
            } else if m.file_type().is_symlink() {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), b"<link>".to_vec());
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// One row: class, command, what is wrong, how to make it (files in the
/// directory; returns the arguments), words the error must contain.
struct Row {
    class: u8,
    command: &'static str,
    case: &'static str,
    setup: Box<dyn Fn(&Path) -> String>,
    expect: &'static [&'static str],
}

fn row(
    class: u8,
    command: &'static str,
    case: &'static str,
    expect: &'static [&'static str],
    setup: impl Fn(&Path) -> String + 'static,
) -> Row {
    Row { class, command, case, setup: Box::new(setup), expect }
}

/// A model file `m.gguf` in `d`.
fn model(d: &Path, m: Model) {
    m.write(&d.join("m.gguf"));
}

fn recipe(d: &Path, text: &str) {
    std::fs::write(d.join("r.toml"), text).unwrap();
}

const EVAL: &str = "eval m.gguf --ctx 64 --chunks 1 --no-speed";
const IMATRIX: &str = "imatrix m.gguf --ctx 64 --chunks 1 -o im.gguf -q";
const SENS: &str = "sensitivity m.gguf -o s.json --ctx 16 --chunks 1 --imatrix-chunks 1 --types Q8_0 -q";
const BENCH: &str = "bench model m.gguf --pp 8 --tg 2 --reps 1 --threads 1";

fn synth() -> Model {
    Model::synth12()
}

fn rows() -> Vec<Row> {
    let nan_w = || Model::synth12().value("blk.0.attn_q.weight", 300, f32::NAN);
    let inf_w = || Model::synth12().value("blk.0.attn_q.weight", 300, f32::INFINITY);
    let huge_blocks = || Model::synth12().set("llama.block_count", MetaValue::U64(4_000_000_000_000));
    let hp = |k: &'static str, v: f32| move || Model::synth12().set(k, MetaValue::F32(v));
    let budget_recipe = |body: &'static str| {
        move |d: &Path| {
            model(d, synth());
            recipe(d, body);
            "quantize m.gguf --recipe r.toml -o out.gguf -q".to_string()
        }
    };
    let mut v = vec![
        // ---- 1. non-finite values
        row(1, "quantize", "+Inf in an F16 weight", &["blk.0.attn_q.weight", "row 1, column 44", "inf"], move |d| {
            model(d, inf_w());
            "quantize m.gguf -o out.gguf --type Q4_K -q".into()
        }),
        row(1, "quantize", "NaN in an F16 weight (preset)", &["blk.0.attn_q.weight", "NaN"], move |d| {
            model(d, nan_w());
            "quantize m.gguf -o out.gguf --preset Q4_K_M -q".into()
        }),
        row(1, "quantize", "NaN in a copied F32 norm", &["blk.1.ffn_norm.weight", "row 0, column 5", "NaN"], |d| {
            model(d, Model::synth12().value("blk.1.ffn_norm.weight", 5, f32::NAN));
            "quantize m.gguf -o out.gguf --type Q8_0 -q".into()
        }),
        row(1, "quantize", "F32 weight beyond F16's range", &["blk.0.attn_q.weight", "becomes inf"], |d| {
            model(d, Model::synth12().stored_as_f32("blk.0.attn_q.weight").value("blk.0.attn_q.weight", 7, 1e6));
            "quantize m.gguf -o out.gguf --type F16 -q".into()
        }),
        row(1, "quantize", "+Inf in an imatrix (GGUF)", &["im.gguf", "blk.0.attn_q.weight", "column 3", "inf"], |d| {
            model(d, Model::synth12());
            imatrix_with(&d.join("im.gguf"), f32::INFINITY);
            "quantize m.gguf -o out.gguf --type Q4_K --imatrix im.gguf -q".into()
        }),
        row(1, "quantize", "NaN in an imatrix (legacy .dat)", &["im.dat", "blk.0.attn_q.weight", "NaN"], |d| {
            model(d, Model::synth12());
            let mut vals = vec![1.0f32; 256];
            vals[9] = f32::NAN;
            imatrix_dat(&d.join("im.dat"), "blk.0.attn_q.weight", 1, 256, &vals);
            "quantize m.gguf -o out.gguf --type Q4_K --imatrix im.dat -q".into()
        }),
        row(1, "quantize", "negative imatrix sum via the recipe's [imatrix]", &["r.toml:3", "[imatrix]", "-2"], |d| {
            model(d, Model::synth12());
            imatrix_with(&d.join("im.gguf"), -2.0);
            recipe(d, "default = \"Q4_K\"\n\n[imatrix]\nfile = \"im.gguf\"\n");
            "quantize m.gguf --recipe r.toml -o out.gguf -q".into()
        }),
        row(1, "sensitivity", "+Inf in the given imatrix", &["im.gguf", "inf"], |d| {
            model(d, Model::synth12());
            imatrix_with(&d.join("im.gguf"), f32::INFINITY);
            "sensitivity m.gguf -o s.json --ctx 16 --chunks 1 --imatrix im.gguf -q".into()
        }),
        row(1, "plan", "NaN in the given imatrix", &["im.gguf", "NaN"], |d| {
            model(d, Model::synth12());
            copy_dir(&shared().sens, &d.join("sens"));
            imatrix_with(&d.join("im.gguf"), f32::NAN);
            "plan m.gguf --sensitivity sens/sens.json --budget 4.5bpw --imatrix im.gguf -o p.toml".into()
        }),
        row(1, "eval", "NaN weight", &["m.gguf", "chunk 0", "non-finite"], move |d| {
            model(d, nan_w());
            EVAL.into()
        }),
        row(1, "eval", "NaN norm", &["m.gguf", "non-finite"], |d| {
            model(d, Model::synth12().value("output_norm.weight", 0, f32::NAN));
            EVAL.into()
        }),
        row(1, "imatrix", "+Inf weight", &["non-finite"], move |d| {
            model(d, inf_w());
            IMATRIX.into()
        }),
        row(1, "sensitivity", "NaN weight", &["non-finite"], move |d| {
            model(d, nan_w());
            SENS.into()
        }),
        row(1, "export-hf", "NaN weight", &["blk.0.attn_q.weight", "NaN or infinite"], move |d| {
            model(d, nan_w().set("tokenizer.ggml.pre", MetaValue::String("gpt-2".into())));
            "export-hf m.gguf -o hf".into()
        }),
        row(1, "convert", "NaN in a safetensors weight", &["model.safetensors", "NaN or infinite"], |d| {
            copy_dir(&shared().hf, &d.join("hf"));
            let p = d.join("hf/model.safetensors");
            let mut b = std::fs::read(&p).unwrap();
            let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            let st = quantmix::convert::safetensors::parse_header(&p, &b).unwrap().0;
            let t = st.iter().find(|t| t.name == "model.layers.0.mlp.up_proj.weight").unwrap();
            assert!(t.start as usize > n);
            let at = t.start as usize + 2 * 5;
            b[at..at + 2].copy_from_slice(&half::f16::NAN.to_bits().to_le_bytes());
            std::fs::write(&p, b).unwrap();
            "convert hf -o out.gguf --tokenizer-pre gpt-2".into()
        }),
        // ---- 2. crashes: counts against the file and sane limits
        row(2, "quantize", "imatrix on a 4-D expert tensor", &["blk.0.ffn_up_exps.weight", "importance vector"], |d| {
            model(d, Model::synth12().add("blk.0.ffn_up_exps.weight", vec![256, 4, 2, 2], GgmlType::F16));
            imatrix_gguf(
                &d.join("im.gguf"),
                &[
                    ("blk.0.ffn_up_exps.weight", vec![1.0; 512], vec![1.0, 1.0]),
                    ("blk.0.attn_q.weight", vec![1.0; 256], vec![1.0]),
                ],
            );
            "quantize m.gguf -o out.gguf --type Q4_K --imatrix im.gguf -q".into()
        }),
        row(2, "eval", "huge block_count", &["m.gguf", "block_count"], move |d| {
            model(d, huge_blocks());
            EVAL.into()
        }),
        row(2, "imatrix", "huge block_count", &["m.gguf", "block_count"], move |d| {
            model(d, huge_blocks());
            IMATRIX.into()
        }),
        row(2, "sensitivity", "huge block_count", &["m.gguf", "block_count"], move |d| {
            model(d, huge_blocks());
            SENS.into()
        }),
        row(2, "bench model", "huge block_count", &["m.gguf", "block_count"], move |d| {
            model(d, huge_blocks());
            BENCH.into()
        }),
        row(2, "quantize", "huge block_count", &["m.gguf", "block_count"], move |d| {
            model(d, huge_blocks());
            "quantize m.gguf -o out.gguf --preset Q4_K_M -q".into()
        }),
        row(2, "export-hf", "huge block_count", &["m.gguf", "block_count"], move |d| {
            model(d, huge_blocks().set("tokenizer.ggml.pre", MetaValue::String("gpt-2".into())));
            "export-hf m.gguf -o hf".into()
        }),
        row(2, "recipe", "block_count beyond the tensors", &["m.gguf", "block_count", "12 layers"], |d| {
            model(d, Model::synth12().set("llama.block_count", MetaValue::U32(40)));
            "recipe --preset Q4_K_M m.gguf -o r.toml".into()
        }),
        row(2, "eval", "a context larger than any cache", &["context"], |d| {
            model(d, synth());
            "eval m.gguf --ctx 64 --chunks 1 --pp 100000000 --tg 1 --reps 1".into()
        }),
        row(2, "quantize", "legacy imatrix with a lying value count", &["im.dat", "values do not fit"], |d| {
            model(d, synth());
            imatrix_dat(&d.join("im.dat"), "blk.0.attn_q.weight", 1, i32::MAX, &[1.0; 4]);
            "quantize m.gguf -o out.gguf --type Q4_K --imatrix im.dat -q".into()
        }),
    ];
    for cmd in ["inspect", "convert", "quantize"] {
        let args = match cmd {
            "inspect" => "inspect big.gguf",
            "convert" => "convert big.gguf -o out.gguf",
            _ => "quantize big.gguf -o out.gguf --type Q8_0 -q",
        };
        v.push(row(2, cmd, "18-million-element metadata array", &["big.gguf", "big.array", "at most"], move |d| {
            let m =
                Model::synth12().set("big.array", MetaValue::Array(MetaType::U8, vec![MetaValue::U8(1); 18_000_000]));
            m.write(&d.join("big.gguf"));
            args.into()
        }));
    }
    v.extend([
        // ---- 3. data lost: outputs that are inputs, a sidecar in the way
        row(3, "quantize", "output is the input", &["refusing", "m.gguf"], |d| {
            model(d, synth());
            "quantize m.gguf -o m.gguf --type Q8_0 -q".into()
        }),
        row(3, "quantize", "output is a symbolic link to the input", &["refusing", "link.gguf", "m.gguf"], |d| {
            model(d, synth());
            std::os::unix::fs::symlink("m.gguf", d.join("link.gguf")).unwrap();
            "quantize m.gguf -o link.gguf --type Q8_0 -q".into()
        }),
        row(3, "quantize", "output is a hard link to the input", &["refusing", "hard.gguf"], |d| {
            model(d, synth());
            std::fs::hard_link(d.join("m.gguf"), d.join("hard.gguf")).unwrap();
            "quantize m.gguf -o hard.gguf --type Q8_0 -q".into()
        }),
        row(3, "quantize", "output is the imatrix", &["refusing", "im.gguf"], |d| {
            model(d, synth());
            imatrix_with(&d.join("im.gguf"), 1.0);
            "quantize m.gguf -o im.gguf --type Q4_K --imatrix im.gguf -q".into()
        }),
        row(3, "convert", "output is the input, spelled differently", &["refusing", "m.gguf"], |d| {
            model(d, synth());
            "convert m.gguf -o ./m.gguf -q".into()
        }),
        row(3, "imatrix", "output is the model", &["refusing", "m.gguf"], |d| {
            model(d, synth());
            "imatrix m.gguf --ctx 64 --chunks 1 -o m.gguf -q".into()
        }),
        row(3, "sensitivity", "output is the model", &["refusing", "m.gguf"], |d| {
            model(d, synth());
            "sensitivity m.gguf -o m.gguf --ctx 16 --chunks 1 -q".into()
        }),
        row(3, "plan", "output is the sensitivity file", &["refusing", "sens.json"], |d| {
            model(d, synth());
            copy_dir(&shared().sens, &d.join("sens"));
            "plan m.gguf --sensitivity sens/sens.json --budget 4.5bpw -o sens/sens.json".into()
        }),
        row(3, "recipe", "output is the model", &["refusing", "m.gguf"], |d| {
            model(d, synth());
            "recipe --preset Q4_K_M m.gguf -o m.gguf".into()
        }),
        row(3, "eval", "--plot over the model", &["refusing", "m.svg"], |d| {
            Model::synth12().write(&d.join("m.svg"));
            "eval m.svg --ctx 64 --chunks 1 --no-speed --plot m.svg".into()
        }),
        row(3, "quantize", "sidecar cannot be written (existing output kept)", &["out.quantmap.json", "directory"], |d| {
            model(d, synth());
            std::fs::write(d.join("out.gguf"), b"the previous output").unwrap();
            std::fs::create_dir(d.join("out.quantmap.json")).unwrap();
            std::fs::write(d.join("out.quantmap.json/x"), b"x").unwrap();
            "quantize m.gguf -o out.gguf --type Q8_0 -q".into()
        }),
        // ---- 4. silently wrong
        row(4, "quantize", "layer set that overflows", &["r.toml:2", "4294967290"], |d| {
            model(d, synth());
            recipe(d, "default = \"Q4_K\"\n[[rule]]\nrole = \"attn_v\"\ntype = \"Q8_0\"\nlayers = \"last 4294967290\"\n");
            "quantize m.gguf --recipe r.toml -o out.gguf -q".into()
        }),
        row(4, "quantize", "layer set position that overflows", &["r.toml:2", "65535"], |d| {
            model(d, synth());
            recipe(d, "default = \"Q4_K\"\n[[rule]]\nrole = \"attn_v\"\ntype = \"Q8_0\"\nlayers = \"every 2nd from 65535+9\"\n");
            "quantize m.gguf --recipe r.toml -o out.gguf -q".into()
        }),
        row(4, "quantize", "default of an unknown type", &["r.toml:2", "default", "Q9_X"], budget_recipe("# x\ndefault = \"Q9_X\"\n")),
        row(4, "quantize", "preset that does not exist", &["r.toml:1", "preset"], budget_recipe("preset = \"Q9_Z\"\n")),
        row(4, "quantize", "[fallback] to an unknown type", &["r.toml:4", "[fallback]", "bogus"], budget_recipe("default = \"Q4_K\"\n\n[fallback]\nQ4_K = \"bogus\"\n")),
        row(4, "quantize", "[fallback] from an unknown type", &["r.toml:3", "[fallback]", "NOPE"], budget_recipe("default = \"Q4_K\"\n[fallback]\nNOPE = \"Q5_0\"\n")),
        row(4, "quantize", "[fallback] that does not fit", &["r.toml:3", "fallback", "Q4_K"], |d| {
            model(d, Model::synth12().add("blk.0.ffn_up_shexp.weight", vec![32, 8], GgmlType::F16));
            recipe(d, "default = \"Q2_K\"\n[fallback]\nQ2_K = \"Q4_K\"\n");
            "quantize m.gguf --recipe r.toml -o out.gguf -q".into()
        }),
        row(4, "quantize", "[imatrix] file missing", &["r.toml:3", "[imatrix]", "missing.gguf"], budget_recipe("default = \"Q4_K\"\n\n[imatrix]\nfile = \"missing.gguf\"\n")),
        row(4, "quantize", "[budget] bpw = inf", &["r.toml:3", "bpw", "inf"], budget_recipe("[budget]\nsensitivity = \"s.json\"\nbpw = inf\n")),
        row(4, "quantize", "[budget] bpw = nan", &["r.toml:2", "bpw", "NaN"], budget_recipe("[budget]\nbpw = nan\n")),
        row(4, "quantize", "[budget] bpw above F32", &["r.toml:2", "bpw", "33"], budget_recipe("[budget]\nbpw = 33.0\n")),
        row(4, "quantize", "[budget] absurd size", &["r.toml:2", "size", "1e30GB"], budget_recipe("[budget]\nsize = \"1e30GB\"\n")),
        row(4, "quantize", "[budget] zero size", &["r.toml:3", "size"], budget_recipe("[budget]\n\nsize = \"0.4\"\n")),
        row(4, "quantize", "[budget] sensitivity file missing", &["r.toml:1", "[budget]", "nope.json"], budget_recipe("[budget]\nsize = \"5MB\"\nsensitivity = \"nope.json\"\n")),
        row(4, "plan", "--budget inf", &["--budget"], |d| {
            model(d, synth());
            copy_dir(&shared().sens, &d.join("sens"));
            "plan m.gguf --sensitivity sens/sens.json --budget infbpw -o p.toml".into()
        }),
        row(4, "plan", "--budget 1e30GB", &["--budget"], |d| {
            model(d, synth());
            copy_dir(&shared().sens, &d.join("sens"));
            "plan m.gguf --sensitivity sens/sens.json --budget 1e30GB -o p.toml".into()
        }),
        row(4, "plan", "sensitivity file of another model (fewer layers)", &["sens.json", "another model"], |d| {
            model(d, Model::synth12().layers(6));
            copy_dir(&shared().sens, &d.join("sens"));
            "plan m.gguf --sensitivity sens/sens.json --budget 4.5bpw -o p.toml".into()
        }),
        row(4, "plan", "sensitivity file of another model (other types)", &["sens.json", "another model", "F32"], |d| {
            model(d, Model::synth12().stored_as_f32("blk.3.ffn_up.weight"));
            copy_dir(&shared().sens, &d.join("sens"));
            "plan m.gguf --sensitivity sens/sens.json --budget 4.5bpw -o p.toml".into()
        }),
        row(4, "quantize", "[budget] with a sensitivity file of another model", &["r.toml:1", "another model"], |d| {
            model(d, Model::synth12().layers(6));
            copy_dir(&shared().sens, &d.join("sens"));
            recipe(d, "[budget]\nbpw = 4.5\nsensitivity = \"sens/sens.json\"\n");
            "quantize m.gguf --recipe r.toml -o out.gguf -q".into()
        }),
        row(4, "plan", "a shard's sensitivity file", &["shard 1/2", "--merge"], |d| {
            model(d, synth());
            copy_dir(&shared().sens, &d.join("sens"));
            let p = d.join("sens/sens.json");
            let mut j: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            j["shard"] = serde_json::json!({"index": 1, "count": 2});
            std::fs::write(&p, j.to_string()).unwrap();
            "plan m.gguf --sensitivity sens/sens.json --budget 4.5bpw -o p.toml".into()
        }),
        row(4, "convert", "safetensors shape against config.json", &["config.json", "shape", "model.layers.0.self_attn.k_proj.weight"], |d| {
            copy_dir(&shared().hf, &d.join("hf"));
            let p = d.join("hf/config.json");
            let mut j: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            j["num_key_value_heads"] = serde_json::json!(4);
            std::fs::write(&p, j.to_string()).unwrap();
            "convert hf -o out.gguf --tokenizer-pre gpt-2".into()
        }),
        row(4, "quantize", "safetensors shape against config.json", &["config.json", "shape", "intermediate_size 512"], |d| {
            copy_dir(&shared().hf, &d.join("hf"));
            let p = d.join("hf/config.json");
            let mut j: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            j["intermediate_size"] = serde_json::json!(512);
            std::fs::write(&p, j.to_string()).unwrap();
            "quantize hf -o out.gguf --type Q8_0 -q".into()
        }),
    ]);
    // Hyper-parameters that are NaN, zero or infinite, for every command that runs the model.
    type Hp = (&'static str, &'static str, f32, &'static [&'static str]);
    let hps: [Hp; 5] = [
        ("eps NaN", "llama.attention.layer_norm_rms_epsilon", f32::NAN, &["layer_norm_rms_epsilon", "NaN"]),
        ("eps 0", "llama.attention.layer_norm_rms_epsilon", 0.0, &["layer_norm_rms_epsilon", "> 0"]),
        ("RoPE base 0", "llama.rope.freq_base", 0.0, &["rope.freq_base", "> 0"]),
        ("RoPE base inf", "llama.rope.freq_base", f32::INFINITY, &["rope.freq_base", "inf"]),
        ("attention scale NaN", "llama.attention.scale", f32::NAN, &["attention.scale", "NaN"]),
    ];
    for (case, key, val, expect) in hps {
        for (command, args) in [("eval", EVAL), ("imatrix", IMATRIX), ("sensitivity", SENS), ("bench model", BENCH)] {
            let m = hp(key, val);
            v.push(row(4, command, case, expect, move |d| {
                model(d, m());
                args.into()
            }));
        }
    }
    v.push(row(4, "eval", "linear RoPE scaling factor NaN", &["rope.scaling.factor", "NaN"], |d| {
        let m = Model::synth12()
            .set("llama.rope.scaling.type", MetaValue::String("linear".into()))
            .set("llama.rope.scaling.factor", MetaValue::F32(f32::NAN));
        model(d, m);
        EVAL.into()
    }));
    v
}

#[test]
fn bad_input_table() {
    let rows = rows();
    let mut failures = Vec::new();
    let mut per_class = [0usize; 5];
    for r in &rows {
        let dir = common::tempdir();
        let d = dir.path();
        let args = (r.setup)(d);
        let before = snapshot(d);
        let t = Instant::now();
        let o = quantmix_in(d, &args.split(' ').map(String::from).collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&o.stderr);
        let label = format!("class {} {} ({}): `quantmix {args}`", r.class, r.command, r.case);
        let mut why = Vec::new();
        if o.status.code() != Some(1) {
            why.push(format!("exit {:?} (expected 1)", o.status.code()));
        }
        if err.contains("panicked") {
            why.push("panicked".to_string());
        }
        for w in r.expect {
            if !err.contains(w) {
                why.push(format!("no `{w}` in the message"));
            }
        }
        let after = snapshot(d);
        if after != before {
            let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
            let changed: Vec<_> = before.keys().filter(|k| after.get(*k) != before.get(*k)).collect();
            why.push(format!("files left behind {added:?} or changed/lost {changed:?}"));
        }
        eprintln!("{label}: {:.1} s{}", t.elapsed().as_secs_f64(), if why.is_empty() { "" } else { " FAILED" });
        if !why.is_empty() {
            failures.push(format!("{label}: {}\n  stderr: {}", why.join("; "), err.trim()));
        }
        per_class[r.class as usize] += 1;
    }
    eprintln!(
        "{} rows: class 1 {}, class 2 {}, class 3 {}, class 4 {}",
        rows.len(),
        per_class[1],
        per_class[2],
        per_class[3],
        per_class[4]
    );
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
}

/// The importance matrix a sensitivity file names is looked up beside the
/// file, not in the current directory: a broken file of the same name in
/// the current directory is not read.
#[test]
fn sensitivity_imatrix_is_found_beside_the_file() {
    let dir = common::tempdir();
    let d = dir.path();
    std::fs::copy(synth12(), d.join("m.gguf")).unwrap();
    copy_dir(&shared().sens, &d.join("sens"));
    std::fs::write(d.join("sens.imatrix.gguf"), b"not an imatrix").unwrap();
    let o = quantmix_in(
        d,
        &"plan m.gguf --sensitivity sens/sens.json --budget 7bpw -o p.toml"
            .split(' ')
            .map(String::from)
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(d.join("p.toml")).unwrap();
    assert!(text.contains("sens/sens.imatrix.gguf") || text.contains("sens.imatrix.gguf"), "{text}");
    let o = quantmix_in(
        d,
        &"quantize m.gguf --recipe p.toml -o q.gguf -q".split(' ').map(String::from).collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// INT, TERM and HUP (and a second quick signal) during every long command
/// stop it with 128 + the signal number and leave no temporary file (a
/// sensitivity run keeps its resume log and collected imatrix, by design).
#[test]
fn signals_leave_nothing_behind() {
    let Some(m) = common::smollm2() else { return };
    let m = m.to_str().unwrap().to_string();
    let commands: [(&str, String, &[&str]); 5] = [
        ("quantize", format!("quantize {m} --type Q6_K --threads 1 -q -o out.gguf"), &[]),
        ("export-hf", format!("export-hf {m} -o hf --dtype f32"), &[]),
        ("eval", format!("eval {m} --chunks 4 --threads 1 -q --no-speed"), &[]),
        ("imatrix", format!("imatrix {m} --chunks 8 --threads 1 -q -o im.gguf"), &[]),
        (
            "sensitivity",
            format!("sensitivity {m} -o s.json --imatrix-chunks 1 --ctx 64 --chunks 2 --threads 1 -q"),
            &["s.json.partial", "s.imatrix.gguf"],
        ),
    ];
    let signals: [&[(&str, i32)]; 5] =
        [&[("INT", 2)], &[("TERM", 15)], &[("HUP", 1)], &[("INT", 2), ("INT", 2)], &[("TERM", 15), ("HUP", 1)]];
    let mut failures = Vec::new();
    for (name, args, allowed) in &commands {
        for sigs in signals {
            let dir = common::tempdir();
            let d = dir.path();
            let child = Command::new(env!("CARGO_BIN_EXE_quantmix"))
                .args(args.split(' '))
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // Interrupt once a temporary output exists, or after 1.5 s for
            // commands that write only at the end.
            let t0 = Instant::now();
            while entries(d).is_empty() && t0.elapsed() < Duration::from_millis(1500) {
                std::thread::sleep(Duration::from_millis(10));
            }
            for (i, (s, _)) in sigs.iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(30));
                }
                let _ = Command::new("kill").args([format!("-{s}"), child.id().to_string()]).status();
            }
            let o = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            let codes: Vec<i32> = sigs.iter().map(|(_, n)| 128 + n).collect();
            let label = format!("{name} after {:?}", sigs.iter().map(|s| s.0).collect::<Vec<_>>());
            let left: Vec<String> = entries(d).into_iter().filter(|e| !allowed.contains(&e.as_str())).collect();
            let left: Vec<String> =
                left.into_iter().filter(|e| e != "hf" || !entries(&d.join("hf")).is_empty()).collect();
            if !o.status.code().is_some_and(|c| codes.contains(&c)) {
                failures.push(format!("{label}: exit {:?}, expected one of {codes:?}: {err}", o.status.code()));
            } else if !left.is_empty() {
                failures.push(format!("{label}: left behind {left:?}"));
            } else if err.contains("panicked") {
                failures.push(format!("{label}: panicked: {err}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
