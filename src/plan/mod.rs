//! The plan: which ggml type every tensor of a model gets, why, and
//! whether an importance matrix weights its quantization — one typed value
//! that a recipe, a llama.cpp preset, `--type` or an allocation under a
//! size budget all produce, and that [`crate::quantize`] consumes.
//!
//! - [`resolve`]: a [`Recipe`] (which also stands for a preset or `--type`)
//!   resolved for a model's tensors;
//! - [`budget`] (with [`allocate`]): a recipe's free tensors allocated
//!   under a size limit from measured sensitivities;
//! - [`render`]: the explicit recipe (TOML) that reproduces a plan, an
//!   output format for review (`quantmix recipe`, `quantmix plan`);
//! - [`output`]: the output file's metadata and tensor layout, and so its
//!   exact size, as functions of the plan.

pub mod allocate;
pub mod budget;
pub mod imatrix;
pub mod output;
pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::gguf::{GgmlType, TensorInfo};
use crate::recipe::llama::{self, ModelInfo, Preset};
use crate::recipe::{roles, Recipe, RecipeError, TypeChoice};
pub use imatrix::{ImatrixInfo, ImportanceMatrix};

/// Why a tensor got its type.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// llama.cpp never quantizes it (1-D, norm, …).
    NotQuantized(&'static str),
    /// The recipe's `default` (or `--type`).
    Default,
    /// llama.cpp's logic for a preset.
    Preset(Preset),
    /// A recipe rule (1-based index and line in the recipe file).
    Rule { index: usize, line: usize, why: Option<String> },
    /// Chosen by the allocator under a size budget, with the damage the
    /// sensitivity file predicts for it.
    Budget { damage: f64 },
    /// The wanted type's block does not divide the row length.
    Fallback { base: Box<Reason>, wanted: GgmlType, row_len: u64, block: usize },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotQuantized(why) => write!(f, "kept: {why}"),
            Reason::Default => f.write_str("default"),
            Reason::Preset(p) => write!(f, "preset {} (llama.cpp logic)", p.name()),
            Reason::Rule { index, line, why } => {
                write!(f, "rule #{index} (line {line})")?;
                if let Some(w) = why {
                    write!(f, ": {w}")?;
                }
                Ok(())
            }
            Reason::Budget { damage } => write!(f, "budget: predicted damage {damage:.3e}"),
            Reason::Fallback { base, wanted, row_len, block } => {
                write!(f, "{base}; fallback from {wanted}: row length {row_len} is not a multiple of {block}")
            }
        }
    }
}

/// The plan for one tensor.
#[derive(Clone, Debug)]
pub struct TensorPlan {
    pub name: String,
    /// ggml order: `shape[0]` is the row length.
    pub shape: Vec<u64>,
    pub source_type: GgmlType,
    pub ty: GgmlType,
    pub reason: Reason,
    /// Whether an importance vector weights its quantization.
    pub imatrix: bool,
}

impl TensorPlan {
    /// Bytes of the tensor's data in the output.
    pub fn bytes(&self) -> u64 {
        let row_len = self.shape.first().copied().unwrap_or(0);
        let rows: u64 = self.shape.iter().skip(1).product();
        self.ty.row_bytes(row_len).map_or(0, |r| r * rows)
    }

    /// Whether the tensor is converted (not copied unchanged).
    pub fn converts(&self) -> bool {
        self.ty != self.source_type
    }
}

/// The plan for a whole model, tensors in source order.
#[derive(Clone, Debug)]
pub struct Plan {
    pub tensors: Vec<TensorPlan>,
    /// `general.file_type` (llama.cpp's `llama_ftype`) of the output.
    pub file_type: u32,
    /// Where the choice came from (recipe file, `preset Q4_K_M`, `--type Q4_K`, …).
    pub origin: String,
    /// The recipe that reproduces the plan, stored in the output's metadata.
    pub recipe_text: String,
    /// The importance matrix quantization uses, if any.
    pub imatrix: Option<ImatrixInfo>,
}

impl Plan {
    /// Tensors whose type came from a shape fallback.
    pub fn fallbacks(&self) -> impl Iterator<Item = &TensorPlan> {
        self.tensors.iter().filter(|c| matches!(c.reason, Reason::Fallback { .. }))
    }

    /// Tensors already quantized in the source that are quantized again.
    pub fn requantized(&self) -> impl Iterator<Item = &TensorPlan> {
        self.tensors.iter().filter(|c| c.converts() && c.source_type.is_quantized())
    }

    /// Tensors quantized here that importance matrix `m` has no vector for.
    pub fn missing_imatrix<'a>(&'a self, m: &'a ImportanceMatrix) -> impl Iterator<Item = &'a TensorPlan> {
        self.tensors.iter().filter(move |c| c.converts() && c.ty.is_quantized() && !m.vectors.contains_key(&c.name))
    }
}

/// An error of planning.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error("tensor `{tensor}`: importance vector of {got} values, expected {expected} (one per column)")]
    BadImatrix { tensor: String, got: usize, expected: usize },
}

/// Types whose quantizer reads importance weights (ggml ignores them for
/// the float types, Q8_0, Q1_0, Q2_0, TQ1_0, TQ2_0 and MXFP4).
pub fn imatrix_matters(ty: GgmlType) -> bool {
    use GgmlType as T;
    ty.is_quantized() && !matches!(ty, T::Q8_0 | T::Q1_0 | T::Q2_0 | T::TQ1_0 | T::TQ2_0 | T::MXFP4)
}

/// llama-quantize walks the tensors in the order of its weights map: by
/// layer number (non-layer tensors first), then by name. Its attn_v /
/// ffn_down counters follow that order, and so must ours, whatever the
/// order of the source file.
fn preset_types<'a>(
    p: Preset,
    model: &ModelInfo,
    tensors: &'a [TensorInfo],
    has_imatrix: bool,
) -> HashMap<&'a str, GgmlType> {
    let mut state = llama::PresetState::new(p, model, tensors, has_imatrix);
    let mut sorted: Vec<&TensorInfo> = tensors.iter().collect();
    sorted.sort_by(|a, b| {
        let la = roles::layer_of(&a.name).map_or(-1, |l| l as i64);
        let lb = roles::layer_of(&b.name).map_or(-1, |l| l as i64);
        la.cmp(&lb).then_with(|| a.name.cmp(&b.name))
    });
    let mut out = HashMap::new();
    for t in sorted {
        if llama::allows_quantization(&t.name, t.shape.len()).is_ok() {
            out.insert(t.name.as_str(), state.choose(t));
        }
    }
    out
}

/// The type a tensor of row length `row_len` gets when `wanted` is asked
/// for: `wanted` itself when its block divides the row, else the recipe's
/// `[fallback]` or llama.cpp's, else F16. `Err` names the recipe fallback
/// that does not fit either.
pub fn fitted_type(
    wanted: GgmlType,
    row_len: u64,
    overrides: &BTreeMap<GgmlType, GgmlType>,
) -> Result<GgmlType, GgmlType> {
    if row_len.is_multiple_of(wanted.block_size() as u64) {
        return Ok(wanted);
    }
    let ty = overrides.get(&wanted).copied().or_else(|| llama::default_fallback(wanted)).unwrap_or(wanted);
    if row_len.is_multiple_of(ty.block_size() as u64) {
        Ok(ty)
    } else if overrides.contains_key(&wanted) {
        Err(ty)
    } else {
        Ok(GgmlType::F16)
    }
}

/// Resolve `recipe` for a model's tensors. A recipe's `[budget]` is not
/// looked at here ([`budget::plan_under_budget`] allocates it): its tensors
/// without a rule keep the default, or their source type when the recipe
/// has none.
pub fn resolve(
    recipe: &Recipe,
    model: &ModelInfo,
    tensors: &[TensorInfo],
    imatrix: Option<&ImportanceMatrix>,
) -> Result<Plan, PlanError> {
    let err = |line: Option<usize>, msg: String| RecipeError { origin: recipe.origin.clone(), line, msg };
    // Roles must be known, or present in this model.
    for r in &recipe.rules {
        for role in &r.roles {
            let present = tensors.iter().any(|t| roles::role_matches(role, roles::role_of(&t.name)));
            if !present && !roles::KNOWN_ROLES.contains(&role.as_str()) {
                return Err(err(Some(r.line), format!("rule #{}: unknown role `{role}`", r.index)).into());
            }
        }
        if let Some(ls) = &r.layers {
            if let Some(l) = ls.out_of_range(model.n_layer) {
                return Err(err(
                    Some(r.line),
                    format!("rule #{}: layer {l} does not exist (the model has {} layers)", r.index, model.n_layer),
                )
                .into());
            }
        }
    }
    let preset_types = match recipe.preset {
        Some(p) => preset_types(p, model, tensors, imatrix.is_some()),
        None => HashMap::new(),
    };
    let mut used = vec![false; recipe.rules.len()];
    let mut out = Vec::with_capacity(tensors.len());
    for t in tensors {
        let (ty, reason) = match llama::allows_quantization(&t.name, t.shape.len()) {
            Err(why) => (t.ty, Reason::NotQuantized(why)),
            Ok(()) => {
                let (mut choice, mut reason) = match (recipe.preset, recipe.default) {
                    (Some(p), _) => (TypeChoice::Type(preset_types[t.name.as_str()]), Reason::Preset(p)),
                    (None, Some(d)) => (d, Reason::Default),
                    (None, None) => (TypeChoice::Keep, Reason::Default), // only with a [budget]
                };
                if let Some(r) = recipe.rules.iter().find(|r| r.matches(t, model.n_layer)) {
                    used[r.index - 1] = true;
                    choice = r.ty;
                    reason = Reason::Rule { index: r.index, line: r.line, why: r.why.clone() };
                }
                let wanted = match choice {
                    TypeChoice::Keep => t.ty,
                    TypeChoice::Type(ty) => ty,
                };
                let ty = fitted_type(wanted, t.row_len(), &recipe.fallback).map_err(|ty| {
                    err(
                        recipe.lines.fallback.get(&wanted).copied(),
                        format!(
                            "tensor `{}`: fallback {wanted} → {ty} does not fit its row length {}",
                            t.name,
                            t.row_len()
                        ),
                    )
                })?;
                if ty != wanted {
                    reason = Reason::Fallback {
                        base: Box::new(reason),
                        wanted,
                        row_len: t.row_len(),
                        block: wanted.block_size(),
                    };
                }
                (ty, reason)
            }
        };
        let line = match &reason {
            Reason::Rule { line, .. } => Some(*line),
            Reason::Fallback { base, wanted, .. } => match **base {
                Reason::Rule { line, .. } => Some(line),
                _ => recipe.lines.fallback.get(wanted).copied().or(recipe.lines.default),
            },
            Reason::Preset(_) => recipe.lines.preset,
            _ => recipe.lines.default,
        };
        out.push(tensor_plan(&recipe.at(line), t, ty, reason, imatrix, recipe.preset)?);
    }
    if let Some(i) = used.iter().zip(&recipe.rules).position(|(u, r)| !u && !r.optional) {
        let r = &recipe.rules[i];
        return Err(err(
            Some(r.line),
            format!(
                "rule #{} matches no tensor of this model (mark it `optional = true` if that is expected)",
                r.index
            ),
        )
        .into());
    }
    let file_type = match recipe.preset {
        Some(p) if recipe.rules.is_empty() => p.ftype(),
        _ => mix_file_type(&out),
    };
    Ok(Plan {
        tensors: out,
        file_type,
        origin: recipe.origin.clone(),
        recipe_text: recipe.text.clone(),
        imatrix: imatrix.map(ImportanceMatrix::info),
    })
}

/// One tensor's plan, checked: its source can be read when it changes
/// type, the target can be written, and the importance vector (if any)
/// fits.
fn tensor_plan(
    origin: &str,
    t: &TensorInfo,
    ty: GgmlType,
    reason: Reason,
    imatrix: Option<&ImportanceMatrix>,
    preset: Option<Preset>,
) -> Result<TensorPlan, PlanError> {
    let converts = ty != t.ty;
    let err = |msg: String| PlanError::Recipe(RecipeError { origin: origin.to_string(), line: None, msg });
    if converts && !crate::quant::caps(t.ty).dequantize {
        return Err(err(format!("tensor `{}`: its source type {} cannot be read; use `keep` for it", t.name, t.ty)));
    }
    if converts && !crate::quant::caps(ty).writable {
        return Err(err(format!("tensor `{}`: quantmix cannot write type {ty}", t.name)));
    }
    let vector = match imatrix {
        Some(m) => m.vector_for(t)?,
        None => None,
    };
    if converts && vector.is_none() && llama::requires_imatrix(&t.name, ty, preset) {
        let what = if ty == GgmlType::Q2_K { format!("type {ty} in a Q2_K_S file") } else { format!("type {ty}") };
        return Err(err(format!(
            "tensor `{}`: {what} requires an importance matrix (llama-quantize refuses it without one); \
             pass --imatrix or choose another type",
            t.name
        )));
    }
    Ok(TensorPlan {
        name: t.name.clone(),
        shape: t.shape.clone(),
        source_type: t.ty,
        ty,
        reason,
        imatrix: converts && vector.is_some() && imatrix_matters(ty),
    })
}

/// `general.file_type` of a mix: the quantized type holding the most
/// weights names it.
fn mix_file_type(tensors: &[TensorPlan]) -> u32 {
    let mut by_type: BTreeMap<GgmlType, u64> = BTreeMap::new();
    for c in tensors {
        if c.ty.is_quantized() {
            *by_type.entry(c.ty).or_default() += c.shape.iter().product::<u64>();
        }
    }
    let top = by_type.iter().max_by_key(|(_, n)| **n).map(|(t, _)| *t);
    llama::ftype_for_type(top.unwrap_or(GgmlType::F16))
}
