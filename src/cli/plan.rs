//! `quantmix plan MODEL --sensitivity sensitivity.json --budget B -o plan.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use quantmix::gguf::GgufModel;
use quantmix::plan::budget::{plan_under_budget, resolve_imatrix, BudgetPlan, BudgetRequest, SensitivityTable};
use quantmix::plan::ImportanceMatrix;
use quantmix::recipe::{Budget, Recipe};
use quantmix::report::{human_bytes, Table};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model the plan is for (the one `quantmix sensitivity` measured).
    pub model: PathBuf,
    /// The measurements: `sensitivity.json` from `quantmix sensitivity`.
    #[arg(long)]
    pub sensitivity: PathBuf,
    /// Output size limit: bytes (`105500000`, `105.5MB`, `100MiB`, `1.2GB`) for the whole
    /// file, or bits per weight (`4.5bpw`) for the tensor data.
    #[arg(long)]
    pub budget: String,
    /// A base recipe whose rules pin tensors (the allocator chooses the rest).
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    /// Importance matrix to quantize with (default: the one the sensitivities were measured with).
    #[arg(long)]
    pub imatrix: Option<PathBuf>,
    /// Write the explicit recipe here (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let limit = Budget::parse(&a.budget).with_context(|| {
        format!("--budget `{}`: give bytes (105500000, 105.5MB, 100MiB) or bits per weight (4.5bpw)", a.budget)
    })?;
    let src = GgufModel::open(&a.model).with_context(|| format!("opening {}", a.model.display()))?;
    quantmix::model::hparams::check_block_count(src.metadata(), src.tensors())
        .map_err(|m| anyhow::anyhow!("{}: {m}", a.model.display()))?;
    let table = SensitivityTable::load(&a.sensitivity)?;
    let base = match &a.recipe {
        Some(p) => Recipe::from_path(p)?,
        None => Recipe::allocate_all(),
    };
    let imatrix_path = a.imatrix.clone().or_else(|| resolve_imatrix(&table, &a.sensitivity));
    let imatrix = match &imatrix_path {
        Some(p) => {
            Some(ImportanceMatrix::load(p).with_context(|| format!("reading importance matrix {}", p.display()))?)
        }
        None => None,
    };
    let name = imatrix_path.as_deref().map(|p| relative_to_output(p, a.output.as_deref()));
    let req = BudgetRequest {
        base: &base,
        table: &table,
        table_path: &a.sensitivity,
        limit: &limit,
        imatrix: imatrix.as_ref(),
        imatrix_name: name.as_deref(),
        origin: "budget plan".into(),
    };
    if let Some(o) = &a.output {
        let mut inputs = quantmix::quantize::job::model_files(&a.model);
        inputs.push(a.sensitivity.clone());
        inputs.extend(a.recipe.clone());
        inputs.extend(imatrix_path.clone());
        quantmix::fsutil::check_outputs(&[o], &inputs)?;
    }
    let plan = plan_under_budget(src.metadata(), src.tensors(), &req)?;
    print_summary(&plan, &limit);
    match &a.output {
        Some(o) => {
            quantmix::fsutil::write_atomic(o, plan.plan.recipe_text.as_bytes())?;
            eprintln!(
                "wrote {} — quantize with: quantmix quantize --recipe {} MODEL -o OUT.gguf",
                o.display(),
                o.display()
            );
        }
        None => print!("{}", plan.plan.recipe_text),
    }
    Ok(())
}

/// The imatrix path as the recipe should name it: relative to the recipe's
/// directory when it lies there (recipes resolve relative paths so), else absolute.
fn relative_to_output(p: &Path, out: Option<&Path>) -> PathBuf {
    let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let Some(out) = out else { return abs };
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match std::fs::canonicalize(dir) {
        Ok(d) => abs.strip_prefix(&d).map(Path::to_path_buf).unwrap_or(abs),
        Err(_) => abs,
    }
}

/// Budget, exact size and the per-type totals of the allocated tensors, on stderr.
pub fn print_summary(plan: &BudgetPlan, limit: &Budget) {
    let mut per_type: std::collections::BTreeMap<String, (usize, u64, f64)> = Default::default();
    for d in &plan.decisions {
        let e = per_type.entry(d.ty.name().to_string()).or_default();
        e.0 += 1;
        e.1 += d.bytes;
        e.2 += d.damage;
    }
    let mut t = Table::new(&["type", "tensors", "bytes", "predicted damage"]).left(0);
    for (ty, (n, b, dmg)) in &per_type {
        t.row(vec![ty.clone(), n.to_string(), human_bytes(*b), format!("{dmg:.5}")]);
    }
    eprint!("{}", t.render());
    eprintln!(
        "budget {limit}: output file {} bytes ({}), tensor data {:.3} bpw; predicted damage {:.5} (bound {:.5})",
        plan.file_bytes,
        human_bytes(plan.file_bytes),
        plan.tensor_bytes as f64 * 8.0 / plan.elements.max(1) as f64,
        plan.allocation.damage,
        plan.allocation.lower_bound
    );
}
