//! A recipe's `[budget]` (or `quantmix plan --budget`) turned into explicit
//! types: the measured damage table of `quantmix sensitivity` goes through
//! [`allocate`](super::allocate) and comes out as an explicit recipe whose
//! output file is checked to fit the budget exactly.
//!
//! Which tensors are free: every tensor llama-quantize would quantize that
//! no rule of the recipe pins. Rules keep their types (with the usual shape
//! fallback); tensors llama.cpp never quantizes stay as stored. The
//! recipe's `default` (if any) is ignored for free tensors: the allocator
//! chooses among the candidates the sensitivity file measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::allocate::{allocate, AllocError, Allocation, Choice, Item};
use crate::gguf::{GgmlType, TensorInfo};
use crate::quantize::{self, ImportanceMatrix, QuantizePlan, Source};
use crate::recipe::{self, Budget, ModelInfo, Reason, Recipe, RecipeError, TypeChoice};

pub use super::schema::{SensCandidate, SensTensor, SensitivityTable};

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("{path}: {msg}")]
    Sensitivity { path: PathBuf, msg: String },
    #[error(transparent)]
    Schema(#[from] super::schema::SchemaError),
    #[error("{path}: tensor `{tensor}`: {msg}")]
    Tensor { path: PathBuf, tensor: String, msg: String },
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Quantize(#[from] quantize::QuantizeError),
    #[error("{0}")]
    Alloc(#[from] AllocError),
    #[error("a [budget] needs `sensitivity = \"sensitivity.json\"` (written by `quantmix sensitivity`)")]
    NoSensitivity,
    #[error("could not fit the budget of {budget} bytes: the best plan needs {got} bytes")]
    DoesNotFit { budget: u64, got: u64 },
}

/// One free tensor's decision.
#[derive(Clone, Debug)]
pub struct Decision {
    pub name: String,
    pub ty: GgmlType,
    pub bytes: u64,
    pub damage: f64,
}

/// The result: an explicit recipe and what it predicts.
#[derive(Clone, Debug)]
pub struct BudgetPlan {
    /// The explicit recipe (TOML) that reproduces the choice.
    pub text: String,
    /// The limit in bytes the allocation was held to (file bytes for a size
    /// budget; tensor bytes for a bits-per-weight budget).
    pub limit_bytes: u64,
    /// The exact size of the output file the recipe gives.
    pub file_bytes: u64,
    /// Tensor data bytes of the output.
    pub tensor_bytes: u64,
    pub elements: u64,
    pub allocation: Allocation,
    pub decisions: Vec<Decision>,
}

fn padded(bytes: u64, alignment: u64) -> u64 {
    bytes.div_ceil(alignment) * alignment
}

/// Allocate the free tensors of `base` under `limit` and return the explicit
/// recipe. `imatrix` is written into the recipe's `[imatrix]` (the
/// sensitivities were measured with it, so quantization must use it too).
pub fn plan_under_budget(
    src: &dyn Source,
    base: &Recipe,
    table: &SensitivityTable,
    table_path: &Path,
    limit: &Budget,
    imatrix: Option<&Path>,
) -> Result<BudgetPlan, BudgetError> {
    let tensors = src.tensors();
    let info = ModelInfo::from_metadata(src.metadata(), tensors);
    let alignment = src.metadata().get_u64("general.alignment").filter(|a| *a > 0).unwrap_or(32);
    let mut unbudgeted = base.clone();
    unbudgeted.budget = None;
    if unbudgeted.preset.is_none() {
        unbudgeted.default = Some(TypeChoice::Keep);
    }
    let base_plan = recipe::plan(&unbudgeted, &info, tensors, imatrix.is_some())?;
    let by_name: BTreeMap<&str, &SensTensor> = table.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let terr = |tensor: &str, msg: String| BudgetError::Tensor {
        path: table_path.to_path_buf(),
        tensor: tensor.to_string(),
        msg,
    };

    // Free tensors and their candidates; the rest is a fixed cost.
    let mut items: Vec<Item> = Vec::new();
    let mut item_types: Vec<Vec<GgmlType>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut fixed_tensor_bytes = 0u64;
    let elements: u64 = tensors.iter().map(TensorInfo::n_elements).sum();
    for (i, (c, t)) in base_plan.tensors.iter().zip(tensors).enumerate() {
        let pinned = match &c.reason {
            Reason::NotQuantized(_) | Reason::Rule { .. } => true,
            Reason::Fallback { base, .. } => matches!(**base, Reason::Rule { .. }),
            _ => false,
        };
        if pinned {
            let bytes = c.ty.row_bytes(t.row_len()).map(|r| r * t.n_rows()).unwrap_or(0);
            fixed_tensor_bytes += padded(bytes, alignment);
            continue;
        }
        let Some(s) = by_name.get(t.name.as_str()) else {
            return Err(terr(&t.name, "not in the sensitivity file (was it measured on another model?)".into()));
        };
        if s.shape != t.shape {
            return Err(terr(&t.name, format!("shape {:?} in the file, {:?} in the model", s.shape, t.shape)));
        }
        let mut choices = Vec::new();
        let mut types = Vec::new();
        for cand in &s.candidates {
            let ty =
                GgmlType::from_name(&cand.ty).ok_or_else(|| terr(&t.name, format!("unknown type `{}`", cand.ty)))?;
            let Some(bytes) = ty.row_bytes(t.row_len()).map(|r| r * t.n_rows()) else {
                return Err(terr(&t.name, format!("type {ty} does not fit row length {}", t.row_len())));
            };
            if bytes != cand.bytes {
                return Err(terr(&t.name, format!("{ty}: {} bytes in the file, {bytes} for this shape", cand.bytes)));
            }
            if ty != t.ty && !crate::quant::caps(ty).writable {
                continue;
            }
            choices.push(Choice { id: types.len(), bytes: padded(bytes, alignment), damage: cand.kld });
            types.push(ty);
        }
        if choices.is_empty() {
            return Err(terr(&t.name, "no candidate type quantmix can write".into()));
        }
        items.push(Item { name: t.name.clone(), choices });
        item_types.push(types);
        free.push(i);
    }

    // For a size budget the header counts too; it depends on the recipe text
    // stored in it, so measure the real file and tighten until it fits.
    let header_of = |plan: &recipe::Plan, r: &Recipe| -> Result<u64, BudgetError> {
        let qp = QuantizePlan::from_recipe_plan(r, plan);
        let im = imatrix.map(|p| ImportanceMatrix { file: Some(p.display().to_string()), ..Default::default() });
        let p = quantize::prepare(src, &qp, im.as_ref())?;
        let tensor_bytes: u64 = p.reports.iter().map(|x| padded(x.bytes, alignment)).sum();
        Ok(p.file_bytes - tensor_bytes)
    };
    let (limit_bytes, counts_header) = match limit {
        Budget::Bytes(b) => (*b, true),
        Budget::Bpw(bpw) => ((bpw * elements as f64 / 8.0).floor() as u64, false),
    };
    // First guess of the header: the base plan's plus room for the rules.
    let mut header =
        if counts_header { header_of(&base_plan, &unbudgeted)? + 64 * items.len() as u64 + 4096 } else { 0 };
    for _attempt in 0..6 {
        let avail = limit_bytes.saturating_sub(header + fixed_tensor_bytes);
        let alloc = match allocate(&items, avail) {
            Ok(a) => a,
            Err(AllocError::Infeasible { minimum, .. }) => {
                return Err(BudgetError::DoesNotFit { budget: limit_bytes, got: minimum + header + fixed_tensor_bytes })
            }
            Err(e) => return Err(e.into()),
        };
        let decisions: Vec<Decision> = alloc
            .chosen
            .iter()
            .enumerate()
            .map(|(k, &id)| Decision {
                name: items[k].name.clone(),
                ty: item_types[k][id],
                bytes: items[k].choices[id].bytes,
                damage: items[k].choices[id].damage,
            })
            .collect();
        let text = render(&base_plan, tensors, &free, &decisions, limit, &alloc, table, imatrix);
        let r = Recipe::from_toml_str(&text, "budget plan")?;
        let plan = recipe::plan(&r, &info, tensors, imatrix.is_some())?;
        for (d, &i) in decisions.iter().zip(&free) {
            if plan.tensors[i].ty != d.ty {
                return Err(BudgetError::Sensitivity {
                    path: table_path.to_path_buf(),
                    msg: format!("internal error: the explicit recipe gives {} for {}", plan.tensors[i].ty, d.name),
                });
            }
        }
        let qp = QuantizePlan::from_recipe_plan(&r, &plan);
        let im = imatrix.map(|p| ImportanceMatrix { file: Some(p.display().to_string()), ..Default::default() });
        let prepared = quantize::prepare(src, &qp, im.as_ref())?;
        let tensor_bytes: u64 = prepared.reports.iter().map(|x| x.bytes).sum();
        let used = if counts_header { prepared.file_bytes } else { tensor_bytes };
        if used <= limit_bytes {
            return Ok(BudgetPlan {
                text,
                limit_bytes,
                file_bytes: prepared.file_bytes,
                tensor_bytes,
                elements,
                allocation: alloc,
                decisions,
            });
        }
        // Over: the header grew with the rules. Tighten by the excess.
        header += used - limit_bytes + 256;
    }
    Err(BudgetError::DoesNotFit { budget: limit_bytes, got: limit_bytes + header })
}

/// The explicit recipe: a commented header (budget, prediction, the table
/// of choices), `[imatrix]`, the base recipe's pinned choices and one rule
/// per (role, type) group of allocated tensors.
#[allow(clippy::too_many_arguments)]
fn render(
    base_plan: &recipe::Plan,
    tensors: &[TensorInfo],
    free: &[usize],
    decisions: &[Decision],
    limit: &Budget,
    alloc: &Allocation,
    table: &SensitivityTable,
    imatrix: Option<&Path>,
) -> String {
    let mut final_plan = base_plan.clone();
    for (d, &i) in decisions.iter().zip(free) {
        final_plan.tensors[i].ty = d.ty;
        final_plan.tensors[i].reason = Reason::Default;
    }
    let mut h = String::new();
    let _ = writeln!(h, "Allocated by quantmix under a budget of {limit}.");
    let _ = writeln!(
        h,
        "Predicted damage (sum of per-tensor {}): {:.6}; relaxation lower bound {:.6}.",
        table.metric.as_deref().unwrap_or("damage"),
        alloc.damage,
        alloc.lower_bound
    );
    let _ = writeln!(h, "Allocated tensors: {} ({} bytes). Choices:", decisions.len(), alloc.bytes);
    for d in decisions {
        let _ = writeln!(h, "  {:<34} {:<5} {:>10} B  damage {:.3e}", d.name, d.ty.name(), d.bytes, d.damage);
    }
    let mut text = recipe::explicit_recipe(&final_plan, tensors, &h);
    if let Some(p) = imatrix {
        let _ = write!(text, "\n[imatrix]\nfile = {}\n", toml::Value::String(p.display().to_string()));
    }
    text
}

/// Where the sensitivity file's `imatrix` points: as given when it exists,
/// else relative to the sensitivity file's directory.
pub fn resolve_imatrix(table: &SensitivityTable, table_path: &Path) -> Option<PathBuf> {
    let p = table.imatrix.as_ref()?;
    if p.is_absolute() || p.exists() {
        return Some(p.clone());
    }
    let alt = table_path.parent().map(|d| d.join(p))?;
    Some(if alt.exists() { alt } else { p.clone() })
}
