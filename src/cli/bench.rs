//! `quantmix bench kernels|matmul [--json] [--types ...]`: kernel throughput
//! per type next to a memcpy baseline, and matmul GFLOP/s.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::kernels::{self, KernelOptions, MatmulOptions, Stat, Timing};
use crate::gguf::GgmlType;

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
            let run = || kernels::run_matmul(&opts);
            let rows = match m.threads {
                Some(n) => rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .context("building the thread pool")?
                    .install(run),
                None => run(),
            }
            .context("matmul benchmark")?;
            if m.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", kernels::matmul_table(&rows));
            }
        }
    }
    Ok(())
}
