//! `quantmix quantize` as a job: a validated [`QuantizeJob`] is
//! [prepared](prepare) — the source opened (a Hugging Face checkpoint
//! converted to a temporary GGUF first), the importance matrix chosen and
//! read, the plan made (resolved from the recipe, or allocated under its
//! `[budget]`) — and the [`Prepared`] value is then [run](Prepared::run).
//! Between the two the caller can show the plan, or stop (a dry run).

use std::path::{Path, PathBuf};

use super::{QuantMap, QuantizeError};
use crate::convert::hf::{convert_hf, HfConvertOptions};
use crate::gguf::GgufModel;
use crate::job::Ctx;
use crate::plan::budget::{plan_under_budget, resolve_imatrix, BudgetError, BudgetPlan, BudgetRequest};
use crate::plan::{resolve, ImportanceMatrix, Plan, PlanError};
use crate::recipe::{Budget, ModelInfo, Recipe};
use crate::sensitivity::job::SensitivityJob;
use crate::sensitivity::schema::SensitivityTable;

/// What to quantize, how, and where to.
#[derive(Clone, Debug)]
pub struct QuantizeJob {
    /// A GGUF (or one shard of a split GGUF), a safetensors file or a
    /// Hugging Face model directory.
    pub model: PathBuf,
    /// The output GGUF; its directory also receives the temporary
    /// conversion of a Hugging Face source.
    pub output: Option<PathBuf>,
    /// The recipe (a file, or one standing for a preset or `--type`).
    pub recipe: Recipe,
    /// An importance matrix that wins over the recipe's `[imatrix]` and the
    /// sensitivity file's.
    pub imatrix: Option<PathBuf>,
    /// A size limit to allocate under (wins over the recipe's `[budget]`);
    /// the recipe's rules still pin their tensors.
    pub budget: Option<Budget>,
    /// The measurements to allocate with; without, they are measured (or
    /// found in the cache) with [`QuantizeJob::measure`].
    pub sensitivity: Option<PathBuf>,
    pub measure: MeasureSettings,
}

/// How the one-command flow measures sensitivities when no file is given.
#[derive(Clone, Debug)]
pub struct MeasureSettings {
    /// The cache root (`$QUANTMIX_CACHE`, default `~/.cache/quantmix`).
    pub cache: PathBuf,
    pub calibration: Vec<PathBuf>,
    pub ctx: usize,
    pub chunks: usize,
    pub types: Vec<crate::gguf::GgmlType>,
    pub imatrix_chunks: usize,
    /// f32 activations while measuring; `None`: when the source is
    /// already quantized (where 8-bit activation rounding would put a floor
    /// under every measurement).
    pub exact_activations: Option<bool>,
    /// Measure only these types and predict the rest (empty: all).
    pub anchors: Vec<crate::gguf::GgmlType>,
}

/// An error of the quantize job, naming what it was working on.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("converting {path} to GGUF")]
    Convert {
        path: PathBuf,
        #[source]
        source: Box<crate::convert::ConvertError>,
    },
    #[error("creating a temporary directory for the conversion in {}: {source}", dir.display())]
    TempDir { dir: PathBuf, source: std::io::Error },
    #[error("opening {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: Box<crate::gguf::GgufError>,
    },
    #[error("reading {what}")]
    Imatrix {
        what: String,
        #[source]
        source: Box<crate::sensitivity::imatrix::ImatrixError>,
    },
    #[error("recipe {origin}: [budget]")]
    Budget {
        origin: String,
        #[source]
        source: BudgetError,
    },
    #[error("measuring the sensitivity of {}", path.display())]
    Measure {
        path: PathBuf,
        #[source]
        source: Box<crate::sensitivity::SensitivityError>,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    #[error(transparent)]
    OutputPath(#[from] crate::fsutil::OutputPathError),
    #[error("{}: {msg}", path.display())]
    Model { path: PathBuf, msg: String },
}

/// A job ready to run: the source, the plan and what it was made from.
pub struct Prepared {
    pub source: GgufModel,
    pub plan: Plan,
    /// The allocation, when the recipe has a `[budget]`.
    pub budget: Option<BudgetPlan>,
    pub imatrix: Option<ImportanceMatrix>,
    /// The temporary conversion of a Hugging Face source (removed on drop).
    _converted: Option<crate::fsutil::TempDir>,
}

/// Whether `path` is a Hugging Face checkpoint (a directory or a
/// safetensors file) rather than a GGUF.
pub fn is_hf_source(path: &Path) -> bool {
    path.is_dir() || crate::convert::safetensors::is_safetensors_path(path)
}

/// Open the source, choose and read the importance matrix, make the plan.
pub fn prepare(job: &QuantizeJob, ctx: Ctx<'_>) -> Result<Prepared, JobError> {
    check_outputs(job)?;
    // A Hugging Face directory or safetensors file is first converted to a
    // GGUF (F16/BF16/F32 as llama.cpp's convert_hf_to_gguf.py keeps them) in
    // a temporary directory next to the output, removed at the end.
    let (model_path, converted) = if is_hf_source(&job.model) {
        let dir = crate::fsutil::dir_of(job.output.as_deref().unwrap_or(Path::new("x"))).to_path_buf();
        let tmp = crate::fsutil::TempDir::new_in(&dir, ".quantmix-convert-")
            .map_err(|source| JobError::TempDir { dir: dir.clone(), source })?;
        let gguf = tmp.path().join("source.gguf");
        ctx.progress.note(
            crate::job::Level::Info,
            &format!("converting {} to GGUF first (as convert_hf_to_gguf.py does)…", job.model.display()),
        );
        let opts = HfConvertOptions { cancel: Some(ctx.cancel.clone()), ..Default::default() };
        convert_hf(&job.model, &gguf, &opts)
            .map_err(|e| JobError::Convert { path: job.model.clone(), source: Box::new(e) })?;
        (gguf, Some(tmp))
    } else {
        (job.model.clone(), None)
    };
    let source =
        GgufModel::open(&model_path).map_err(|e| JobError::Open { path: job.model.clone(), source: Box::new(e) })?;
    crate::model::hparams::check_block_count(source.metadata(), source.tensors())
        .map_err(|msg| JobError::Model { path: job.model.clone(), msg })?;
    let recipe = &job.recipe;
    // An importance matrix the recipe's [imatrix] names is reported with its line.
    let load = |p: &Path| {
        ImportanceMatrix::load(p).map_err(|e| {
            let from_recipe = job.imatrix.is_none() && recipe.imatrix.as_deref() == Some(p);
            let what = if from_recipe {
                format!("recipe {}: [imatrix] file {}", recipe.at(recipe.lines.imatrix), p.display())
            } else {
                format!("importance matrix {}", p.display())
            };
            JobError::Imatrix { what, source: Box::new(e) }
        })
    };
    let info = ModelInfo::from_metadata(source.metadata(), source.tensors());
    // The budget and the measurements it is spent by: the command line's,
    // else the recipe's `[budget]`.
    let limit = job.budget.clone().or_else(|| recipe.budget.as_ref().map(|b| b.limit.clone()));
    let (plan, budget, imatrix) = match limit {
        None => {
            let imatrix = job.imatrix.as_deref().map(load).transpose()?;
            let imatrix = match imatrix {
                Some(m) => Some(m),
                None => recipe.imatrix.as_deref().map(load).transpose()?,
            };
            (resolve(recipe, &info, source.tensors(), imatrix.as_ref())?, None, imatrix)
        }
        Some(limit) => {
            let origin_at = match &recipe.budget {
                Some(spec) if job.budget.is_none() => recipe.at(spec.line),
                _ => recipe.origin.clone(),
            };
            let berr = |source| JobError::Budget { origin: origin_at.clone(), source };
            let given = job.sensitivity.clone().or_else(|| recipe.budget.as_ref().and_then(|b| b.sensitivity.clone()));
            let table_path = match (given, job.budget.is_some()) {
                (Some(p), _) => p,
                (None, true) => measured(job, &model_path, &source, ctx)?,
                (None, false) => return Err(berr(BudgetError::NoSensitivity)),
            };
            let table = SensitivityTable::load(&table_path).map_err(|e| berr(e.into()))?;
            // The sensitivities were measured with an importance matrix:
            // quantize with it too, unless one is given.
            let path = job.imatrix.clone().or_else(|| {
                let p = recipe.imatrix.clone().or_else(|| resolve_imatrix(&table, &table_path))?;
                Some(std::fs::canonicalize(&p).unwrap_or(p))
            });
            let imatrix = path.as_deref().map(load).transpose()?;
            let origin = match job.budget {
                Some(_) => format!("{} (allocated under --budget {limit})", recipe.origin),
                None => format!("{} (allocated under its [budget])", recipe.origin),
            };
            let req = BudgetRequest {
                base: recipe,
                table: &table,
                table_path: &table_path,
                limit: &limit,
                imatrix: imatrix.as_ref(),
                imatrix_name: path.as_deref(),
                origin,
            };
            let bp = plan_under_budget(source.metadata(), source.tensors(), &req).map_err(berr)?;
            (bp.plan.clone(), Some(bp), imatrix)
        }
    };
    Ok(Prepared { source, plan, budget, imatrix, _converted: converted })
}

/// The sensitivity file for the one-command flow: from the cache when the
/// same model was measured with the same settings, else measured now into
/// the cache (an interrupted measurement resumes on the next run).
fn measured(job: &QuantizeJob, model_path: &Path, source: &GgufModel, ctx: Ctx<'_>) -> Result<PathBuf, JobError> {
    let m = &job.measure;
    let quantized_source = crate::sensitivity::measure::has_quantized_weights(source.tensors());
    let mut sj = SensitivityJob {
        model: model_path.to_path_buf(),
        output: PathBuf::new(),
        calibration: m.calibration.clone(),
        ctx: m.ctx,
        chunks: m.chunks,
        types: m.types.clone(),
        imatrix: job.imatrix.clone(),
        imatrix_chunks: m.imatrix_chunks,
        shard: None,
        resume: true,
        exact_activations: Some(m.exact_activations.unwrap_or(quantized_source)),
        anchors: m.anchors.clone(),
    };
    let merr = |e| JobError::Measure { path: job.model.clone(), source: Box::new(e) };
    let files: Vec<PathBuf> = source.shards().iter().map(|s| s.path().to_path_buf()).collect();
    let key = crate::sensitivity::cache::key(&sj, &files).map_err(merr)?;
    sj.output = crate::sensitivity::cache::entry(&m.cache, &key);
    if sj.output.is_file() {
        ctx.progress
            .note(crate::job::Level::Info, &format!("sensitivity: measured before, using {}", sj.output.display()));
        return Ok(sj.output);
    }
    let dir = crate::fsutil::dir_of(&sj.output).to_path_buf();
    std::fs::create_dir_all(&dir)
        .map_err(|source| merr(crate::sensitivity::SensitivityError::Io { path: dir.clone(), source }))?;
    ctx.progress.note(
        crate::job::Level::Info,
        &format!(
            "sensitivity: measuring {} (cached in {}{})",
            job.model.display(),
            dir.display(),
            if sj.exact_activations == Some(true) { "; f32 activations, the source is quantized" } else { "" }
        ),
    );
    crate::sensitivity::job::run(&sj, ctx).map_err(merr)?;
    Ok(sj.output)
}

/// Refuse an output (or its sidecar) that is one of the job's inputs: the
/// model (every shard of a split model, every file of a Hugging Face
/// checkpoint), the recipe, the importance matrix, the sensitivity file.
fn check_outputs(job: &QuantizeJob) -> Result<(), crate::fsutil::OutputPathError> {
    let Some(out) = &job.output else { return Ok(()) };
    let outputs = [out.clone(), super::sidecar_path(out)];
    let mut inputs: Vec<PathBuf> = model_files(&job.model);
    inputs.extend(job.recipe.path.clone());
    inputs.extend(job.imatrix.clone());
    inputs.extend(job.recipe.imatrix.clone());
    inputs.extend(job.recipe.budget.as_ref().and_then(|b| b.sensitivity.clone()));
    inputs.extend(job.sensitivity.clone());
    crate::fsutil::check_outputs(&outputs, &inputs)
}

/// The files a model source consists of: the file itself, the shards of a
/// split GGUF, or the files of a Hugging Face checkpoint.
pub fn model_files(model: &Path) -> Vec<PathBuf> {
    let mut v = vec![model.to_path_buf()];
    if is_hf_source(model) {
        let dir = crate::convert::hf::model_dir(model);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.ends_with(".safetensors") || n.ends_with(".json") || n == "README.md" || n == "tokenizer.model" {
                    v.push(e.path());
                }
            }
        }
    } else if let Some((prefix, _, count)) = crate::gguf::split::parse_shard_path(model) {
        v.extend((0..count).map(|i| crate::gguf::split::shard_path(&prefix, i, count)));
    }
    v
}

impl Prepared {
    /// The quant map of the plan, without running it (a dry run).
    pub fn quant_map(&self, out: &Path) -> QuantMap {
        super::quant_map(&self.source, out, &self.plan)
    }

    /// Quantize: write `out` and its sidecar.
    pub fn run(&self, out: &Path, ctx: Ctx<'_>) -> Result<QuantMap, QuantizeError> {
        super::run(&self.source, &self.plan, self.imatrix.as_ref(), out, ctx)
    }
}
