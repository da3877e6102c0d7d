//! `quantmix quantize MODEL -o OUT.gguf (--recipe R | --preset P | --type T)`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use quantmix::gguf::GgmlType;
use quantmix::job::{Cancel, Ctx, Level, Progress};
use quantmix::plan::Reason;
use quantmix::quantize::job::{prepare, MeasureSettings, QuantizeJob};
use quantmix::quantize::{self, QuantMap};
use quantmix::recipe::{Budget, Preset, Recipe};
use quantmix::report::{human_bytes, Table};

use super::progress::Bar;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source model: a GGUF, a safetensors file, or a Hugging Face model directory.
    pub model: PathBuf,
    /// Output GGUF (written atomically; `X.quantmap.json` is written next to it).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Recipe file (TOML, see recipes/README.md).
    #[arg(long, conflicts_with_all = ["preset", "type"])]
    pub recipe: Option<PathBuf>,
    /// A llama-quantize preset (Q4_K_M, Q2_K, …), reproduced exactly.
    #[arg(long, conflicts_with = "type")]
    pub preset: Option<String>,
    /// One type for every quantizable tensor (like llama-quantize --pure).
    #[arg(long = "type", id = "type")]
    pub r#type: Option<String>,
    /// Importance matrix (llama.cpp GGUF or legacy .dat); overrides the recipe's [imatrix].
    #[arg(long)]
    pub imatrix: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print the plan and the exact output size; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bars.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the plan (dry run) or the quant map as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Size limit: bits per weight of the tensor data (`4.8bpw`) or bytes of the whole file (`105MB`,
    /// `100MiB`, `105000000`). Types are allocated by measured sensitivity: measured now (imatrix +
    /// sensitivity, cached under $QUANTMIX_CACHE keyed by the model's bytes and the settings) unless
    /// --sensitivity is given. A --recipe's rules still pin their tensors.
    #[arg(long)]
    pub budget: Option<String>,
    /// Allocate with this sensitivity.json (from `quantmix sensitivity`) instead of measuring.
    #[arg(long, requires = "budget")]
    pub sensitivity: Option<PathBuf>,
    /// Calibration text for the measurement (default: the shipped set).
    #[arg(long, num_args = 1.., requires = "budget")]
    pub calibration: Vec<PathBuf>,
    /// Measurement: tokens per sequence (as `sensitivity --ctx`).
    #[arg(long, default_value_t = 64)]
    pub measure_ctx: usize,
    /// Measurement: sequences (as `sensitivity --chunks`).
    #[arg(long, default_value_t = 2)]
    pub measure_chunks: usize,
    /// Measurement: candidate types (as `sensitivity --types`).
    #[arg(long, value_delimiter = ',', default_value = "Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0")]
    pub measure_types: Vec<String>,
    /// Measurement: measure only these types per tensor and predict the others from them (proportional
    /// to the imatrix-weighted error) [default: Q3_K].
    #[arg(long, value_delimiter = ',', conflicts_with = "measure_exhaustive")]
    pub measure_predict_from: Vec<String>,
    /// Measurement: every candidate by a forward pass (as `sensitivity --exhaustive`).
    #[arg(long)]
    pub measure_exhaustive: bool,
    /// Measurement: chunks of 512 tokens the importance matrix is collected on (0: all).
    #[arg(long, default_value_t = 16)]
    pub imatrix_chunks: usize,
    /// Measurement: f32 activations (`on`), 8-bit as inference (`off`), or `auto`: on when the source
    /// is already quantized.
    #[arg(long, default_value = "auto", value_parser = ["auto", "on", "off"])]
    pub exact_activations: String,
}

/// `$QUANTMIX_CACHE`, default `~/.cache/quantmix`.
pub fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("QUANTMIX_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/quantmix")
}

/// `--types` / `--measure-types` as ggml types quantmix can write.
pub fn parse_types(names: &[String], flag: &str) -> Result<Vec<GgmlType>> {
    let mut types = Vec::new();
    for t in names {
        let ty = GgmlType::from_name(t.trim()).ok_or_else(|| anyhow::anyhow!("{flag}: unknown type `{t}`"))?;
        if !quantmix::quant::caps(ty).writable {
            bail!("{flag}: quantmix cannot write type {ty}");
        }
        types.push(ty);
    }
    Ok(types)
}

/// The arguments as a validated job.
fn job(a: &Args) -> Result<QuantizeJob> {
    let recipe = match (&a.recipe, &a.preset, &a.r#type) {
        (Some(p), None, None) => Recipe::from_path(p)?,
        (None, Some(p), None) => Recipe::preset(Preset::parse(p).map_err(anyhow::Error::msg)?),
        (None, None, Some(t)) => {
            let ty = GgmlType::from_name(t).with_context(|| format!("unknown type `{t}`"))?;
            if !quantmix::quant::caps(ty).writable {
                bail!("quantmix cannot write type {ty}");
            }
            Recipe::pure(ty)?
        }
        (None, None, None) if a.budget.is_some() => Recipe::allocate_all(),
        _ => bail!("give exactly one of --recipe FILE, --preset NAME or --type TYPE (or --budget SIZE)"),
    };
    if !a.dry_run && a.output.is_none() {
        bail!("--output is required (or use --dry-run)");
    }
    let budget = match &a.budget {
        None => None,
        Some(b) => Some(Budget::parse(b).with_context(|| {
            format!("--budget `{b}`: give bits per weight (4.8bpw) or bytes (105MB, 100MiB, 105000000)")
        })?),
    };
    let measure = MeasureSettings {
        cache: cache_root(),
        calibration: a.calibration.clone(),
        ctx: a.measure_ctx,
        chunks: a.measure_chunks,
        types: parse_types(&a.measure_types, "--measure-types")?,
        imatrix_chunks: a.imatrix_chunks,
        anchors: anchors(&a.measure_predict_from, a.measure_exhaustive, "--measure-predict-from")?,
        exact_activations: match a.exact_activations.as_str() {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        },
    };
    Ok(QuantizeJob {
        model: a.model.clone(),
        output: a.output.clone(),
        recipe,
        imatrix: a.imatrix.clone(),
        budget,
        sensitivity: a.sensitivity.clone(),
        measure,
    })
}

pub fn run(a: Args, cancel: &Cancel) -> Result<()> {
    let job = job(&a)?;
    let bar = Bar::new(a.quiet);
    let ctx = Ctx { cancel, progress: &bar, threads: a.threads };
    let prepared = prepare(&job, ctx)?;
    if let Some(bp) = &prepared.budget {
        let limit = job.budget.clone().or_else(|| job.recipe.budget.as_ref().map(|b| b.limit.clone()));
        if let Some(limit) = limit {
            super::plan::print_summary(bp, &limit);
        }
    }
    let plan = &prepared.plan;
    let fallbacks: Vec<_> = plan.fallbacks().collect();
    if !fallbacks.is_empty() {
        bar.note(
            Level::Info,
            &format!(
                "note: {} tensors fell back to another type because their row length does not fit the block:",
                fallbacks.len()
            ),
        );
        for c in fallbacks {
            if let Reason::Fallback { wanted, row_len, .. } = &c.reason {
                bar.note(Level::Info, &format!("  {:<36} {wanted} → {} (row length {row_len})", c.name, c.ty));
            }
        }
    }
    let requantized = plan.requantized().count();
    if requantized > 0 {
        bar.note(
            Level::Warning,
            &format!(
                "warning: {requantized} tensors are already quantized in the source and will be requantized \
                 (as llama-quantize --allow-requantize): quality is lower than from an F16/F32 source"
            ),
        );
    }
    let missing: Vec<_> = prepared.imatrix.iter().flat_map(|m| plan.missing_imatrix(m)).collect();
    if let Some(first) = missing.first() {
        bar.note(
            Level::Info,
            &format!(
                "note: the importance matrix has no data for {} quantized tensors (e.g. {})",
                missing.len(),
                first.name
            ),
        );
    }

    let Some(out) = job.output.as_deref().filter(|_| !a.dry_run) else {
        let map = prepared.quant_map(job.output.as_deref().unwrap_or("(dry run)".as_ref()));
        return print_dry_run(&map, a.json);
    };
    let map = prepared.run(out, ctx)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        println!("{}", quantize::summary_table(&map));
        let worst = map.tensors.iter().filter_map(|r| r.rel_error.map(|e| (e, r))).max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((e, r)) = worst {
            println!("largest round-trip error: {} ({}) {:.4}", r.name, r.ty, e);
        }
        println!(
            "wrote {} ({}, {} tensors) and {}",
            out.display(),
            human_bytes(map.file_bytes),
            map.tensors.len(),
            quantize::sidecar_path(out).display()
        );
    }
    Ok(())
}

fn print_dry_run(map: &QuantMap, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(map)?);
        return Ok(());
    }
    let mut t =
        Table::new(&["tensor", "shape", "source", "type", "bytes", "bpw", "reason"]).left(0).left(2).left(3).left(6);
    for r in &map.tensors {
        t.row(vec![
            r.name.clone(),
            format!("{:?}", r.shape),
            r.source_type.to_string(),
            r.ty.to_string(),
            r.bytes.to_string(),
            format!("{:.2}", r.bpw),
            r.reason.clone(),
        ]);
    }
    print!("{}", t.render());
    println!("{}", quantize::summary_table(map));
    println!("dry run: the output would be exactly {} bytes ({})", map.file_bytes, human_bytes(map.file_bytes));
    Ok(())
}

/// The measured types of a sensitivity run: none (every candidate) when
/// exhaustive, the given ones, else the library's default.
pub fn anchors(given: &[String], exhaustive: bool, flag: &str) -> Result<Vec<quantmix::gguf::GgmlType>> {
    if exhaustive {
        return Ok(Vec::new());
    }
    let v = parse_types(given, flag)?;
    Ok(if v.is_empty() { quantmix::sensitivity::measure::DEFAULT_ANCHORS.to_vec() } else { v })
}
