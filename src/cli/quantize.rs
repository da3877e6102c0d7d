//! `quantmix quantize MODEL -o OUT.gguf (--recipe R | --preset P | --type T)`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use quantmix::gguf::GgmlType;
use quantmix::job::{Cancel, Ctx, Level, Progress};
use quantmix::plan::Reason;
use quantmix::quantize::job::{prepare, QuantizeJob};
use quantmix::quantize::{self, QuantMap};
use quantmix::recipe::{self, Preset, Recipe};
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
}

/// The arguments as a validated job.
fn job(a: &Args) -> Result<QuantizeJob> {
    let recipe = match (&a.recipe, &a.preset, &a.r#type) {
        (Some(p), None, None) => Recipe::from_path(p)?,
        (None, Some(p), None) => Recipe::preset(Preset::parse(p).map_err(anyhow::Error::msg)?),
        (None, None, Some(t)) => {
            let ty = GgmlType::from_name(t).with_context(|| format!("unknown type `{t}`"))?;
            if !recipe::writable(ty) {
                bail!("quantmix cannot write type {ty}");
            }
            Recipe::pure(ty)?
        }
        _ => bail!("give exactly one of --recipe FILE, --preset NAME or --type TYPE"),
    };
    if !a.dry_run && a.output.is_none() {
        bail!("--output is required (or use --dry-run)");
    }
    Ok(QuantizeJob { model: a.model.clone(), output: a.output.clone(), recipe, imatrix: a.imatrix.clone() })
}

pub fn run(a: Args, cancel: &Cancel) -> Result<()> {
    let job = job(&a)?;
    let bar = Bar::new(a.quiet);
    let ctx = Ctx { cancel, progress: &bar, threads: a.threads };
    let prepared = prepare(&job, ctx)?;
    if let Some(bp) = &prepared.budget {
        if let Some(spec) = &job.recipe.budget {
            super::plan::print_summary(bp, &spec.limit);
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
    let missing: Vec<_> = plan.missing_imatrix().collect();
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
