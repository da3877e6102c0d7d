//! `quantmix quantize MODEL -o OUT.gguf (--recipe R | --preset P | --type T)`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::gguf::{GgmlType, GgufModel};
use crate::quantize::{self, ImportanceMatrix, Options, QuantizePlan};
use crate::recipe::{self, ModelInfo, Preset, Reason, Recipe};
use crate::report::{human_bytes, Table};
use crate::sensitivity::budget::{plan_under_budget, resolve_imatrix, SensitivityTable};
use crate::sensitivity::imatrix::Imatrix;

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

fn load_recipe(a: &Args) -> Result<Recipe> {
    Ok(match (&a.recipe, &a.preset, &a.r#type) {
        (Some(p), None, None) => Recipe::from_path(p)?,
        (None, Some(p), None) => Recipe::preset(Preset::parse(p).map_err(anyhow::Error::msg)?),
        (None, None, Some(t)) => {
            let ty = GgmlType::from_name(t).with_context(|| format!("unknown type `{t}`"))?;
            if !crate::quant::caps(ty).writable {
                bail!("quantmix cannot write type {ty}");
            }
            Recipe::pure(ty)?
        }
        _ => bail!("give exactly one of --recipe FILE, --preset NAME or --type TYPE"),
    })
}

pub fn run(a: Args, cancel: Arc<AtomicBool>) -> Result<()> {
    let recipe = load_recipe(&a)?;
    if !a.dry_run && a.output.is_none() {
        bail!("--output is required (or use --dry-run)");
    }
    // A Hugging Face directory or safetensors file is first converted to a
    // GGUF (F16/BF16/F32 as llama.cpp's convert_hf_to_gguf.py keeps them) in
    // a temporary directory next to the output, removed at the end.
    let mut _converted: Option<tempfile::TempDir> = None;
    let model_path = if a.model.is_dir() || crate::convert::safetensors::is_safetensors_path(&a.model) {
        let dir = match a.output.as_deref().and_then(|o| o.parent()).filter(|p| !p.as_os_str().is_empty()) {
            Some(d) => tempfile::Builder::new().prefix(".quantmix-convert-").tempdir_in(d),
            None => tempfile::Builder::new().prefix(".quantmix-convert-").tempdir_in("."),
        }
        .context("creating a temporary directory for the conversion")?;
        let tmp = dir.path().join("source.gguf");
        if !a.quiet {
            eprintln!("converting {} to GGUF first (as convert_hf_to_gguf.py does)…", a.model.display());
        }
        let opts = crate::convert::hf::HfConvertOptions { cancel: Some(cancel.clone()), ..Default::default() };
        crate::convert::hf::convert_hf(&a.model, &tmp, &opts)
            .with_context(|| format!("converting {}", a.model.display()))?;
        _converted = Some(dir);
        tmp
    } else {
        a.model.clone()
    };
    let src = GgufModel::open(&model_path).with_context(|| format!("opening {}", a.model.display()))?;
    let recipe = match recipe.budget.clone() {
        None => recipe,
        Some(spec) => {
            // Allocate now: the explicit recipe it gives is what gets applied (and stored).
            let sens = spec
                .sensitivity
                .ok_or(crate::sensitivity::budget::BudgetError::NoSensitivity)
                .with_context(|| format!("recipe {}", recipe.origin))?;
            let table = SensitivityTable::load(&sens).with_context(|| format!("recipe {}", recipe.origin))?;
            let im = a.imatrix.clone().or_else(|| recipe.imatrix.clone()).or_else(|| resolve_imatrix(&table, &sens));
            let im = im.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
            let bp = plan_under_budget(&src, &recipe, &table, &sens, &spec.limit, im.as_deref())?;
            if !a.quiet {
                super::plan::print_summary(&bp, &spec.limit);
            }
            let mut r = Recipe::from_toml_str(&bp.text, &format!("{} (allocated under its [budget])", recipe.origin))?;
            r.imatrix = im;
            r
        }
    };
    let imatrix_path = a.imatrix.clone().or_else(|| recipe.imatrix.clone());
    let imatrix = match &imatrix_path {
        None => None,
        Some(p) => {
            let m = Imatrix::load(p).with_context(|| format!("reading importance matrix {}", p.display()))?;
            Some(ImportanceMatrix {
                file: Some(p.display().to_string()),
                dataset: m.datasets.first().cloned(),
                chunks: Some(m.chunk_count as u64),
                vectors: m.importance(),
            })
        }
    };
    let info = ModelInfo::from_metadata(src.metadata(), src.tensors());
    let plan = recipe::plan(&recipe, &info, src.tensors(), imatrix.is_some())?;
    let qp = QuantizePlan::from_recipe_plan(&recipe, &plan);
    let prepared = quantize::prepare(&src, &qp, imatrix.as_ref())?;
    let out = a.output.clone().unwrap_or_else(|| PathBuf::from("(dry run)"));

    let n_fallback = plan.fallbacks().count();
    if !a.quiet && n_fallback > 0 {
        eprintln!(
            "note: {n_fallback} tensors fell back to another type because their row length does not fit the block:"
        );
        for c in plan.fallbacks() {
            if let Reason::Fallback { wanted, row_len, .. } = &c.reason {
                eprintln!("  {:<36} {wanted} → {} (row length {row_len})", c.name, c.ty);
            }
        }
    }
    if !prepared.requantized.is_empty() {
        eprintln!(
            "warning: {} tensors are already quantized in the source and will be requantized \
             (as llama-quantize --allow-requantize): quality is lower than from an F16/F32 source",
            prepared.requantized.len()
        );
    }
    if let Some(m) = &imatrix {
        let missing: Vec<&str> = plan
            .tensors
            .iter()
            .filter(|c| c.ty != c.source_type && c.ty.is_quantized() && !m.vectors.contains_key(&c.name))
            .map(|c| c.name.as_str())
            .collect();
        if !missing.is_empty() && !a.quiet {
            eprintln!(
                "note: the importance matrix has no data for {} quantized tensors (e.g. {})",
                missing.len(),
                missing[0]
            );
        }
    }

    if a.dry_run {
        let map = quantize::quant_map(&src, &out, &qp, imatrix.as_ref(), &prepared);
        if a.json {
            println!("{}", serde_json::to_string_pretty(&map)?);
            return Ok(());
        }
        let mut t = Table::new(&["tensor", "shape", "source", "type", "bytes", "bpw", "reason"])
            .left(0)
            .left(2)
            .left(3)
            .left(6);
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
        println!("{}", quantize::summary_table(&map));
        println!("dry run: the output would be exactly {} bytes ({})", map.file_bytes, human_bytes(map.file_bytes));
        return Ok(());
    }

    let opts = Options { threads: a.threads, quiet: a.quiet, cancel: Some(cancel) };
    let map = quantize::run(&src, &qp, imatrix.as_ref(), &out, &opts)?;
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
            quantize::sidecar_path(&out).display()
        );
    }
    Ok(())
}
