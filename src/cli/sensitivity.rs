//! `quantmix sensitivity MODEL -o sensitivity.json [--calibration FILE…]`:
//! measure, for every quantizable tensor and candidate type, the
//! KL-divergence of the final logits when only that tensor is quantized;
//! `--merge` joins the files of `--shard i/n` runs.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::calib;
use super::imatrix::{bar, collect_with_bar, pool};
use crate::gguf::GgmlType;
use crate::model::{LlamaModel, Tokenizer};
use crate::report::human_bytes;
use crate::sensitivity::collect::CollectOptions;
use crate::sensitivity::imatrix::Imatrix;
use crate::sensitivity::measure::{measure_target, targets, Reference, Target, DEFAULT_TYPES};
use crate::sensitivity::report::{heatmap, layer_table, markdown, merge};
use crate::sensitivity::schema::{
    CalibrationDesc, FixedTensor, ModelDesc, SensCandidate, SensTensor, SensitivityTable, ShardDesc, FORMAT, VERSION,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model GGUF (llama / mistral / qwen2); its own weights are the reference.
    #[arg(required_unless_present = "merge")]
    pub model: Option<PathBuf>,
    /// Output: sensitivity.json (with sensitivity.md, sensitivity.svg/.png and, unless --imatrix
    /// is given, sensitivity.imatrix.gguf beside it).
    #[arg(short, long, default_value = "sensitivity.json")]
    pub output: PathBuf,
    /// Calibration text files (plain text, or JSONL with a `text` field); default: the shipped set.
    #[arg(long, num_args = 1..)]
    pub calibration: Vec<PathBuf>,
    /// Tokens per measured sequence (the defaults keep SmolLM2-135M under 10 minutes on 2 cores;
    /// more tokens: more precise, proportionally slower).
    #[arg(long, default_value_t = 64)]
    pub ctx: usize,
    /// Measured sequences, spread evenly over the calibration text (more: more precise, slower).
    #[arg(long, default_value_t = 2)]
    pub chunks: usize,
    /// Candidate types, comma-separated (each tensor also gets llama.cpp's fallback where its
    /// shape needs one, and keeps its source type as a candidate).
    #[arg(long, value_delimiter = ',', default_value = "Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q8_0")]
    pub types: Vec<String>,
    /// Use this importance matrix instead of collecting one.
    #[arg(long)]
    pub imatrix: Option<PathBuf>,
    /// Chunks of 512 tokens the importance matrix is collected on (0: all the text gives).
    #[arg(long, default_value_t = 16)]
    pub imatrix_chunks: usize,
    /// Measure only every n-th tensor starting at the i-th (`--shard 2/4`); join with `--merge`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Continue an interrupted run from OUTPUT.partial.
    #[arg(long)]
    pub resume: bool,
    /// Merge shard files into OUTPUT instead of measuring (one whole file: write its reports again).
    #[arg(long, num_args = 1.., conflicts_with_all = ["model", "shard", "resume", "imatrix", "calibration"])]
    pub merge: Vec<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
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

fn parse_shard(s: &str) -> Result<ShardDesc> {
    let (i, n) = s.split_once('/').ok_or_else(|| anyhow!("--shard `{s}`: expected i/n, e.g. 2/4"))?;
    let (index, count): (usize, usize) = (
        i.trim().parse().map_err(|_| anyhow!("--shard `{s}`: `{i}` is not a number"))?,
        n.trim().parse().map_err(|_| anyhow!("--shard `{s}`: `{n}` is not a number"))?,
    );
    if count == 0 || index == 0 || index > count {
        bail!("--shard `{s}`: needs 1 ≤ i ≤ n");
    }
    Ok(ShardDesc { index, count })
}

fn sibling(out: &Path, ext: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing {}", path.display()))?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn run(a: Args, cancel: Arc<AtomicBool>) -> Result<()> {
    if !a.merge.is_empty() {
        return run_merge(&a);
    }
    let model_path = a.model.clone().ok_or_else(|| anyhow!("give the MODEL to measure"))?;
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let mut types = Vec::new();
    for t in &a.types {
        let ty = GgmlType::from_name(t.trim()).ok_or_else(|| anyhow!("--types: unknown type `{t}`"))?;
        if !crate::quant::caps(ty).writable {
            bail!("--types: quantmix cannot write type {ty}");
        }
        types.push(ty);
    }
    if types.is_empty() {
        types = DEFAULT_TYPES.to_vec();
    }
    let threads = if a.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { a.threads };
    pool(threads)?.install(|| measure(&a, &model_path, shard, &types, &cancel))
}

fn measure(
    a: &Args,
    model_path: &Path,
    shard: Option<ShardDesc>,
    types: &[GgmlType],
    cancel: &AtomicBool,
) -> Result<()> {
    let t0 = Instant::now();
    let cal = calib::load(&a.calibration)?;
    let model = LlamaModel::open(model_path).with_context(|| format!("opening {}", model_path.display()))?;
    let tok = Tokenizer::from_metadata(model.file().metadata(), model_path)?;
    let tokens = tok.encode(&cal.text, true, false)?;
    let bos = if tok.add_bos() { tok.bos() } else { None };
    let cancelled = || cancel.load(Ordering::Relaxed);
    // Fail on impossible settings before any expensive work.
    crate::sensitivity::measure::sequence_starts(tokens.len(), a.ctx, a.chunks)?;

    let (all_targets, fixed) = targets(&model, types);
    let chosen: Vec<&Target> = all_targets
        .iter()
        .enumerate()
        .filter(|(i, _)| shard.map_or(true, |s| i % s.count == s.index - 1))
        .map(|(_, t)| t)
        .collect();

    // The importance matrix: given, or collected on the calibration text.
    let (imatrix, imatrix_path, imatrix_chunks) = match &a.imatrix {
        Some(p) => (Imatrix::load(p).with_context(|| format!("reading {}", p.display()))?, p.clone(), None),
        None => {
            let stem = a.output.with_extension("");
            let p = sibling(&stem, ".imatrix.gguf");
            if a.resume && p.exists() && sibling(&a.output, ".partial").exists() {
                let m = Imatrix::load(&p).with_context(|| format!("reading {}", p.display()))?;
                let n = m.chunk_count as usize;
                eprintln!("sensitivity: resuming with {}", p.display());
                (m, p, Some(n))
            } else {
                let max_chunks = Some(a.imatrix_chunks).filter(|&n| n > 0);
                let opts = CollectOptions { n_ctx: 512, max_chunks, process_output: false };
                let n = (tokens.len() / 512).min(max_chunks.unwrap_or(usize::MAX));
                eprintln!(
                    "sensitivity: collecting the importance matrix ({n} chunks of 512 tokens of {})",
                    cal.describe
                );
                let m = collect_with_bar(&model, &tokens, bos, &opts, &cal, a.quiet, cancel)?;
                m.save_gguf(&p).with_context(|| format!("writing {}", p.display()))?;
                let n = m.chunk_count as usize;
                (m, p, Some(n))
            }
        }
    };
    let importance = imatrix.importance();
    // Relative to the output's directory when it is beside it.
    let imatrix_rel = match (imatrix_path.parent(), a.output.parent()) {
        (Some(ip), Some(op)) if ip == op => PathBuf::from(imatrix_path.file_name().unwrap_or_default()),
        _ => std::path::absolute(&imatrix_path).unwrap_or(imatrix_path.clone()),
    };

    let model_bytes = std::fs::metadata(model_path).map(|m| m.len()).unwrap_or(0);
    let settings = Settings {
        model: ModelDesc {
            path: model_path.display().to_string(),
            bytes: model_bytes,
            arch: model.hp.arch.clone(),
            n_layer: model.hp.n_layer,
        },
        calibration: CalibrationDesc {
            source: cal.sources.clone(),
            tokens: tokens.len(),
            ctx: a.ctx,
            chunks: a.chunks,
            imatrix_chunks,
            held_out: "Evaluate on other text: the calibration text is not held out.".into(),
        },
        types: types.iter().map(|t| t.name().to_string()).collect(),
        imatrix: imatrix_rel.display().to_string(),
        shard,
    };

    // Resume from the partial file.
    let partial = sibling(&a.output, ".partial");
    let mut done: BTreeMap<String, SensTensor> = BTreeMap::new();
    if a.resume && partial.exists() {
        let f = std::fs::File::open(&partial).with_context(|| format!("reading {}", partial.display()))?;
        let mut lines = std::io::BufReader::new(f).lines();
        let head: Settings = match lines.next() {
            Some(l) => serde_json::from_str(&l?).with_context(|| format!("{}: line 1", partial.display()))?,
            None => bail!("{}: empty", partial.display()),
        };
        if head != settings {
            bail!(
                "{}: was started with other settings (model, calibration, types, imatrix or shard); \
                 rerun without --resume to start over",
                partial.display()
            );
        }
        for (i, l) in lines.enumerate() {
            let l = l?;
            // A line cut off by the interruption is measured again.
            if let Ok(t) = serde_json::from_str::<SensTensor>(&l) {
                done.insert(t.name.clone(), t);
            } else {
                eprintln!("sensitivity: {}: line {} incomplete, measuring that tensor again", partial.display(), i + 2);
            }
        }
        eprintln!("sensitivity: resuming, {} of {} tensors already measured", done.len(), chosen.len());
    } else if partial.exists() && !a.resume {
        eprintln!("sensitivity: starting over (pass --resume to continue {})", partial.display());
    }
    let mut log = std::fs::File::create(&partial).with_context(|| format!("writing {}", partial.display()))?;
    writeln!(log, "{}", serde_json::to_string(&settings)?)?;
    for t in done.values() {
        writeln!(log, "{}", serde_json::to_string(t)?)?;
    }
    log.flush()?;

    eprintln!(
        "sensitivity: {} of {} tensors{}, {} sequences × {} tokens, types {}",
        chosen.len(),
        all_targets.len(),
        shard.map_or(String::new(), |s| format!(" (shard {}/{})", s.index, s.count)),
        a.chunks,
        a.ctx,
        settings.types.join(",")
    );
    let t_ref = Instant::now();
    let reference = Reference::compute(&model, &tokens, bos, a.ctx, a.chunks)?;
    let ref_secs = t_ref.elapsed().as_secs_f64();

    let todo: Vec<&&Target> = chosen.iter().filter(|t| !done.contains_key(&t.info.name)).collect();
    let n_eval: usize = todo.iter().map(|t| t.candidates.iter().filter(|c| !c.is_source).count()).sum();
    let b = bar(n_eval as u64, a.quiet, "measuring");
    let t_meas = Instant::now();
    // Without a terminal (batch jobs, logs), a line now and then instead of the bar.
    let log_lines = !a.quiet && !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_line = Instant::now();
    let mut evals_done = 0usize;
    for (k, t) in todo.iter().enumerate() {
        b.set_message(t.info.name.clone());
        let m = measure_target(&model, &reference, t, &importance, || b.inc(1), cancelled);
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                b.abandon();
                if matches!(e, crate::sensitivity::SensitivityError::Interrupted) {
                    eprintln!(
                        "sensitivity: interrupted; {} of {} tensors kept in {}: rerun with --resume to continue",
                        done.len(),
                        chosen.len(),
                        partial.display()
                    );
                }
                return Err(e).with_context(|| format!("measuring `{}`", t.info.name));
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
                })
                .collect(),
        };
        writeln!(log, "{}", serde_json::to_string(&st)?)?;
        log.flush()?;
        evals_done += t.candidates.iter().filter(|c| !c.is_source).count();
        if log_lines && (last_line.elapsed().as_secs() >= 30 || k + 1 == todo.len()) {
            last_line = Instant::now();
            let el = t_meas.elapsed().as_secs_f64();
            let eta = if evals_done > 0 { el / evals_done as f64 * (n_eval - evals_done) as f64 } else { 0.0 };
            eprintln!(
                "sensitivity: {}/{} tensors, {evals_done}/{n_eval} candidates, {el:.0} s, ETA {eta:.0} s",
                k + 1,
                todo.len()
            );
        }
        done.insert(st.name.clone(), st);
    }
    b.finish_and_clear();
    drop(log);

    let mut table = SensitivityTable {
        format: FORMAT.into(),
        version: VERSION,
        model: Some(settings.model.clone()),
        calibration: Some(settings.calibration.clone()),
        imatrix: Some(imatrix_rel),
        metric: Some("mean KL-divergence of the final logits against the source model".into()),
        shard,
        tensors: chosen.iter().filter_map(|t| done.remove(&t.info.name)).collect(),
        fixed: fixed
            .iter()
            .map(|t| FixedTensor { name: t.name.clone(), ty: t.ty.name().to_string(), bytes: t.n_bytes() })
            .collect(),
        rank_correlation: None,
    };
    table.update_rank_correlation();
    write_outputs(&table, &a.output, shard.is_none())?;
    let _ = std::fs::remove_file(&partial);
    eprintln!(
        "sensitivity: reference pass {:.1} s, {n_eval} candidates measured in {:.1} s, total {:.1} s",
        ref_secs,
        t_meas.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Write the JSON (and, for a whole model, the markdown table and the
/// heatmap), and print the per-layer table.
fn write_outputs(table: &SensitivityTable, out: &Path, reports: bool) -> Result<()> {
    let json = serde_json::to_string_pretty(table)?;
    write_atomic(out, json.as_bytes())?;
    println!("{}", layer_table(table).render());
    println!("ΔKLD when only that tensor is quantized to the type Q4_K ends at (* = llama.cpp's shape fallback).");
    if let Some(rc) = &table.rank_correlation {
        println!(
            "Proxy (imatrix-weighted squared error) vs measured ΔKLD: Spearman {:.3} over {} pairs.",
            rc.spearman, rc.pairs
        );
    }
    let mut wrote = vec![out.display().to_string()];
    if reports {
        let md = out.with_extension("md");
        write_atomic(&md, markdown(table).as_bytes())?;
        wrote.push(md.display().to_string());
        let name = table.model.as_ref().map_or("model".to_string(), |m| {
            Path::new(&m.path).file_name().map_or(m.path.clone(), |f| f.to_string_lossy().into_owned())
        });
        let fig = heatmap(table, &format!("Sensitivity of {name}: ΔKLD per Mbit saved going down to the Q4_K type"));
        let (svg, png) = crate::report::plot::write_figure(&fig, &out.with_extension("svg"))?;
        wrote.push(svg.display().to_string());
        wrote.push(png.display().to_string());
    }
    let bytes: u64 = table.tensors.iter().map(|t| t.source_bytes).sum();
    eprintln!("sensitivity: {} tensors ({}) → {}", table.tensors.len(), human_bytes(bytes), wrote.join(", "));
    Ok(())
}

fn run_merge(a: &Args) -> Result<()> {
    let mut shards = Vec::new();
    for p in &a.merge {
        shards.push((p.display().to_string(), SensitivityTable::load(p)?));
    }
    let table = merge(shards).map_err(|e| anyhow!("--merge: {e}"))?;
    write_outputs(&table, &a.output, true)
}
