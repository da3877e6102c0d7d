//! `quantmix sensitivity MODEL -o sensitivity.json [--calibration FILE…]`:
//! measure, for every quantizable tensor and candidate type, the
//! KL-divergence of the final logits when only that tensor is quantized;
//! `--merge` joins the files of `--shard i/n` runs.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

use super::progress::Bar;
use quantmix::job::{Cancel, Ctx};
use quantmix::report::human_bytes;
use quantmix::sensitivity::job::{merge, SensitivityJob};
use quantmix::sensitivity::measure::DEFAULT_TYPES;
use quantmix::sensitivity::report::layer_table;
use quantmix::sensitivity::schema::{SensitivityTable, ShardDesc};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model GGUF (llama incl. Mixtral-style experts, mistral, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3); its own weights are the reference.
    #[arg(required_unless_present = "merge")]
    pub model: Option<PathBuf>,
    /// Output: sensitivity.json (with sensitivity.md, sensitivity.svg/.png and, unless --imatrix
    /// is given, sensitivity.imatrix.gguf beside it).
    #[arg(short, long, default_value = "sensitivity.json")]
    pub output: PathBuf,
    /// Calibration text files (plain text, or JSONL with a `text` field); default: the shipped set.
    #[arg(long, num_args = 1..)]
    pub calibration: Vec<PathBuf>,
    /// Tokens per measured sequence (the defaults keep SmolLM2-135M under 10 minutes on 2 cores;
    /// more tokens: more precise, proportionally slower).
    #[arg(long, default_value_t = 64)]
    pub ctx: usize,
    /// Measured sequences, spread evenly over the calibration text (more: more precise, slower).
    #[arg(long, default_value_t = 2)]
    pub chunks: usize,
    /// Candidate types, comma-separated (each tensor also gets llama.cpp's fallback where its
    /// shape needs one, and keeps its source type as a candidate).
    #[arg(long, value_delimiter = ',', default_value = "Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0")]
    pub types: Vec<String>,
    /// Use this importance matrix instead of collecting one.
    #[arg(long)]
    pub imatrix: Option<PathBuf>,
    /// Chunks of 512 tokens the importance matrix is collected on (0: all the text gives).
    #[arg(long, default_value_t = 16)]
    pub imatrix_chunks: usize,
    /// Measure only every n-th tensor starting at the i-th (`--shard 2/4`), or `--shard auto` in a Slurm job
    /// array or a Kubernetes Indexed Job (see deploy/); join the shards with `--merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Measure with f32 activations on a dequantized copy of the model (no 8-bit activation rounding,
    /// whose noise floor swamps the differences between candidates of an already-quantized source):
    /// `auto` (default) = when the source's weights are quantized.
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub exact_activations: String,
    /// Measure only the candidates these types end at and predict the others from them, proportional
    /// to the imatrix-weighted squared error (marked `predicted` in the file) [default: Q3_K].
    #[arg(long, value_delimiter = ',', conflicts_with = "exhaustive")]
    pub predict_from: Vec<String>,
    /// Measure every candidate by a forward pass (about 4× slower than the default prediction).
    #[arg(long)]
    pub exhaustive: bool,
    /// Continue an interrupted run from OUTPUT.partial.
    #[arg(long)]
    pub resume: bool,
    /// Merge shard files into OUTPUT instead of measuring (one whole file: write its reports again).
    #[arg(long, num_args = 1.., conflicts_with_all = ["model", "shard", "resume", "imatrix", "calibration"])]
    pub merge: Vec<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_shard(s: &str) -> Result<ShardDesc> {
    if s.trim() == "auto" {
        return quantmix::sensitivity::job::shard_from_env(|k| std::env::var(k).ok())
            .map_err(|e| anyhow!("--shard auto: {e}"));
    }
    let (i, n) = s.split_once('/').ok_or_else(|| anyhow!("--shard `{s}`: expected i/n, e.g. 2/4"))?;
    let (index, count): (usize, usize) = (
        i.trim().parse().map_err(|_| anyhow!("--shard `{s}`: `{i}` is not a number"))?,
        n.trim().parse().map_err(|_| anyhow!("--shard `{s}`: `{n}` is not a number"))?,
    );
    if count == 0 || index == 0 || index > count {
        bail!("--shard `{s}`: needs 1 ≤ i ≤ n");
    }
    Ok(ShardDesc { index, count })
}

/// The arguments as a validated job.
fn job(a: &Args) -> Result<SensitivityJob> {
    let model = a.model.clone().ok_or_else(|| anyhow!("give the MODEL to measure"))?;
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let mut types = super::quantize::parse_types(&a.types, "--types")?;
    if types.is_empty() {
        types = DEFAULT_TYPES.to_vec();
    }
    Ok(SensitivityJob {
        model,
        output: a.output.clone(),
        calibration: a.calibration.clone(),
        ctx: a.ctx,
        chunks: a.chunks,
        types,
        imatrix: a.imatrix.clone(),
        imatrix_chunks: a.imatrix_chunks,
        shard,
        resume: a.resume,
        anchors: super::quantize::anchors(&a.predict_from, a.exhaustive, "--predict-from")?,
        exact_activations: match a.exact_activations.as_str() {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        },
    })
}

pub fn run(a: Args, cancel: &Cancel) -> Result<()> {
    if !a.merge.is_empty() {
        let (table, written) = merge(&a.merge, &a.output)?;
        print_result(&table, &written);
        return Ok(());
    }
    let job = job(&a)?;
    let threads = if a.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { a.threads };
    let bar = Bar::bars_only(a.quiet);
    let ctx = Ctx { cancel, progress: &bar, threads };
    let o = quantmix::sensitivity::job::run(&job, ctx)
        .with_context(|| format!("sensitivity of {}", job.model.display()))?;
    print_result(&o.table, &o.written);
    let peak = quantmix::sensitivity::job::peak_memory()
        .map_or(String::new(), |b| format!(", peak memory {:.1} MiB", b as f64 / (1u64 << 20) as f64));
    eprintln!(
        "sensitivity: reference pass {:.1} s, {} candidates measured in {:.1} s, total {:.1} s{peak}",
        o.reference_secs, o.measured, o.measure_secs, o.total_secs
    );
    Ok(())
}

/// The per-layer table and what was written.
fn print_result(table: &SensitivityTable, written: &[PathBuf]) {
    println!("{}", layer_table(table).render());
    println!("ΔKLD when only that tensor is quantized to the type Q4_K ends at (* = llama.cpp's shape fallback).");
    if let Some(rc) = &table.rank_correlation {
        println!(
            "Proxy (imatrix-weighted squared error) vs measured ΔKLD: Spearman {:.3} over {} pairs.",
            rc.spearman, rc.pairs
        );
    }
    let bytes: u64 = table.tensors.iter().map(|t| t.source_bytes).sum();
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    eprintln!("sensitivity: {} tensors ({}) → {}", table.tensors.len(), human_bytes(bytes), names.join(", "));
}
