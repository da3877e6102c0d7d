//! `quantmix inspect FILE [--json]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::gguf::{GgufFile, MetaValue};
use crate::recipe::roles::layer_of;
use crate::report::{human_bytes, Table};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A GGUF file.
    pub file: PathBuf,
    /// One JSON object: `metadata` and `tensors` (name, shape, type, bytes, bpw, offset).
    #[arg(long)]
    pub json: bool,
    /// List every tensor (the text report shows totals and the first 40 tensors otherwise).
    #[arg(long)]
    pub all: bool,
}

#[derive(Serialize)]
struct TensorRow {
    name: String,
    shape: Vec<u64>,
    #[serde(rename = "type")]
    ty: String,
    bytes: u64,
    bpw: f64,
    offset: u64,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    file_bytes: u64,
    metadata: BTreeMap<&'a str, &'a MetaValue>,
    tensors: Vec<TensorRow>,
}

pub fn run(a: Args) -> Result<()> {
    let g = GgufFile::open(&a.file).with_context(|| format!("inspecting {}", a.file.display()))?;
    let file_bytes = g.bytes().len() as u64;
    let rows: Vec<TensorRow> = g
        .tensors()
        .iter()
        .map(|t| TensorRow {
            name: t.name.clone(),
            shape: t.shape.clone(),
            ty: t.ty.name().to_string(),
            bytes: t.n_bytes(),
            bpw: t.n_bytes() as f64 * 8.0 / t.n_elements().max(1) as f64,
            offset: t.offset,
        })
        .collect();
    if a.json {
        let r = Report {
            file: a.file.display().to_string(),
            file_bytes,
            metadata: g.metadata().iter().collect(),
            tensors: rows,
        };
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("{}: GGUF, {} ({file_bytes} bytes)", a.file.display(), human_bytes(file_bytes));
    let mut md = Table::new(&["key", "value"]).left(0).left(1);
    for (k, v) in g.metadata().iter() {
        md.row(vec![k.to_string(), v.summary(4)]);
    }
    println!("\nmetadata ({} keys)\n{}", g.metadata().len(), md.render());

    let mut t = Table::new(&["tensor", "shape", "type", "bytes", "bpw"]).left(0).left(1).left(2);
    for r in rows.iter().take(if a.all { usize::MAX } else { 40 }) {
        t.row(vec![
            r.name.clone(),
            format!("{:?}", r.shape),
            r.ty.clone(),
            r.bytes.to_string(),
            format!("{:.2}", r.bpw),
        ]);
    }
    println!("tensors ({})\n{}", rows.len(), t.render());
    if rows.len() > 40 && !a.all {
        println!("… {} more (use --all or --json)\n", rows.len() - 40);
    }

    let mut by_type: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    let mut by_layer: BTreeMap<Option<u32>, (usize, u64, u64)> = BTreeMap::new();
    for (r, ti) in rows.iter().zip(g.tensors()) {
        for e in [by_type.entry(r.ty.as_str()).or_default(), by_layer.entry(layer_of(&r.name)).or_default()] {
            e.0 += 1;
            e.1 += r.bytes;
            e.2 += ti.n_elements();
        }
    }
    let total_elems: u64 = g.tensors().iter().map(|t| t.n_elements()).sum();
    let total_bytes: u64 = rows.iter().map(|r| r.bytes).sum();
    let mut tt = Table::new(&["type", "tensors", "elements", "bytes", "bpw", "share"]).left(0);
    for (ty, (n, b, e)) in &by_type {
        tt.row(vec![
            ty.to_string(),
            n.to_string(),
            e.to_string(),
            b.to_string(),
            format!("{:.2}", *b as f64 * 8.0 / (*e).max(1) as f64),
            format!("{:.1}%", 100.0 * *b as f64 / total_bytes.max(1) as f64),
        ]);
    }
    tt.row(vec![
        "total".into(),
        rows.len().to_string(),
        total_elems.to_string(),
        total_bytes.to_string(),
        format!("{:.2}", total_bytes as f64 * 8.0 / total_elems.max(1) as f64),
        "100%".into(),
    ]);
    println!("per type\n{}", tt.render());
    let mut lt = Table::new(&["layer", "tensors", "bytes", "bpw"]).left(0);
    for (l, (n, b, e)) in &by_layer {
        lt.row(vec![
            l.map_or("(global)".to_string(), |l| l.to_string()),
            n.to_string(),
            b.to_string(),
            format!("{:.2}", *b as f64 * 8.0 / (*e).max(1) as f64),
        ]);
    }
    println!("per layer\n{}", lt.render());
    Ok(())
}
