//! `quantmix eval A.gguf B.gguf … [--text FILE] [--reference REF.gguf]
//! [--ctx 512] [--chunks N] [--threads N] [--json] [--plot OUT.svg]`:
//! size, bits per weight, perplexity, KL-divergence against a reference and
//! throughput of every file, side by side.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::progress::Bar;
use quantmix::eval::run::{self, EvalOptions, SpeedOptions, DEFAULT_TEXT, DEFAULT_TEXT_NAME};
use quantmix::job::{Cancel, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// GGUF files to evaluate (llama incl. Mixtral-style experts, mistral, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3 architectures).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// UTF-8 text to evaluate on (default: the built-in held-out evaluation
    /// text, tests/data/eval.txt, never used as calibration text).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// The reference for KLD, ΔPPL, same-top-token and RMS Δp (default: the
    /// first file). Its own KLD columns are empty (null in JSON).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Tokens per perplexity chunk (llama-perplexity -c).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Evaluate at most this many chunks (default: all the text holds).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tokens of the prompt-processing batch of the throughput measurement
    /// (llama-bench -p; default: --ctx).
    #[arg(long)]
    pub pp: Option<usize>,
    /// Generated tokens per throughput run (llama-bench -n).
    #[arg(long, default_value_t = 32)]
    pub tg: usize,
    /// Timed repetitions of each throughput measurement (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Skip the throughput measurement.
    #[arg(long)]
    pub no_speed: bool,
    /// One JSON array (one object per file) on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also draw size vs KLD (or PPL) to OUT.svg and OUT.png.
    #[arg(long, value_name = "OUT.svg")]
    pub plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(a: Args, cancel: &Cancel) -> Result<()> {
    if a.ctx < 16 {
        bail!("--ctx {} is too small (at least 16 tokens)", a.ctx);
    }
    if a.chunks == Some(0) {
        bail!("--chunks must be at least 1");
    }
    let pp = a.pp.unwrap_or(a.ctx);
    if !a.no_speed && (a.reps == 0 || a.tg == 0 || pp == 0) {
        bail!("--reps, --pp and --tg must be at least 1 (or use --no-speed)");
    }
    for f in a.files.iter().chain(&a.reference) {
        if !f.is_file() {
            bail!("{}: no such file", f.display());
        }
    }
    if let Some(out) = &a.plot {
        // Fail now, not after minutes of evaluation.
        let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            bail!("--plot {}: the directory {} does not exist", out.display(), dir.display());
        }
    }
    if let Some(out) = &a.plot {
        let inputs: Vec<&PathBuf> = a.files.iter().chain(&a.reference).chain(&a.text).collect();
        let (svg, png) = quantmix::report::plot::output_paths(out);
        quantmix::fsutil::check_outputs(&[svg, png], &inputs)?;
    }
    let (text, text_name) = match &a.text {
        Some(p) => {
            let t = std::fs::read_to_string(p).with_context(|| format!("reading the text {}", p.display()))?;
            (t, p.display().to_string())
        }
        None => (DEFAULT_TEXT.to_string(), DEFAULT_TEXT_NAME.to_string()),
    };
    let opts = EvalOptions {
        n_ctx: a.ctx,
        max_chunks: a.chunks,
        speed: (!a.no_speed).then_some(SpeedOptions { pp_tokens: pp, tg_tokens: a.tg, reps: a.reps }),
        ..EvalOptions::default()
    };

    let bar = Bar::bars_only(a.quiet);
    let ctx = Ctx { cancel, progress: &bar, threads: a.threads.unwrap_or(0) };
    let report = if a.threads == Some(0) {
        bail!("--threads must be at least 1");
    } else {
        ctx.install(|| run::run_eval(&a.files, a.reference.as_deref(), &text, &opts, ctx)).map_err(anyhow::Error::from)
    };
    let report = report.and_then(|r| r.map_err(anyhow::Error::from));
    let report = report.with_context(|| format!("evaluating on {text_name}"))?;

    if a.json {
        println!("{}", serde_json::to_string_pretty(&report.json_rows(&text_name))?);
    } else {
        print!("{}", report.header(&text_name));
        println!();
        print!("{}", report.table());
    }
    if let Some(out) = &a.plot {
        let (svg, png) = quantmix::report::plot::write_figure(&report.scatter(), out)
            .with_context(|| format!("drawing {}", out.display()))?;
        eprintln!("wrote {} and {}", svg.display(), png.display());
    }
    Ok(())
}
