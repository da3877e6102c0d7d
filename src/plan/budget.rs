//! A recipe's `[budget]` (or `quantmix plan --budget`) turned into a plan:
//! the measured damage table of `quantmix sensitivity` goes through
//! [`allocate`](super::allocate) and comes out as a [`Plan`] whose output
//! file ([`super::output`]) is checked to fit the budget exactly, with the
//! explicit recipe that reproduces it for review.
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
use super::{output, resolve, tensor_plan, ImportanceMatrix, Plan, PlanError, Reason};
use crate::gguf::{GgmlType, Metadata, TensorInfo};
use crate::recipe::{Budget, ModelInfo, Recipe, TypeChoice};

pub use crate::sensitivity::schema::{SensCandidate, SensTensor, SensitivityTable};

#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("{path}: {msg}")]
    Sensitivity { path: PathBuf, msg: String },
    #[error(transparent)]
    Schema(#[from] crate::sensitivity::schema::SchemaError),
    #[error("{path}: tensor `{tensor}`: {msg}")]
    Tensor { path: PathBuf, tensor: String, msg: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
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

/// What to allocate: the base recipe (its rules pin tensors), the measured
/// damage, the limit, and the importance matrix quantization will use.
pub struct BudgetRequest<'a> {
    pub base: &'a Recipe,
    pub table: &'a SensitivityTable,
    pub table_path: &'a Path,
    pub limit: &'a Budget,
    pub imatrix: Option<&'a ImportanceMatrix>,
    /// How the explicit recipe's `[imatrix]` names the importance matrix.
    pub imatrix_name: Option<&'a Path>,
    /// The plan's origin (stored in the output).
    pub origin: String,
}

/// The result: the plan and what it predicts.
#[derive(Clone, Debug)]
pub struct BudgetPlan {
    /// The plan; its `recipe_text` is the explicit recipe that reproduces it.
    pub plan: Plan,
    /// The limit in bytes the allocation was held to (file bytes for a size
    /// budget; tensor bytes for a bits-per-weight budget).
    pub limit_bytes: u64,
    /// The exact size of the output file.
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

/// Allocate the free tensors of `req.base` under `req.limit`.
pub fn plan_under_budget(
    md: &Metadata,
    tensors: &[TensorInfo],
    req: &BudgetRequest<'_>,
) -> Result<BudgetPlan, BudgetError> {
    let info = ModelInfo::from_metadata(md, tensors);
    check_same_model(&info, tensors, req.table, req.table_path)?;
    let mut unbudgeted = req.base.clone();
    unbudgeted.budget = None;
    if unbudgeted.preset.is_none() {
        unbudgeted.default = Some(TypeChoice::Keep);
    }
    let base_plan = resolve(&unbudgeted, &info, tensors, req.imatrix)?;
    let alignment = output::layout(md, &base_plan).alignment;
    let by_name: BTreeMap<&str, &SensTensor> = req.table.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let terr = |tensor: &str, msg: String| BudgetError::Tensor {
        path: req.table_path.to_path_buf(),
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
            fixed_tensor_bytes += padded(c.bytes(), alignment);
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

    let (limit_bytes, counts_header) = match req.limit {
        Budget::Bytes(b) => (*b, true),
        Budget::Bpw(bpw) => ((bpw * elements as f64 / 8.0).floor() as u64, false),
    };
    // For a size budget the header counts too; it grows with the explicit
    // recipe stored in it, so start from the base plan's header plus room
    // for the rules, and tighten until the real file fits.
    let mut header =
        if counts_header { output::layout(md, &base_plan).header_bytes() + 64 * items.len() as u64 + 4096 } else { 0 };
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
        let mut plan = base_plan.clone();
        for (d, &i) in decisions.iter().zip(&free) {
            let reason = Reason::Budget { damage: d.damage };
            plan.tensors[i] = tensor_plan(&req.origin, &tensors[i], d.ty, reason, req.imatrix, None)?;
        }
        plan.file_type = super::mix_file_type(&plan.tensors);
        plan.origin = req.origin.clone();
        plan.recipe_text = render(&plan, &decisions, &alloc, req);
        let layout = output::layout(md, &plan);
        let file_bytes = layout.file_bytes();
        let tensor_bytes: u64 = plan.tensors.iter().map(|t| t.bytes()).sum();
        let used = if counts_header { file_bytes } else { tensor_bytes };
        if used <= limit_bytes {
            return Ok(BudgetPlan {
                plan,
                limit_bytes,
                file_bytes,
                tensor_bytes,
                elements,
                allocation: alloc,
                decisions,
            });
        }
        // Over: the header grew with the rules. The next allocation must be
        // smaller than this one by the excess (a smaller `avail` that this
        // allocation still fits would choose it again).
        let next_avail = alloc.bytes.saturating_sub(used - limit_bytes + 256);
        header = header.max(limit_bytes.saturating_sub(fixed_tensor_bytes + next_avail));
    }
    Err(BudgetError::DoesNotFit { budget: limit_bytes, got: limit_bytes + header })
}

/// The sensitivity file must describe this model: not one shard of a
/// measurement, the same architecture and layer count, and every tensor it
/// lists (measured or fixed) present here with the same shape and type.
/// Measurements of another model would otherwise be spent silently.
fn check_same_model(
    info: &ModelInfo,
    tensors: &[TensorInfo],
    table: &SensitivityTable,
    path: &Path,
) -> Result<(), BudgetError> {
    let other = |msg: String| BudgetError::Sensitivity {
        path: path.to_path_buf(),
        msg: format!("measured on another model: {msg}"),
    };
    if let Some(s) = table.shard {
        return Err(BudgetError::Sensitivity {
            path: path.to_path_buf(),
            msg: format!(
                "shard {}/{} of a measurement: join the shards first (quantmix sensitivity --merge)",
                s.index, s.count
            ),
        });
    }
    if let Some(m) = &table.model {
        if info.arch.as_deref().is_some_and(|a| a != m.arch) {
            return Err(other(format!("a {} model there, {} here", m.arch, info.arch.as_deref().unwrap_or("?"))));
        }
        if m.n_layer != info.n_layer as usize {
            return Err(other(format!("{} layers there, {} here", m.n_layer, info.n_layer)));
        }
    }
    let by_name: BTreeMap<&str, &TensorInfo> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    for s in &table.tensors {
        let Some(t) = by_name.get(s.name.as_str()) else {
            return Err(other(format!("tensor `{}` is not in this model", s.name)));
        };
        let ty_differs = !s.source_type.is_empty() && s.source_type != t.ty.name();
        if s.shape != t.shape || ty_differs {
            return Err(other(format!(
                "tensor `{}` is {} {:?} there, {} {:?} here",
                s.name, s.source_type, s.shape, t.ty, t.shape
            )));
        }
    }
    for f in &table.fixed {
        match by_name.get(f.name.as_str()) {
            Some(t) if t.ty.name() == f.ty && t.n_bytes() == f.bytes => {}
            Some(t) => {
                return Err(other(format!(
                    "tensor `{}` is {} ({} bytes) there, {} ({} bytes) here",
                    f.name,
                    f.ty,
                    f.bytes,
                    t.ty,
                    t.n_bytes()
                )))
            }
            None => return Err(other(format!("tensor `{}` is not in this model", f.name))),
        }
    }
    Ok(())
}

/// The explicit recipe: a commented header (budget, prediction, the table
/// of choices), `[imatrix]`, one rule per (role, type) group.
fn render(plan: &Plan, decisions: &[Decision], alloc: &Allocation, req: &BudgetRequest<'_>) -> String {
    let mut h = String::new();
    let _ = writeln!(h, "Allocated by quantmix under a budget of {}.", req.limit);
    let _ = writeln!(
        h,
        "Predicted damage (sum of per-tensor {}): {:.6}; relaxation lower bound {:.6}.",
        req.table.metric.as_deref().unwrap_or("damage"),
        alloc.damage,
        alloc.lower_bound
    );
    let _ = writeln!(h, "Allocated tensors: {} ({} bytes). Choices:", decisions.len(), alloc.bytes);
    for d in decisions {
        let _ = writeln!(h, "  {:<34} {:<5} {:>10} B  damage {:.3e}", d.name, d.ty.name(), d.bytes, d.damage);
    }
    let mut text = super::render::explicit_recipe(plan, &h);
    if let Some(p) = req.imatrix_name {
        let _ = write!(text, "\n[imatrix]\nfile = {}\n", toml::Value::String(p.display().to_string()));
    }
    text
}

/// Where the sensitivity file's `imatrix` points: relative to the
/// sensitivity file's directory (where `quantmix sensitivity` writes it),
/// or as given when it is absolute.
pub fn resolve_imatrix(table: &SensitivityTable, table_path: &Path) -> Option<PathBuf> {
    let p = table.imatrix.as_ref()?;
    if p.is_absolute() {
        return Some(p.clone());
    }
    Some(crate::fsutil::dir_of(table_path).join(p))
}
