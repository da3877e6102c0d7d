//! `quantmix sensitivity` as a job: the importance matrix (given, or
//! collected on the calibration text and written beside the output), the
//! reference pass, one measurement per tensor × candidate type
//! ([`super::measure`]), each tensor's result appended to `OUTPUT.partial`
//! as it is measured (so that an interrupted run resumes where it stopped),
//! and the result written as `sensitivity.json` (+ `.md` and the heatmap for
//! a whole model). [`merge`] joins the files of `--shard i/n` runs.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::calibration::Calibration;
use super::collect::{collect, CollectOptions};
use super::imatrix::Imatrix;
use super::measure::{
    f32_copy, has_quantized_weights, measure_target, measured_candidates, sequence_starts, targets, Models, Reference,
    Target,
};
use super::report::{heatmap, markdown};
use super::schema::{
    CalibrationDesc, FixedTensor, ModelDesc, SensCandidate, SensTensor, SensitivityTable, ShardDesc, FORMAT, VERSION,
};
use super::SensitivityError;
use crate::gguf::GgmlType;
use crate::job::{Ctx, Level, Unit};
use crate::model::{LlamaModel, Tokenizer};

/// What to measure and how.
#[derive(Clone, Debug)]
pub struct SensitivityJob {
    pub model: PathBuf,
    /// `sensitivity.json`; the partial log, the collected imatrix and the
    /// reports go beside it.
    pub output: PathBuf,
    /// Calibration files (empty: the shipped set).
    pub calibration: Vec<PathBuf>,
    /// Tokens per measured sequence.
    pub ctx: usize,
    /// Measured sequences.
    pub chunks: usize,
    pub types: Vec<GgmlType>,
    /// An importance matrix to use instead of collecting one.
    pub imatrix: Option<PathBuf>,
    /// Chunks of 512 tokens to collect the importance matrix on (0: all).
    pub imatrix_chunks: usize,
    pub shard: Option<ShardDesc>,
    /// Continue from `OUTPUT.partial`.
    pub resume: bool,
    /// Measure with f32 activations and dequantized weights (no 8-bit
    /// activation rounding: the mode for already-quantized sources);
    /// `None`: when the model's weights are quantized.
    pub exact_activations: Option<bool>,
    /// Measure only the candidates these requested types end at and
    /// predict the others from them (empty: measure every candidate).
    pub anchors: Vec<GgmlType>,
}

/// What must match for `--resume` to continue a partial run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    model: ModelDesc,
    calibration: CalibrationDesc,
    types: Vec<String>,
    imatrix: String,
    shard: Option<ShardDesc>,
}

/// `out` with `ext` appended (`sens.json` → `sens.json.partial`).
pub fn sibling(out: &Path, ext: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// What a finished run produced.
pub struct Outcome {
    pub table: SensitivityTable,
    /// The files written, the JSON first.
    pub written: Vec<PathBuf>,
    /// Seconds of the reference pass, of the measurements, in all.
    pub reference_secs: f64,
    pub measure_secs: f64,
    pub total_secs: f64,
    /// Candidates measured by this run.
    pub measured: usize,
}

/// Measure, write the outputs, remove the partial log.
pub fn run(job: &SensitivityJob, ctx: Ctx<'_>) -> Result<Outcome, SensitivityError> {
    ctx.install(|| run_here(job, ctx))?
}

fn json_line<T: Serialize>(t: &T) -> Result<String, SensitivityError> {
    serde_json::to_string(t).map_err(|e| SensitivityError::Invalid(e.to_string()))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SensitivityError + '_ {
    move |source| SensitivityError::Io { path: path.to_path_buf(), source }
}

/// Every file a run may write: the JSON, its reports, the partial log and
/// the collected importance matrix.
fn outputs_of(out: &Path) -> Vec<PathBuf> {
    let mut v = report_paths(out);
    v.push(sibling(out, ".partial"));
    v.push(sibling(&out.with_extension(""), ".imatrix.gguf"));
    v
}

/// The JSON and the reports written beside it.
fn report_paths(out: &Path) -> Vec<PathBuf> {
    vec![out.to_path_buf(), out.with_extension("md"), out.with_extension("svg"), out.with_extension("png")]
}

fn run_here(job: &SensitivityJob, ctx: Ctx<'_>) -> Result<Outcome, SensitivityError> {
    let t0 = Instant::now();
    let mut inputs = vec![job.model.clone()];
    inputs.extend(job.calibration.iter().cloned());
    inputs.extend(job.imatrix.clone());
    crate::fsutil::check_outputs(&outputs_of(&job.output), &inputs)?;
    let cal = Calibration::from_args(&job.calibration)?;
    let text = cal.joined();
    let model = LlamaModel::open(&job.model)?;
    let tok = Tokenizer::from_metadata(model.file().metadata(), &job.model)?;
    let tokens = tok.encode(&text, true, false)?;
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let exact = job.exact_activations.unwrap_or_else(|| has_quantized_weights(model.file().tensors()));
    // Fail on impossible settings before any expensive work.
    sequence_starts(tokens.len(), job.ctx, job.chunks)?;

    let (mut all_targets, fixed) = targets(&model, &job.types);
    let partial = sibling(&job.output, ".partial");

    // The exact-activations mode runs the forward passes (the importance
    // matrix's too) on an f32 copy of the model, written beside the output
    // and removed at the end.
    let (_exact_dir, f32_model) = if exact {
        let dir = crate::fsutil::dir_of(&job.output);
        // Registered, so that a second signal (immediate exit) removes it too.
        let tmp = crate::fsutil::TempDir::new_in(dir, ".quantmix-exact-")
            .map_err(|source| SensitivityError::Io { path: dir.to_path_buf(), source })?;
        let path = tmp.path().join("model-f32.gguf");
        ctx.progress.note(Level::Info, "sensitivity: measuring with f32 activations (a dequantized copy of the model)");
        f32_copy(&model, &path, ctx)?;
        (Some(tmp), Some(LlamaModel::open(&path)?))
    } else {
        (None, None)
    };
    let models = Models { source: &model, forward: f32_model.as_ref().unwrap_or(&model), exact };
    // The importance matrix: given, or collected on the calibration text.
    let (imatrix, imatrix_path, imatrix_chunks) = match &job.imatrix {
        Some(p) => (Imatrix::load(p)?, p.clone(), None),
        None => {
            let p = sibling(&job.output.with_extension(""), ".imatrix.gguf");
            if job.resume && p.exists() && partial.exists() {
                let m = Imatrix::load(&p)?;
                let n = m.chunk_count as usize;
                ctx.progress.note(Level::Info, &format!("sensitivity: resuming with {}", p.display()));
                (m, p, Some(n))
            } else {
                let max_chunks = Some(job.imatrix_chunks).filter(|&n| n > 0);
                let opts = CollectOptions { n_ctx: 512, max_chunks, process_output: false };
                let n = (tokens.len() / 512).min(max_chunks.unwrap_or(usize::MAX));
                ctx.progress.note(
                    Level::Info,
                    &format!(
                        "sensitivity: collecting the importance matrix ({n} chunks of 512 tokens of {})",
                        cal.describe()
                    ),
                );
                let m = collect(models.forward, &tokens, bos, &opts, cal.sources.clone(), ctx)?;
                m.save_gguf(&p)?;
                let n = m.chunk_count as usize;
                (m, p, Some(n))
            }
        }
    };
    let importance = imatrix.importance();
    // ggml makes some types only with an importance vector (IQ2_XXS, IQ2_XS,
    // IQ1_S): they are no candidates of a tensor without one (the token
    // embeddings; the output projection, which the imatrix skips).
    for t in &mut all_targets {
        let has = importance.contains_key(&t.info.name);
        t.candidates.retain(|c| c.is_source || has || !crate::quant::caps(c.ty).requires_imatrix);
    }
    let chosen: Vec<&Target> = all_targets
        .iter()
        .enumerate()
        .filter(|(i, _)| job.shard.is_none_or(|s| i % s.count == s.index - 1))
        .map(|(_, t)| t)
        .collect();
    // Relative to the output's directory when it is beside it.
    let imatrix_rel = match (imatrix_path.parent(), job.output.parent()) {
        (Some(ip), Some(op)) if ip == op => PathBuf::from(imatrix_path.file_name().unwrap_or_default()),
        _ => std::path::absolute(&imatrix_path).unwrap_or(imatrix_path.clone()),
    };

    let model_bytes = std::fs::metadata(&job.model).map(|m| m.len()).unwrap_or(0);
    let settings = Settings {
        model: ModelDesc {
            path: job.model.display().to_string(),
            bytes: model_bytes,
            arch: model.hp.arch.clone(),
            n_layer: model.hp.n_layer,
        },
        calibration: CalibrationDesc {
            source: cal.sources.clone(),
            tokens: tokens.len(),
            ctx: job.ctx,
            chunks: job.chunks,
            imatrix_chunks,
            held_out: "Evaluate on other text: the calibration text is not held out.".into(),
            exact_activations: exact,
            predicted_from: job.anchors.iter().map(|t| t.name().to_string()).collect(),
        },
        types: job.types.iter().map(|t| t.name().to_string()).collect(),
        imatrix: imatrix_rel.display().to_string(),
        shard: job.shard,
    };

    let mut done = resume(job, &partial, &settings, chosen.len(), ctx)?;
    let perr = io_err(&partial);
    let mut log = std::fs::File::create(&partial).map_err(&perr)?;
    writeln!(log, "{}", json_line(&settings)?).map_err(&perr)?;
    for t in done.values() {
        writeln!(log, "{}", json_line(t)?).map_err(&perr)?;
    }
    log.flush().map_err(&perr)?;

    ctx.progress.note(
        Level::Info,
        &format!(
            "sensitivity: {} of {} tensors{}, {} sequences × {} tokens, types {}",
            chosen.len(),
            all_targets.len(),
            job.shard.map_or(String::new(), |s| format!(" (shard {}/{})", s.index, s.count)),
            job.chunks,
            job.ctx,
            settings.types.join(",")
        ),
    );
    let t_ref = Instant::now();
    let reference = Reference::compute(models.forward, &tokens, bos, job.ctx, job.chunks)?;
    let reference_secs = t_ref.elapsed().as_secs_f64();

    let todo: Vec<&&Target> = chosen.iter().filter(|t| !done.contains_key(&t.info.name)).collect();
    let n_eval: usize = todo.iter().map(|t| measured_candidates(t, &job.anchors).count()).sum();
    ctx.progress.stage("measuring", n_eval as u64, Unit::Steps);
    let t_meas = Instant::now();
    for t in &todo {
        ctx.progress.item(&t.info.name);
        let m = match measure_target(models, &reference, t, &importance, &job.anchors, ctx) {
            Ok(m) => m,
            Err(e) => {
                ctx.progress.finish();
                if matches!(e, SensitivityError::Interrupted(_)) {
                    ctx.progress.note(
                        Level::Warning,
                        &format!(
                            "sensitivity: interrupted; {} of {} tensors kept in {}: rerun with --resume to continue",
                            done.len(),
                            chosen.len(),
                            partial.display()
                        ),
                    );
                }
                return Err(SensitivityError::Tensor { tensor: t.info.name.clone(), source: Box::new(e) });
            }
        };
        let n_el = t.info.n_elements();
        let st = SensTensor {
            name: t.info.name.clone(),
            layer: t.layer,
            role: t.role.clone(),
            shape: t.info.shape.clone(),
            n_elements: n_el,
            source_type: t.info.ty.name().to_string(),
            source_bytes: t.info.n_bytes(),
            candidates: m
                .into_iter()
                .map(|c| SensCandidate {
                    ty: c.ty.name().to_string(),
                    requested: c.requested.iter().map(|r| r.name().to_string()).collect(),
                    bytes: c.bytes,
                    bpw: c.bytes as f64 * 8.0 / n_el as f64,
                    kld: c.kld,
                    kld_err: c.kld_err,
                    proxy: c.proxy,
                    predicted: c.predicted,
                })
                .collect(),
        };
        writeln!(log, "{}", json_line(&st)?).map_err(&perr)?;
        log.flush().map_err(&perr)?;
        done.insert(st.name.clone(), st);
    }
    ctx.progress.finish();
    drop(log);

    let mut table = SensitivityTable {
        format: FORMAT.into(),
        version: VERSION,
        model: Some(settings.model.clone()),
        calibration: Some(settings.calibration.clone()),
        imatrix: Some(imatrix_rel),
        metric: Some("mean KL-divergence of the final logits against the source model".into()),
        shard: job.shard,
        tensors: chosen.iter().filter_map(|t| done.remove(&t.info.name)).collect(),
        fixed: fixed
            .iter()
            .map(|t| FixedTensor { name: t.name.clone(), ty: t.ty.name().to_string(), bytes: t.n_bytes() })
            .collect(),
        rank_correlation: None,
    };
    table.update_rank_correlation();
    let written = write_outputs(&table, &job.output, job.shard.is_none())?;
    let _ = std::fs::remove_file(&partial);
    Ok(Outcome {
        table,
        written,
        reference_secs,
        measure_secs: t_meas.elapsed().as_secs_f64(),
        total_secs: t0.elapsed().as_secs_f64(),
        measured: n_eval,
    })
}

/// The tensors already measured in `partial`, when resuming with the same
/// settings.
fn resume(
    job: &SensitivityJob,
    partial: &Path,
    settings: &Settings,
    n_chosen: usize,
    ctx: Ctx<'_>,
) -> Result<BTreeMap<String, SensTensor>, SensitivityError> {
    let mut done = BTreeMap::new();
    if !partial.exists() {
        return Ok(done);
    }
    if !job.resume {
        ctx.progress.note(
            Level::Info,
            &format!("sensitivity: starting over (pass --resume to continue {})", partial.display()),
        );
        return Ok(done);
    }
    let bad = |msg: String| SensitivityError::Invalid(format!("{}: {msg}", partial.display()));
    let f = std::fs::File::open(partial).map_err(io_err(partial))?;
    let mut lines = std::io::BufReader::new(f).lines();
    let head: Settings = match lines.next() {
        Some(l) => serde_json::from_str(&l.map_err(io_err(partial))?).map_err(|e| bad(format!("line 1: {e}")))?,
        None => return Err(bad("empty".into())),
    };
    if &head != settings {
        return Err(bad("was started with other settings (model, calibration, types, imatrix or shard); \
             rerun without --resume to start over"
            .into()));
    }
    for (i, l) in lines.enumerate() {
        let l = l.map_err(io_err(partial))?;
        // A line cut off by the interruption is measured again.
        match serde_json::from_str::<SensTensor>(&l) {
            Ok(t) => {
                done.insert(t.name.clone(), t);
            }
            Err(_) => ctx.progress.note(
                Level::Info,
                &format!("sensitivity: {}: line {} incomplete, measuring that tensor again", partial.display(), i + 2),
            ),
        }
    }
    ctx.progress
        .note(Level::Info, &format!("sensitivity: resuming, {} of {n_chosen} tensors already measured", done.len()));
    Ok(done)
}

/// Write the JSON and, for a whole model, the markdown table and the
/// heatmap. Returns the paths written.
pub fn write_outputs(table: &SensitivityTable, out: &Path, reports: bool) -> Result<Vec<PathBuf>, SensitivityError> {
    let json = serde_json::to_string_pretty(table).map_err(|e| SensitivityError::Invalid(e.to_string()))?;
    crate::fsutil::write_atomic(out, json.as_bytes())?;
    let mut wrote = vec![out.to_path_buf()];
    if reports {
        let md = out.with_extension("md");
        crate::fsutil::write_atomic(&md, markdown(table).as_bytes())?;
        wrote.push(md);
        let name = table.model.as_ref().map_or("model".to_string(), |m| {
            Path::new(&m.path).file_name().map_or(m.path.clone(), |f| f.to_string_lossy().into_owned())
        });
        let fig = heatmap(table, &format!("Sensitivity of {name}: ΔKLD per Mbit saved going down to the Q4_K type"));
        let (svg, png) = crate::report::plot::write_figure(&fig, &out.with_extension("svg"))?;
        wrote.push(svg);
        wrote.push(png);
    }
    Ok(wrote)
}

/// Join shard files into one table and write it (with its reports).
pub fn merge(paths: &[PathBuf], out: &Path) -> Result<(SensitivityTable, Vec<PathBuf>), SensitivityError> {
    crate::fsutil::check_outputs(&report_paths(out), paths)?;
    let mut shards = Vec::new();
    for p in paths {
        shards.push((p.display().to_string(), SensitivityTable::load(p)?));
    }
    let table = super::report::merge(shards).map_err(|e| SensitivityError::Invalid(format!("--merge: {e}")))?;
    let written = write_outputs(&table, out, true)?;
    Ok((table, written))
}

/// `--shard auto`: this task's shard from the scheduler's environment.
/// Slurm job arrays set `SLURM_ARRAY_TASK_ID`, `_COUNT`, `_MIN` and `_STEP`
/// (any range and step: the k-th task of the array measures shard k);
/// Kubernetes Indexed Jobs set `JOB_COMPLETION_INDEX` (from 0), with the
/// number of completions in `QUANTMIX_SHARD_COUNT` (the manifest sets it).
/// `var` reads an environment variable.
pub fn shard_from_env(var: impl Fn(&str) -> Option<String>) -> Result<ShardDesc, String> {
    let num = |name: &str| -> Result<Option<usize>, String> {
        match var(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| format!("{name}=`{v}` is not a number")),
        }
    };
    let desc = |index: usize, count: usize, how: &str| {
        if count == 0 || index == 0 || index > count {
            Err(format!("{how} gives shard {index} of {count}"))
        } else {
            Ok(ShardDesc { index, count })
        }
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let count =
            num("SLURM_ARRAY_TASK_COUNT")?.ok_or("SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT")?;
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(1);
        let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        if id < min || (id - min) % step != 0 {
            return Err(format!("SLURM_ARRAY_TASK_ID={id} is not in the array {min}..(step {step})"));
        }
        return desc((id - min) / step + 1, count, "the Slurm job array");
    }
    if let Some(i) = num("JOB_COMPLETION_INDEX")? {
        let count = num("QUANTMIX_SHARD_COUNT")?
            .ok_or("JOB_COMPLETION_INDEX is set: give the number of completions in QUANTMIX_SHARD_COUNT")?;
        return desc(i + 1, count, "the Kubernetes Indexed Job");
    }
    Err("--shard auto needs a Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) or a Kubernetes \
         Indexed Job (JOB_COMPLETION_INDEX, QUANTMIX_SHARD_COUNT)"
        .into())
}

/// The peak resident memory of this process in bytes (Linux; `None` elsewhere).
pub fn peak_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn shards_from_slurm_arrays_and_indexed_jobs() {
        let s = |v: &[(&str, &str)]| shard_from_env(env(v));
        assert_eq!(
            s(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")]),
            Ok(ShardDesc { index: 2, count: 4 })
        );
        // --array=0-3
        let a = [("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "0")];
        assert_eq!(s(&a), Ok(ShardDesc { index: 1, count: 4 }));
        // --array=1-7:2 → ids 1,3,5,7
        let a = [
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ];
        assert_eq!(s(&a), Ok(ShardDesc { index: 3, count: 4 }));
        assert_eq!(
            s(&[("JOB_COMPLETION_INDEX", "0"), ("QUANTMIX_SHARD_COUNT", "3")]),
            Ok(ShardDesc { index: 1, count: 3 })
        );
        assert!(s(&[("JOB_COMPLETION_INDEX", "3"), ("QUANTMIX_SHARD_COUNT", "3")]).is_err());
        assert!(s(&[("JOB_COMPLETION_INDEX", "0")]).unwrap_err().contains("QUANTMIX_SHARD_COUNT"));
        assert!(s(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "2")]).is_err());
        assert!(s(&[]).unwrap_err().contains("Slurm"));
    }
}
