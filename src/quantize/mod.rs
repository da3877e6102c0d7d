//! The quantization pipeline: a source model, a resolved per-tensor plan and
//! an optional importance matrix become a GGUF, written as a stream.
//!
//! For each tensor in source order the pipeline either copies the bytes
//! unchanged (same type as the source) or converts a chunk of rows at a time:
//! dequantize the source rows to f32, quantize them to the target type
//! (in parallel over rows, deterministic whatever the thread count), measure
//! the round-trip error of those rows, and stream the bytes to the writer.
//! Peak memory is bounded by the chunk size and does not depend on the model
//! size. The output is written to a temporary file and renamed at the end.

pub mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::gguf::writer::{gguf_file_size, GgufWriter, TensorSpec};
use crate::gguf::{GgmlType, MetaType, MetaValue, Metadata, TensorInfo, DEFAULT_ALIGNMENT};
use crate::quant;
pub use source::Source;

/// `general.quantization_version` that ggml's quantized formats carry today.
pub const QUANTIZATION_VERSION: u32 = 2;

/// Values per processing chunk (rows are grouped so that a chunk of f32 stays
/// near this size: 16 Mi values = 64 MiB of f32).
const CHUNK_VALUES: usize = 16 << 20;

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("{path}: tensor `{tensor}`: {source}")]
    Quant { path: PathBuf, tensor: String, source: quant::QuantError },
    #[error("{path}: tensor `{tensor}` has type {ty}, which quantmix cannot dequantize; keep it (`keep`) or convert it first")]
    CannotDequantize { path: PathBuf, tensor: String, ty: GgmlType },
    #[error("tensor `{tensor}`: quantmix cannot quantize to {ty}")]
    CannotQuantize { tensor: String, ty: GgmlType },
    #[error("tensor `{tensor}`: row length {row_len} is not a multiple of {ty}'s block size {block}")]
    BadShape { tensor: String, ty: GgmlType, row_len: u64, block: usize },
    #[error("importance matrix for `{tensor}` has {got} values, expected {expected}")]
    BadImatrix { tensor: String, got: usize, expected: usize },
    #[error("the plan does not cover tensor `{0}`")]
    MissingFromPlan(String),
    #[error("interrupted")]
    Interrupted,
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("thread pool: {0}")]
    ThreadPool(String),
}

/// The chosen type of one tensor and why.
#[derive(Clone, Debug)]
pub struct TensorTarget {
    pub ty: GgmlType,
    /// Human-readable reason (the recipe rule, a fallback, a budget choice…).
    pub reason: String,
}

/// What the caller decided, tensor by tensor.
#[derive(Clone, Debug, Default)]
pub struct QuantizePlan {
    /// Target per tensor name; every source tensor must be present.
    pub targets: BTreeMap<String, TensorTarget>,
    /// `general.file_type` (llama.cpp's `llama_ftype`) of the output.
    pub file_type: u32,
    /// The recipe text, stored under `quantmix.recipe`.
    pub recipe_text: String,
    /// Where the recipe came from (file name or preset), for reports.
    pub recipe_origin: String,
}

impl QuantizePlan {
    /// The targets a resolved recipe plan gives.
    pub fn from_recipe_plan(recipe: &crate::recipe::Recipe, plan: &crate::recipe::Plan) -> QuantizePlan {
        QuantizePlan {
            targets: plan
                .tensors
                .iter()
                .map(|c| (c.name.clone(), TensorTarget { ty: c.ty, reason: c.reason.to_string() }))
                .collect(),
            file_type: plan.file_type,
            recipe_text: recipe.text.clone(),
            recipe_origin: recipe.origin.clone(),
        }
    }
}

/// Importance vectors per tensor name (one value per column; for 3-D
/// tensors, `row_len × n_expert` values, one vector per expert slice).
#[derive(Clone, Debug, Default)]
pub struct ImportanceMatrix {
    pub file: Option<String>,
    pub dataset: Option<String>,
    pub chunks: Option<u64>,
    pub vectors: BTreeMap<String, Vec<f32>>,
}

/// Knobs of a run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Threads for the row-parallel kernels (0 = all cores).
    pub threads: usize,
    /// No progress bars.
    pub quiet: bool,
    /// Cancellation flag polled between chunks (Ctrl-C).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// The outcome for one tensor, as the quant map reports it.
#[derive(Clone, Debug, Serialize)]
pub struct TensorReport {
    pub name: String,
    /// ggml order: `shape[0]` is the row length.
    pub shape: Vec<u64>,
    pub source_type: GgmlType,
    #[serde(rename = "type")]
    pub ty: GgmlType,
    pub reason: String,
    pub bytes: u64,
    pub bpw: f64,
    /// Relative RMS error of the output against the source values
    /// (`||x - x̂|| / ||x||`); 0 when copied unchanged; null for a
    /// source type that cannot be dequantized and was kept.
    pub rel_error: Option<f64>,
    /// Whether an importance vector weighted this tensor's quantization.
    pub imatrix: bool,
}

/// Per output type totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TypeTotal {
    pub tensors: usize,
    pub elements: u64,
    pub bytes: u64,
}

/// Everything a run produced (also the body of the `.quantmap.json` sidecar).
#[derive(Clone, Debug, Serialize)]
pub struct QuantMap {
    pub schema: &'static str,
    pub quantmix_version: &'static str,
    pub source: String,
    pub output: String,
    pub recipe: String,
    pub imatrix: Option<String>,
    pub file_type: u32,
    pub file_bytes: u64,
    pub tensor_bytes: u64,
    pub elements: u64,
    /// Bits per weight over all tensors (tensor data only).
    pub bpw: f64,
    pub per_type: BTreeMap<String, TypeTotal>,
    pub tensors: Vec<TensorReport>,
    /// Seconds spent (null for a dry run).
    pub seconds: Option<f64>,
}

/// The schema identifier of the sidecar; see `docs` in the README.
pub const QUANTMAP_SCHEMA: &str = "quantmix.quantmap/1";

/// The output's tensor specs and metadata, computed before anything is written.
pub struct Prepared {
    pub metadata: Metadata,
    pub specs: Vec<TensorSpec>,
    pub reports: Vec<TensorReport>,
    pub alignment: u64,
    pub file_bytes: u64,
    /// Tensors whose source is already quantized and will be requantized.
    pub requantized: Vec<String>,
}

fn targets_of<'a>(plan: &'a QuantizePlan, t: &TensorInfo) -> Result<&'a TensorTarget, QuantizeError> {
    plan.targets.get(&t.name).ok_or_else(|| QuantizeError::MissingFromPlan(t.name.clone()))
}

/// Validate the plan against the source and compute the output layout and
/// metadata. Nothing is written.
pub fn prepare(
    src: &dyn Source,
    plan: &QuantizePlan,
    imatrix: Option<&ImportanceMatrix>,
) -> Result<Prepared, QuantizeError> {
    let mut specs = Vec::new();
    let mut reports = Vec::new();
    let mut requantized = Vec::new();
    for t in src.tensors() {
        let target = targets_of(plan, t)?;
        let ty = target.ty;
        if ty != t.ty {
            if !quant::caps(t.ty).dequantize {
                return Err(QuantizeError::CannotDequantize {
                    path: src.path().to_path_buf(),
                    tensor: t.name.clone(),
                    ty: t.ty,
                });
            }
            if !quant::caps(ty).writable {
                return Err(QuantizeError::CannotQuantize { tensor: t.name.clone(), ty });
            }
            if t.ty.is_quantized() {
                requantized.push(t.name.clone());
            }
        }
        let row_bytes = ty.row_bytes(t.row_len()).ok_or(QuantizeError::BadShape {
            tensor: t.name.clone(),
            ty,
            row_len: t.row_len(),
            block: ty.block_size(),
        })?;
        let bytes = row_bytes * t.n_rows();
        let uses_imatrix = ty != t.ty && imatrix_for(imatrix, t)?.is_some() && imatrix_matters(ty);
        specs.push(TensorSpec { name: t.name.clone(), shape: t.shape.clone(), ty });
        reports.push(TensorReport {
            name: t.name.clone(),
            shape: t.shape.clone(),
            source_type: t.ty,
            ty,
            reason: target.reason.clone(),
            bytes,
            bpw: bytes as f64 * 8.0 / t.n_elements().max(1) as f64,
            rel_error: None,
            imatrix: uses_imatrix,
        });
    }
    let metadata = output_metadata(src.metadata(), plan, imatrix, &reports);
    let alignment = metadata.get_u64("general.alignment").filter(|a| *a > 0).unwrap_or(DEFAULT_ALIGNMENT);
    let file_bytes = gguf_file_size(&metadata, &specs, alignment);
    Ok(Prepared { metadata, specs, reports, alignment, file_bytes, requantized })
}

/// Types whose quantizer reads importance weights (ggml ignores them for
/// the float types and Q8_0).
fn imatrix_matters(ty: GgmlType) -> bool {
    ty.is_quantized() && ty != GgmlType::Q8_0
}

fn imatrix_for<'a>(imatrix: Option<&'a ImportanceMatrix>, t: &TensorInfo) -> Result<Option<&'a [f32]>, QuantizeError> {
    let Some(m) = imatrix else { return Ok(None) };
    let Some(v) = m.vectors.get(&t.name) else { return Ok(None) };
    let n = t.row_len() as usize;
    let n_expert = if t.shape.len() >= 3 { t.shape[2] as usize } else { 1 };
    if v.len() != n && v.len() != n * n_expert {
        return Err(QuantizeError::BadImatrix { tensor: t.name.clone(), got: v.len(), expected: n * n_expert });
    }
    Ok(Some(v.as_slice()))
}

fn str_array(items: impl IntoIterator<Item = String>) -> MetaValue {
    MetaValue::Array(MetaType::String, items.into_iter().map(MetaValue::String).collect())
}

/// The source metadata with what quantization changes updated and the quant
/// map added under `quantmix.*` (and the imatrix provenance under
/// `quantize.imatrix.*`, the keys llama-quantize writes).
fn output_metadata(
    src: &Metadata,
    plan: &QuantizePlan,
    imatrix: Option<&ImportanceMatrix>,
    reports: &[TensorReport],
) -> Metadata {
    let mut md = src.clone();
    md.set("general.quantization_version", MetaValue::U32(QUANTIZATION_VERSION));
    md.set("general.file_type", MetaValue::U32(plan.file_type));
    if let Some(m) = imatrix {
        if let Some(f) = &m.file {
            md.set("quantize.imatrix.file", MetaValue::String(f.clone()));
        }
        if let Some(d) = &m.dataset {
            md.set("quantize.imatrix.dataset", MetaValue::String(d.clone()));
        }
        md.set("quantize.imatrix.entries_count", MetaValue::U32(m.vectors.len() as u32));
        if let Some(c) = m.chunks {
            md.set("quantize.imatrix.chunks_count", MetaValue::U32(c as u32));
        }
    }
    md.set("quantmix.version", MetaValue::String(env!("CARGO_PKG_VERSION").to_string()));
    md.set("quantmix.recipe.origin", MetaValue::String(plan.recipe_origin.clone()));
    md.set("quantmix.recipe", MetaValue::String(plan.recipe_text.clone()));
    md.set("quantmix.tensor.names", str_array(reports.iter().map(|r| r.name.clone())));
    md.set("quantmix.tensor.types", str_array(reports.iter().map(|r| r.ty.name().to_string())));
    md.set("quantmix.tensor.reasons", str_array(reports.iter().map(|r| r.reason.clone())));
    md
}

/// Build the quant map of a prepared (not yet run) plan.
pub fn quant_map(
    src: &dyn Source,
    out: &Path,
    plan: &QuantizePlan,
    imatrix: Option<&ImportanceMatrix>,
    p: &Prepared,
) -> QuantMap {
    let mut per_type: BTreeMap<String, TypeTotal> = BTreeMap::new();
    let (mut bytes, mut elements) = (0u64, 0u64);
    for (r, t) in p.reports.iter().zip(src.tensors()) {
        let e = per_type.entry(r.ty.name().to_string()).or_default();
        e.tensors += 1;
        e.bytes += r.bytes;
        e.elements += t.n_elements();
        bytes += r.bytes;
        elements += t.n_elements();
    }
    QuantMap {
        schema: QUANTMAP_SCHEMA,
        quantmix_version: env!("CARGO_PKG_VERSION"),
        source: src.path().display().to_string(),
        output: out.display().to_string(),
        recipe: plan.recipe_origin.clone(),
        imatrix: imatrix.and_then(|m| m.file.clone()),
        file_type: plan.file_type,
        file_bytes: p.file_bytes,
        tensor_bytes: bytes,
        elements,
        bpw: bytes as f64 * 8.0 / elements.max(1) as f64,
        per_type,
        tensors: p.reports.clone(),
        seconds: None,
    }
}

/// The sidecar path of an output file: `X.gguf` → `X.quantmap.json`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!("{stem}.quantmap.json"))
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

/// Run the plan: write `out` (atomically) and its `.quantmap.json` sidecar.
pub fn run(
    src: &dyn Source,
    plan: &QuantizePlan,
    imatrix: Option<&ImportanceMatrix>,
    out: &Path,
    opts: &Options,
) -> Result<QuantMap, QuantizeError> {
    let start = Instant::now();
    let mut prepared = prepare(src, plan, imatrix)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .map_err(|e| QuantizeError::ThreadPool(e.to_string()))?;

    let mut writer = GgufWriter::create(out, &prepared.metadata, &prepared.specs, prepared.alignment)?;
    if let Some(c) = &opts.cancel {
        writer.set_cancel_flag(c.clone());
    }

    let total_in: u64 = src.tensors().iter().map(|t| t.n_bytes()).sum();
    let multi = MultiProgress::with_draw_target(if opts.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr_with_hz(8)
    });
    let overall = multi.add(ProgressBar::new(total_in));
    overall.set_style(bar_style(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    ));
    let per_tensor = multi.add(ProgressBar::new(0));
    per_tensor.set_style(bar_style("  {msg:40!} [{bar:30}] {pos}/{len} rows"));

    for (i, t) in src.tensors().iter().enumerate() {
        if opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(QuantizeError::Interrupted);
        }
        let ty = prepared.specs[i].ty;
        per_tensor.set_message(format!("{} → {}", t.name, ty));
        per_tensor.set_length(t.n_rows());
        per_tensor.set_position(0);
        let data = src.tensor_data(t)?;
        let rel = if ty == t.ty {
            for chunk in data.chunks(CHUNK_VALUES.max(1)) {
                writer.write_tensor_chunk(chunk)?;
            }
            per_tensor.set_position(t.n_rows());
            Some(0.0)
        } else {
            let w = imatrix_for(imatrix, t)?.filter(|_| imatrix_matters(ty));
            let rel = pool.install(|| {
                convert_tensor(src.path(), t, &data, ty, w, &mut writer, &per_tensor, opts.cancel.as_deref())
            })?;
            Some(rel)
        };
        writer.end_tensor()?;
        prepared.reports[i].rel_error = rel;
        overall.inc(t.n_bytes());
    }
    per_tensor.finish_and_clear();
    overall.finish_and_clear();
    let file_bytes = writer.finish()?;
    debug_assert_eq!(file_bytes, prepared.file_bytes);

    let mut map = quant_map(src, out, plan, imatrix, &prepared);
    map.file_bytes = file_bytes;
    map.seconds = Some(start.elapsed().as_secs_f64());
    write_sidecar(out, &map)?;
    Ok(map)
}

/// Write the `.quantmap.json` sidecar atomically.
pub fn write_sidecar(out: &Path, map: &QuantMap) -> Result<PathBuf, QuantizeError> {
    let path = sidecar_path(out);
    let io = |e: std::io::Error| QuantizeError::Io { path: path.clone(), source: e };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = crate::fsutil::atomic_temp_in(dir, ".quantmix-", ".tmp").map_err(io)?;
    serde_json::to_writer_pretty(&mut tmp, map).map_err(|e| io(e.into()))?;
    tmp.persist(&path).map_err(|e| io(e.error))?;
    Ok(path)
}

/// Convert one tensor chunk by chunk; returns its relative RMS error.
#[allow(clippy::too_many_arguments)]
fn convert_tensor(
    path: &Path,
    t: &TensorInfo,
    data: &[u8],
    ty: GgmlType,
    imatrix: Option<&[f32]>,
    writer: &mut GgufWriter,
    bar: &ProgressBar,
    cancel: Option<&AtomicBool>,
) -> Result<f64, QuantizeError> {
    let n = t.row_len() as usize;
    let rows = t.n_rows() as usize;
    let rows_per_expert = if t.shape.len() >= 3 { t.shape[1] as usize } else { rows };
    let in_row = t.ty.row_bytes(n as u64).unwrap_or(0) as usize;
    let out_row = ty.row_bytes(n as u64).unwrap_or(0) as usize;
    let qerr = |e| QuantizeError::Quant { path: path.to_path_buf(), tensor: t.name.clone(), source: e };
    // Chunks never straddle an expert slice, so each gets one importance vector.
    let chunk_rows = (CHUNK_VALUES / n.max(1)).clamp(1, rows_per_expert.max(1));
    let mut f32buf = vec![0f32; chunk_rows * n];
    let mut qbuf = vec![0u8; chunk_rows * out_row];
    let mut back = vec![0f32; chunk_rows * n];
    let (mut err2, mut ref2) = (0f64, 0f64);
    let mut row = 0;
    while row < rows {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(QuantizeError::Interrupted);
        }
        let expert = row / rows_per_expert;
        let end = (row + chunk_rows).min(rows).min((expert + 1) * rows_per_expert);
        let k = end - row;
        let src = &data[row * in_row..end * in_row];
        let x = &mut f32buf[..k * n];
        quant::dequantize_rows(t.ty, src, n, x).map_err(qerr)?;
        let w = imatrix.map(|v| if v.len() == n { v } else { &v[expert * n..(expert + 1) * n] });
        let q = &mut qbuf[..k * out_row];
        quant::quantize_rows(ty, x, n, w, q).map_err(qerr)?;
        let xb = &mut back[..k * n];
        quant::dequantize_rows(ty, q, n, xb).map_err(qerr)?;
        let (e, r) = x
            .par_chunks(n)
            .zip(xb.par_chunks(n))
            .map(|(a, b)| {
                a.iter().zip(b).fold((0f64, 0f64), |(e, r), (&a, &b)| {
                    let d = a as f64 - b as f64;
                    (e + d * d, r + a as f64 * a as f64)
                })
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        err2 += e;
        ref2 += r;
        writer.write_tensor_chunk(q)?;
        row = end;
        bar.set_position(row as u64);
    }
    Ok(if ref2 > 0.0 {
        (err2 / ref2).sqrt()
    } else if err2 > 0.0 {
        f64::INFINITY
    } else {
        0.0
    })
}

/// A human summary of a finished (or dry) run: per-type counts and bytes,
/// bits per weight, time.
pub fn summary_table(map: &QuantMap) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "{:<8} {:>8} {:>14} {:>14} {:>7}", "type", "tensors", "elements", "bytes", "bpw");
    for (ty, tot) in &map.per_type {
        let _ = writeln!(
            s,
            "{:<8} {:>8} {:>14} {:>14} {:>7.3}",
            ty,
            tot.tensors,
            tot.elements,
            tot.bytes,
            tot.bytes as f64 * 8.0 / tot.elements.max(1) as f64
        );
    }
    let _ = writeln!(
        s,
        "{:<8} {:>8} {:>14} {:>14} {:>7.3}",
        "total",
        map.tensors.len(),
        map.elements,
        map.tensor_bytes,
        map.bpw
    );
    let _ = write!(s, "file: {} bytes ({:.2} MiB)", map.file_bytes, map.file_bytes as f64 / (1u64 << 20) as f64);
    if let Some(sec) = map.seconds {
        let _ = write!(s, " in {sec:.2} s");
    }
    s
}
