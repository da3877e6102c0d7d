//! `quantmix inspect FILE [--json]`: what a model file holds.
//!
//! [`load_inspect_report`] turns any supported input into one
//! [`InspectReport`] (dispatching on the kind of file); the text and JSON
//! renderings work from that report only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use quantmix::gguf::{ftype_name, GgmlType, GgufModel, MetaValue, Metadata};
use quantmix::recipe::roles::layer_of;
use quantmix::report::{human_bytes, Table};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A GGUF file (any shard of a split model opens the whole model), a safetensors file or
    /// index, or a directory of safetensors shards.
    pub file: PathBuf,
    /// One JSON object: `metadata` and `tensors` (name, shape, type, bytes, bpw, offset).
    #[arg(long)]
    pub json: bool,
    /// List every tensor (the text report shows totals and the first 40 tensors otherwise).
    #[arg(long)]
    pub all: bool,
}

/// One tensor as the report shows it.
#[derive(Serialize, Debug, Clone)]
pub struct TensorRow {
    pub name: String,
    /// ggml order: `shape[0]` is the row length.
    pub shape: Vec<u64>,
    #[serde(rename = "type")]
    pub ty: GgmlType,
    pub bytes: u64,
    /// Bits per weight: `bytes * 8 / elements`.
    pub bpw: f64,
    /// Offset of the data in its file's data section.
    pub offset: u64,
    /// Index of the file holding it, for split models (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<usize>,
}

/// Everything `inspect` prints, for any input format.
#[derive(Serialize, Debug)]
pub struct InspectReport {
    /// What was read: "GGUF" (H adds "safetensors").
    pub format: String,
    /// GGUF version (for GGUF inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The files read, in order (one, or every shard).
    pub files: Vec<PathBuf>,
    /// Their total size.
    pub file_bytes: u64,
    pub metadata: Metadata,
    pub tensors: Vec<TensorRow>,
}

/// Read a GGUF model (single file or split) into a report (safetensors
/// inputs have their own report, [`run_safetensors`]).
pub fn load_inspect_report(path: &Path) -> Result<InspectReport> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if path.is_dir() || ext == "safetensors" || path.to_string_lossy().ends_with(".safetensors.index.json") {
        bail!("{}: safetensors / Hugging Face inputs are not supported by `inspect` yet", path.display());
    }
    gguf_report(path)
}

fn gguf_report(path: &Path) -> Result<InspectReport> {
    let m = GgufModel::open(path)?;
    let split = m.is_split();
    let tensors = m
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| TensorRow {
            name: t.name.clone(),
            shape: t.shape.clone(),
            ty: t.ty,
            bytes: t.n_bytes(),
            bpw: t.n_bytes() as f64 * 8.0 / t.n_elements().max(1) as f64,
            offset: t.offset,
            shard: split.then(|| m.shard_index(i)),
        })
        .collect();
    Ok(InspectReport {
        format: "GGUF".into(),
        version: Some(m.shards()[0].header.version),
        files: m.shards().iter().map(|s| s.path().to_path_buf()).collect(),
        file_bytes: m.file_bytes(),
        metadata: m.metadata().clone(),
        tensors,
    })
}

pub fn run(a: Args) -> Result<()> {
    if a.file.is_dir() || quantmix::convert::safetensors::is_safetensors_path(&a.file) {
        return run_safetensors(&a);
    }
    let r = load_inspect_report(&a.file).with_context(|| format!("inspecting {}", a.file.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", render_text(&r, a.all));
    }
    Ok(())
}

/// `inspect` of a safetensors checkpoint: `__metadata__`, the tensor table
/// (HF names, shape in ggml order, dtype, bytes, shard) and totals.
fn run_safetensors(a: &Args) -> Result<()> {
    let st = quantmix::convert::SafetensorsModel::open(&a.file)
        .with_context(|| format!("inspecting {}", a.file.display()))?;
    let rows = st.rows();
    let total: u64 = rows.iter().map(|r| r.bytes).sum();
    if a.json {
        #[derive(Serialize)]
        struct StReport<'a> {
            file: String,
            files: Vec<String>,
            metadata: BTreeMap<&'a str, &'a str>,
            tensors: &'a [quantmix::convert::safetensors::StTensorRow],
        }
        let r = StReport {
            file: a.file.display().to_string(),
            files: st.paths().iter().map(|p| p.display().to_string()).collect(),
            metadata: st.file_metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            tensors: &rows,
        };
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "{}: safetensors, {} file(s), {} tensors, {} of data",
        a.file.display(),
        st.paths().len(),
        rows.len(),
        human_bytes(total)
    );
    if !st.file_metadata.is_empty() {
        let mut md = Table::new(&["key", "value"]).left(0).left(1);
        for (k, v) in &st.file_metadata {
            md.row(vec![k.clone(), v.clone()]);
        }
        println!("\n__metadata__\n{}", md.render());
    }
    let mut t = Table::new(&["tensor", "shape", "type", "bytes", "file"]).left(0).left(1).left(2).left(4);
    for r in rows.iter().take(if a.all { usize::MAX } else { 40 }) {
        t.row(vec![r.name.clone(), format!("{:?}", r.shape), r.dtype.clone(), r.bytes.to_string(), r.file.clone()]);
    }
    println!("tensors ({})\n{}", rows.len(), t.render());
    if rows.len() > 40 && !a.all {
        println!("… {} more (use --all or --json)\n", rows.len() - 40);
    }
    let mut by_type: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for r in &rows {
        let e = by_type.entry(r.dtype.as_str()).or_default();
        e.0 += 1;
        e.1 += r.bytes;
    }
    let mut tt = Table::new(&["type", "tensors", "bytes", "share"]).left(0);
    for (ty, (n, b)) in &by_type {
        tt.row(vec![
            ty.to_string(),
            n.to_string(),
            b.to_string(),
            format!("{:.1}%", 100.0 * *b as f64 / total.max(1) as f64),
        ]);
    }
    println!("per type\n{}", tt.render());
    Ok(())
}

/// Count, elements and bytes of a group of tensors.
#[derive(Default, Clone, Copy)]
struct Totals {
    n: usize,
    elements: u64,
    bytes: u64,
}

impl Totals {
    fn add(&mut self, t: &TensorRow) {
        self.n += 1;
        self.elements += t.shape.iter().product::<u64>();
        self.bytes += t.bytes;
    }
    fn bpw(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elements.max(1) as f64
    }
}

fn render_text(r: &InspectReport, all: bool) -> String {
    let mut out = String::new();
    let md = &r.metadata;
    let mut total = Totals::default();
    let mut by_type: BTreeMap<GgmlType, Totals> = BTreeMap::new();
    let mut by_layer: BTreeMap<Option<u32>, Totals> = BTreeMap::new();
    for t in &r.tensors {
        total.add(t);
        by_type.entry(t.ty).or_default().add(t);
        by_layer.entry(layer_of(&t.name)).or_default().add(t);
    }

    // Summary.
    let version = r.version.map(|v| format!(" v{v}")).unwrap_or_default();
    let files = if r.files.len() > 1 { format!(", {} files", r.files.len()) } else { String::new() };
    out += &format!(
        "{}: {}{version}{files}, {} ({} bytes)\n",
        r.files[0].display(),
        r.format,
        human_bytes(r.file_bytes),
        r.file_bytes
    );
    let mut s = Table::new(&["", ""]).left(0).left(1);
    let arch = md.architecture().unwrap_or("(unknown)");
    s.row(vec!["architecture".into(), arch.into()]);
    if let Some(n) = md.get_str("general.name") {
        s.row(vec!["name".into(), n.into()]);
    }
    if let Some(ft) = md.get_u64("general.file_type") {
        s.row(vec!["file type".into(), format!("{} ({ft})", ftype_name(ft).unwrap_or("unknown"))]);
    }
    if let Some(n) = md.arch_u64("block_count") {
        s.row(vec!["layers".into(), n.to_string()]);
    }
    if let Some(n) = md.arch_u64("embedding_length") {
        s.row(vec!["embedding length".into(), n.to_string()]);
    }
    if let Some(v) = md.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
        s.row(vec!["vocabulary".into(), format!("{} tokens", v.len())]);
    }
    s.row(vec!["metadata".into(), format!("{} keys", md.len())]);
    s.row(vec![
        "tensors".into(),
        format!(
            "{} ({} parameters, {} of data, {:.2} bits per weight)",
            total.n,
            human_count(total.elements),
            human_bytes(total.bytes),
            total.bpw()
        ),
    ]);
    for (i, f) in r.files.iter().enumerate().skip(1) {
        s.row(vec![format!("file {}", i + 1), f.display().to_string()]);
    }
    out += &s.render_rows().lines().map(|l| format!("  {l}\n")).collect::<String>();

    // Metadata (long arrays abbreviated).
    let mut mt = Table::new(&["key", "type", "value"]).left(0).left(1).left(2);
    for (k, v) in md.iter() {
        let (ty, value) = match v {
            MetaValue::Array(t, items) => {
                let shown: Vec<String> = items.iter().take(4).map(|x| x.summary(0)).collect();
                let more = if items.len() > 4 { ", …" } else { "" };
                (format!("{}[{}]", t.name(), items.len()), format!("[{}{more}]", shown.join(", ")))
            }
            _ => (v.meta_type().name().to_string(), v.summary(0)),
        };
        mt.row(vec![k.to_string(), ty, value]);
    }
    out += &format!("\nmetadata ({} keys)\n{}", md.len(), mt.render());

    // Tensors.
    let split = r.tensors.iter().any(|t| t.shard.is_some());
    let mut head = vec!["tensor", "shape", "type", "bytes", "bpw"];
    if split {
        head.push("file");
    }
    let mut tt = Table::new(&head).left(0).left(1).left(2);
    let limit = if all { usize::MAX } else { 40 };
    for t in r.tensors.iter().take(limit) {
        let mut row = vec![
            t.name.clone(),
            format!("{:?}", t.shape),
            t.ty.to_string(),
            t.bytes.to_string(),
            format!("{:.2}", t.bpw),
        ];
        if let Some(sh) = t.shard {
            row.push((sh + 1).to_string());
        }
        tt.row(row);
    }
    out += &format!("\ntensors ({})\n{}", r.tensors.len(), tt.render());
    if r.tensors.len() > limit {
        out += &format!("… {} more (use --all or --json)\n", r.tensors.len() - limit);
    }

    // Totals per type and per layer.
    let mut pt = Table::new(&["type", "tensors", "elements", "bytes", "bpw", "share"]).left(0);
    let mut push = |name: String, t: &Totals| {
        pt.row(vec![
            name,
            t.n.to_string(),
            t.elements.to_string(),
            t.bytes.to_string(),
            format!("{:.2}", t.bpw()),
            format!("{:.1}%", 100.0 * t.bytes as f64 / total.bytes.max(1) as f64),
        ]);
    };
    for (ty, t) in &by_type {
        push(ty.to_string(), t);
    }
    push("total".into(), &total);
    out += &format!("\nper type\n{}", pt.render());
    let mut lt = Table::new(&["layer", "tensors", "elements", "bytes", "bpw"]).left(0);
    for (l, t) in &by_layer {
        lt.row(vec![
            l.map_or("(global)".to_string(), |l| l.to_string()),
            t.n.to_string(),
            t.elements.to_string(),
            t.bytes.to_string(),
            format!("{:.2}", t.bpw()),
        ]);
    }
    out += &format!("\nper layer\n{}", lt.render());
    out
}

/// `134515008` → `134.52 M`.
fn human_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.2} K", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} M", n as f64 / 1e6),
        _ => format!("{:.2} B", n as f64 / 1e9),
    }
}
