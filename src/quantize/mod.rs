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

pub mod job;
pub mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::fsutil::AtomicFile;
use crate::gguf::writer::GgufWriter;
use crate::gguf::{GgmlType, TensorInfo};
use crate::job::{Ctx, Interrupted, Unit};
use crate::plan::{output, ImportanceMatrix, Plan, PlanError, TensorPlan};
use crate::quant;
pub use source::Source;

/// Values per processing chunk (rows are grouped so that a chunk of f32 stays
/// near this size: 64 Ki values = 256 KiB of f32, so that the passes over a
/// chunk — decode, check, quantize, decode back, error sums — run in the
/// cache; with 16 Mi values each pass went to memory and whole-model Q8_0
/// quantization took 1.5× as long).
const CHUNK_VALUES: usize = 1 << 16;

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("{path}: tensor `{tensor}`: {source}")]
    Quant { path: PathBuf, tensor: String, source: quant::QuantError },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the plan does not match the source: {0}")]
    PlanMismatch(String),
    #[error("interrupted")]
    Interrupted(#[from] Interrupted),
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    ThreadPool(#[from] crate::job::ThreadPoolError),
    /// A weight is NaN or infinite in the source, or becomes so in the
    /// output type (out of its range): llama.cpp refuses both.
    #[error("{path}: tensor `{tensor}`: row {row}, column {col}: {what}", path = path.display())]
    NonFinite { path: PathBuf, tensor: String, row: u64, col: usize, what: String },
}

/// The first non-finite value of `x` (rows of `n`): `(row, column, value)`.
fn first_non_finite(x: &[f32], n: usize) -> Option<(usize, usize, f32)> {
    let row = x.par_chunks(n.max(1)).position_first(|r| r.iter().any(|v| !v.is_finite()))?;
    let r = &x[row * n..(row + 1) * n];
    let col = r.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Some((row, col, r[col]))
}

/// Check that every value of a tensor copied unchanged is finite (read
/// chunk by chunk; a type that cannot be read is not checked).
fn check_copied(path: &Path, t: &TensorInfo, data: &[u8], ctx: Ctx<'_>) -> Result<(), QuantizeError> {
    if !quant::caps(t.ty).dequantize {
        return Ok(());
    }
    let n = t.row_len() as usize;
    let rows = t.n_rows() as usize;
    let in_row = t.ty.row_bytes(n as u64).unwrap_or(0) as usize;
    let chunk_rows = (CHUNK_VALUES / n.max(1)).clamp(1, rows.max(1));
    let mut buf = vec![0f32; chunk_rows * n];
    let mut row = 0;
    while row < rows {
        ctx.cancel.check()?;
        let end = (row + chunk_rows).min(rows);
        let x = &mut buf[..(end - row) * n];
        quant::dequantize_rows(t.ty, &data[row * in_row..end * in_row], n, x).map_err(|e| QuantizeError::Quant {
            path: path.to_path_buf(),
            tensor: t.name.clone(),
            source: e,
        })?;
        if let Some((r, col, v)) = first_non_finite(x, n) {
            return Err(non_finite(path, t, row + r, col, format!("the source value is {v}")));
        }
        row = end;
    }
    Ok(())
}

fn non_finite(path: &Path, t: &TensorInfo, row: usize, col: usize, what: String) -> QuantizeError {
    QuantizeError::NonFinite {
        path: path.to_path_buf(),
        tensor: t.name.clone(),
        row: row as u64,
        col,
        what: format!("{what} (weights must be finite numbers)"),
    }
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

/// Check that `plan` is a plan for `src`: the same tensors, in order, with
/// the same shapes and source types.
fn check_plan(src: &dyn Source, plan: &Plan) -> Result<(), QuantizeError> {
    let (st, pt) = (src.tensors(), &plan.tensors);
    if st.len() != pt.len() {
        return Err(QuantizeError::PlanMismatch(format!(
            "{} tensors in the source, {} in the plan",
            st.len(),
            pt.len()
        )));
    }
    for (t, p) in st.iter().zip(pt) {
        if t.name != p.name || t.shape != p.shape || t.ty != p.source_type {
            return Err(QuantizeError::PlanMismatch(format!("source tensor `{}` vs planned `{}`", t.name, p.name)));
        }
    }
    Ok(())
}

/// The quant map of a plan: sizes and reasons per tensor (the errors are
/// filled in by [`run`]).
pub fn quant_map(src: &dyn Source, out: &Path, plan: &Plan) -> QuantMap {
    let file_bytes = output::layout(src.metadata(), plan).file_bytes();
    let reports: Vec<TensorReport> = plan.tensors.iter().map(report_of).collect();
    let mut per_type: BTreeMap<String, TypeTotal> = BTreeMap::new();
    let (mut bytes, mut elements) = (0u64, 0u64);
    for (r, t) in reports.iter().zip(src.tensors()) {
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
        recipe: plan.origin.clone(),
        imatrix: plan.imatrix.as_ref().and_then(|m| m.file.clone()),
        file_type: plan.file_type,
        file_bytes,
        tensor_bytes: bytes,
        elements,
        bpw: bytes as f64 * 8.0 / elements.max(1) as f64,
        per_type,
        tensors: reports,
        seconds: None,
    }
}

fn report_of(t: &TensorPlan) -> TensorReport {
    let bytes = t.bytes();
    let n: u64 = t.shape.iter().product();
    TensorReport {
        name: t.name.clone(),
        shape: t.shape.clone(),
        source_type: t.source_type,
        ty: t.ty,
        reason: t.reason.to_string(),
        bytes,
        bpw: bytes as f64 * 8.0 / n.max(1) as f64,
        rel_error: None,
        imatrix: t.imatrix,
    }
}

/// The sidecar path of an output file: `X.gguf` → `X.quantmap.json`.
pub fn sidecar_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!("{stem}.quantmap.json"))
}

/// Run the plan: write `out` and its `.quantmap.json` sidecar, committed
/// together (both or neither). `imatrix` holds the vectors the plan's
/// tensors with `imatrix: true` are weighted by.
pub fn run(
    src: &dyn Source,
    plan: &Plan,
    imatrix: Option<&ImportanceMatrix>,
    out: &Path,
    ctx: Ctx<'_>,
) -> Result<QuantMap, QuantizeError> {
    ctx.install(|| run_here(src, plan, imatrix, out, ctx))?
}

/// [`run`] on the current thread pool.
fn run_here(
    src: &dyn Source,
    plan: &Plan,
    imatrix: Option<&ImportanceMatrix>,
    out: &Path,
    ctx: Ctx<'_>,
) -> Result<QuantMap, QuantizeError> {
    let start = Instant::now();
    check_plan(src, plan)?;
    let mut map = quant_map(src, out, plan);
    let layout = output::layout(src.metadata(), plan);
    // The sidecar's temporary file first: a place it cannot be written fails
    // now, not after the work.
    let side = sidecar_path(out);
    let io = |e: std::io::Error| QuantizeError::Io { path: side.clone(), source: e };
    if side.is_dir() {
        return Err(io(std::io::Error::other("a directory is in the way")));
    }
    let mut side_file = AtomicFile::create(&side).map_err(io)?;
    let mut writer = GgufWriter::create(out, &layout.metadata, &layout.specs, layout.alignment)?;
    writer.set_cancel(ctx.cancel.clone());

    let total_in: u64 = src.tensors().iter().map(|t| t.n_bytes()).sum();
    ctx.progress.stage("quantizing", total_in, Unit::Bytes);
    for (i, (t, p)) in src.tensors().iter().zip(&plan.tensors).enumerate() {
        ctx.cancel.check()?;
        ctx.progress.item(&format!("{} → {}", t.name, p.ty));
        let data = src.tensor_data(t)?;
        let rel = if !p.converts() {
            check_copied(src.path(), t, &data, ctx)?;
            for chunk in data.chunks(CHUNK_VALUES.max(1)) {
                writer.write_tensor_chunk(chunk)?;
            }
            ctx.progress.advance(t.n_bytes());
            0.0
        } else {
            let w = match (imatrix, p.imatrix) {
                (Some(m), true) => m.vector_for(t)?,
                _ => None,
            };
            convert_tensor(src.path(), t, &data, p.ty, w, &mut writer, ctx)?
        };
        writer.end_tensor()?;
        map.tensors[i].rel_error = Some(rel);
    }
    ctx.progress.finish();
    let (file, file_bytes) = writer.into_file()?;
    debug_assert_eq!(file_bytes, map.file_bytes);
    map.file_bytes = file_bytes;
    map.seconds = Some(start.elapsed().as_secs_f64());
    serde_json::to_writer_pretty(&mut side_file, &map).map_err(|e| io(e.into()))?;
    crate::fsutil::commit_all(vec![file, side_file])
        .map_err(|e| QuantizeError::Io { path: out.to_path_buf(), source: e })?;
    Ok(map)
}

/// Convert one tensor chunk by chunk; returns its relative RMS error.
fn convert_tensor(
    path: &Path,
    t: &TensorInfo,
    data: &[u8],
    ty: GgmlType,
    imatrix: Option<&[f32]>,
    writer: &mut GgufWriter,
    ctx: Ctx<'_>,
) -> Result<f64, QuantizeError> {
    let n = t.row_len() as usize;
    let rows = t.n_rows() as usize;
    // A 3-D (or 4-D) tensor is a stack of 2-D matrices (experts), each with
    // its own importance vector when the imatrix has one per expert.
    let rows_per_expert = if t.shape.len() >= 3 { t.shape[1] as usize } else { rows };
    let in_row = t.ty.row_bytes(n as u64).unwrap_or(0) as usize;
    let out_row = ty.row_bytes(n as u64).unwrap_or(0) as usize;
    let qerr = |e| QuantizeError::Quant { path: path.to_path_buf(), tensor: t.name.clone(), source: e };
    // Chunks never straddle an expert slice, so each gets one importance vector.
    // Whole multiples of the thread count, so that every thread gets rows.
    let threads = rayon::current_num_threads().max(1);
    let chunk_rows = (CHUNK_VALUES / n.max(1)).max(1).div_ceil(threads) * threads;
    let chunk_rows = chunk_rows.clamp(1, rows_per_expert.max(1));
    let mut f32buf = vec![0f32; chunk_rows * n];
    let mut qbuf = vec![0u8; chunk_rows * out_row];
    let mut back = vec![0f32; chunk_rows * n];
    let (mut err2, mut ref2) = (0f64, 0f64);
    let mut row = 0;
    while row < rows {
        ctx.cancel.check()?;
        let expert = row / rows_per_expert;
        let end = (row + chunk_rows).min(rows).min((expert + 1) * rows_per_expert);
        let k = end - row;
        let src = &data[row * in_row..end * in_row];
        let x = &mut f32buf[..k * n];
        quant::dequantize_rows(t.ty, src, n, x).map_err(qerr)?;
        if let Some((r, col, v)) = first_non_finite(x, n) {
            return Err(non_finite(path, t, row + r, col, format!("the source value is {v}")));
        }
        let w = match imatrix {
            Some(v) if v.len() == n => Some(v),
            Some(v) => Some(v.get(expert * n..(expert + 1) * n).ok_or_else(|| {
                QuantizeError::PlanMismatch(format!(
                    "tensor `{}`: importance vector of {} values has no slice for expert {expert}",
                    t.name,
                    v.len()
                ))
            })?),
            None => None,
        };
        let q = &mut qbuf[..k * out_row];
        quant::quantize_rows(ty, x, n, w, q).map_err(qerr)?;
        let xb = &mut back[..k * n];
        quant::dequantize_rows(ty, q, n, xb).map_err(qerr)?;
        if let Some((r, col, v)) = first_non_finite(xb, n) {
            let what = format!("the source value {} becomes {v} as {ty} (out of its range)", x[r * n + col]);
            return Err(non_finite(path, t, row + r, col, what));
        }
        // Per-row sums in parallel, added in row order: the same result
        // whatever the thread count and scheduling.
        let rows_err: Vec<(f64, f64)> = x.par_chunks(n).zip(xb.par_chunks(n)).map(|(a, b)| row_error(a, b)).collect();
        for (e, r) in rows_err {
            err2 += e;
            ref2 += r;
        }
        writer.write_tensor_chunk(q)?;
        row = end;
        ctx.progress.advance((k * in_row) as u64);
    }
    Ok(if ref2 > 0.0 {
        (err2 / ref2).sqrt()
    } else if err2 > 0.0 {
        f64::INFINITY
    } else {
        0.0
    })
}

/// Squared error and squared norm of one row in f64, over 8 interleaved
/// partial sums (fixed order: the same result whatever the threads; the
/// compiler keeps them in vector registers).
fn row_error(a: &[f32], b: &[f32]) -> (f64, f64) {
    const L: usize = 8;
    let (mut e, mut r) = ([0f64; L], [0f64; L]);
    let (ac, bc) = (a.chunks_exact(L), b.chunks_exact(L));
    let (at, bt) = (ac.remainder(), bc.remainder());
    for (a, b) in ac.zip(bc) {
        for k in 0..L {
            let d = a[k] as f64 - b[k] as f64;
            e[k] += d * d;
            r[k] += a[k] as f64 * a[k] as f64;
        }
    }
    for (k, (&a, &b)) in at.iter().zip(bt).enumerate() {
        let d = a as f64 - b as f64;
        e[k] += d * d;
        r[k] += a as f64 * a as f64;
    }
    (e.iter().sum(), r.iter().sum())
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
