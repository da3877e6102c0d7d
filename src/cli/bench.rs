//! `quantmix bench kernels|matmul [--json] [--types ...]`: kernel throughput
//! per type next to a memcpy baseline, and matmul GFLOP/s.
//! `quantmix bench model FILE.gguf… [--against llama-bench] [--threads N]
//! [--pp 512] [--tg 128] [--reps 5] [--json]`: whole-model tokens/s, ours
//! next to llama-bench's.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use quantmix::bench::kernels::{self, KernelOptions, MatmulOptions, Stat, Timing};
use quantmix::bench::model::{self, ModelBenchOptions};
use quantmix::gguf::GgmlType;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Quantize MB/s, dequantize GB/s and vec_dot GB/s per type on one thread, with a memcpy baseline.
    Kernels(KernelArgs),
    /// Matrix product GFLOP/s (activation quantization included) on all threads, and one-token matvec.
    Matmul(MatmulArgs),
    /// Prompt-processing and generation tokens/s of GGUF models, optionally next to llama.cpp's llama-bench.
    Model(ModelArgs),
}

#[derive(clap::Args, Debug)]
pub struct TimingArgs {
    /// Minimum milliseconds per measurement (after one warm-up run).
    #[arg(long, default_value_t = 300)]
    pub min_ms: u64,
    /// Minimum repetitions per measurement.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Report the fastest repetition instead of the median (steadier on a busy machine).
    #[arg(long)]
    pub best: bool,
}

impl TimingArgs {
    fn timing(&self) -> Timing {
        Timing {
            min_time: Duration::from_millis(self.min_ms),
            min_reps: self.reps.max(1),
            stat: if self.best { Stat::Best } else { Stat::Median },
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct KernelArgs {
    /// Weight types, comma-separated (default: every type with a dot product).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<GgmlType>,
    /// Values per dequantize / vec_dot pass.
    #[arg(long, default_value_t = 1 << 20)]
    pub values: usize,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct MatmulArgs {
    /// Weight types, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [GgmlType::Q8_0, GgmlType::Q4_K])]
    pub types: Vec<GgmlType>,
    /// Weight rows (output features).
    #[arg(long, default_value_t = 576)]
    pub rows: usize,
    /// Values per weight row (input features).
    #[arg(long, default_value_t = 1536)]
    pub row_len: usize,
    /// Tokens (activation rows).
    #[arg(long, default_value_t = 512)]
    pub tokens: usize,
    /// Threads (default: rayon's, one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub timing: TimingArgs,
    /// One JSON array instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// GGUF files (llama incl. Mixtral-style experts, mistral, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3 architectures).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Path of llama.cpp's llama-bench: run it on each file with the same
    /// tokens, threads and repetitions, and print the ratio.
    #[arg(long, value_name = "PATH/llama-bench")]
    pub against: Option<PathBuf>,
    /// Threads, for both (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tokens of the prompt-processing batch (llama-bench -p).
    #[arg(long, default_value_t = 512)]
    pub pp: usize,
    /// Generated tokens (llama-bench -n).
    #[arg(long, default_value_t = 128)]
    pub tg: usize,
    /// Timed repetitions after one warm-up (llama-bench -r).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: Args) -> Result<()> {
    match a.what {
        What::Kernels(k) => {
            let opts = KernelOptions {
                types: if k.types.is_empty() { KernelOptions::default().types } else { k.types },
                n_values: k.values,
                timing: k.timing.timing(),
            };
            let report = kernels::run_kernels(&opts).context("kernel benchmark")?;
            if k.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        What::Matmul(m) => {
            let opts = MatmulOptions {
                types: m.types,
                rows: m.rows,
                row_len: m.row_len,
                n_tokens: m.tokens,
                timing: m.timing.timing(),
            };
            let cancel = quantmix::job::Cancel::new();
            let ctx = quantmix::job::Ctx::quiet(&cancel).with_threads(m.threads.unwrap_or(0));
            let rows = ctx.install(|| kernels::run_matmul(&opts))?.context("matmul benchmark")?;
            if m.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", kernels::matmul_table(&rows));
            }
        }
        What::Model(m) => {
            let threads = match m.threads {
                Some(0) => bail!("--threads must be at least 1"),
                Some(n) => n,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            let opts = ModelBenchOptions {
                pp_tokens: m.pp,
                tg_tokens: m.tg,
                reps: m.reps,
                threads,
                llama_bench: m.against.clone(),
            };
            let quiet = m.quiet;
            if let (Some(load), Some(_)) = (model::load_average(), &m.against) {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                if threads > 1 && load > 0.5 && threads as f64 + load > cores as f64 + 0.25 {
                    eprintln!(
                        "warning: the machine is busy (load average {load:.2}, {cores} cores, {threads} threads asked): \
                         llama-bench's threads wait for each other and slow down much more than quantmix's when a \
                         core is taken, so the ratios will not mean much"
                    );
                }
            }
            let report = model::run_model_bench(&m.files, &opts, |what| {
                if !quiet {
                    eprintln!("measuring {what}");
                }
            })
            .context("model benchmark")?;
            if m.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.header());
                println!();
                print!("{}", report.table());
            }
        }
    }
    Ok(())
}
