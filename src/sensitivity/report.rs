//! What people read of a sensitivity file: a table per layer, a markdown
//! table of every tensor and candidate, a heatmap of layers × roles; and
//! the merging of shards.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::schema::{SensCandidate, SensTensor, SensitivityTable};
use crate::report::heatmap::Heatmap;
use crate::report::Table;

/// The roles of a llama block, in the order tables show them.
const ROLES: &[&str] = &["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/// The candidate a `requested` type ends at (e.g. Q4_K → Q5_0 for rows of 576).
fn for_requested<'a>(t: &'a SensTensor, requested: &str) -> Option<&'a SensCandidate> {
    t.candidates.iter().find(|c| c.requested.iter().any(|r| r == requested))
}

/// The damage per bit saved of a tensor: going from its largest measured
/// candidate down to the one `Q4_K` ends at, ΔKLD per million bits saved.
pub fn damage_per_bit(t: &SensTensor) -> Option<f64> {
    let low = for_requested(t, "Q4_K")?;
    let high = t.candidates.iter().max_by_key(|c| c.bytes)?;
    if high.bytes <= low.bytes {
        return None;
    }
    Some((low.kld - high.kld).max(0.0) / ((high.bytes - low.bytes) as f64 * 8.0 / 1e6))
}

fn roles_in(table: &SensitivityTable) -> Vec<String> {
    let mut roles: Vec<String> = ROLES.iter().map(|r| r.to_string()).collect();
    for t in &table.tensors {
        if t.layer.is_some() && !roles.contains(&t.role) {
            roles.push(t.role.clone());
        }
    }
    roles.retain(|r| table.tensors.iter().any(|t| t.layer.is_some() && &t.role == r));
    roles
}

fn by_layer(table: &SensitivityTable) -> BTreeMap<usize, BTreeMap<&str, &SensTensor>> {
    let mut m: BTreeMap<usize, BTreeMap<&str, &SensTensor>> = BTreeMap::new();
    for t in &table.tensors {
        if let Some(l) = t.layer {
            m.entry(l).or_default().insert(t.role.as_str(), t);
        }
    }
    m
}

/// Per layer, the ΔKLD of each role at the type `Q4_K` ends at (the
/// fallback type where the shape forces one); other tensors below.
pub fn layer_table(table: &SensitivityTable) -> Table {
    let roles = roles_in(table);
    let mut header: Vec<&str> = vec!["layer"];
    header.extend(roles.iter().map(String::as_str));
    header.push("sum");
    let mut tab = Table::new(&header);
    let cell = |t: Option<&&SensTensor>| -> (String, f64) {
        match t.and_then(|t| for_requested(t, "Q4_K")) {
            Some(c) => {
                let mark = if c.ty == "Q4_K" { "" } else { "*" };
                (format!("{:.2e}{mark}", c.kld), c.kld)
            }
            None => ("-".into(), 0.0),
        }
    };
    for (l, roles_of) in by_layer(table) {
        let mut row = vec![l.to_string()];
        let mut sum = 0.0;
        for r in &roles {
            let (s, v) = cell(roles_of.get(r.as_str()));
            sum += v;
            row.push(s);
        }
        row.push(format!("{sum:.2e}"));
        tab.row(row);
    }
    for t in table.tensors.iter().filter(|t| t.layer.is_none()) {
        let (s, v) = cell(Some(&t));
        let mut row = vec![t.role.clone(), s];
        row.extend(std::iter::repeat_n("".to_string(), roles.len().saturating_sub(1)));
        row.push(format!("{v:.2e}"));
        tab.row(row);
    }
    tab
}

/// A markdown report: settings, the per-layer table and every tensor's
/// candidates.
pub fn markdown(table: &SensitivityTable) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Sensitivity\n");
    if let Some(m) = &table.model {
        let _ = writeln!(s, "Model: `{}` ({}, {} layers, {} bytes).  ", m.path, m.arch, m.n_layer, m.bytes);
    }
    if let Some(c) = &table.calibration {
        let _ = writeln!(
            s,
            "Calibration: {} ({} tokens); measured on {} sequences of {} tokens. {}  ",
            c.source.join(", "),
            c.tokens,
            c.chunks,
            c.ctx,
            c.held_out
        );
    }
    let _ = writeln!(s, "Metric: {}.  ", table.metric.as_deref().unwrap_or("damage"));
    if let Some(rc) = &table.rank_correlation {
        let _ = writeln!(
            s,
            "Spearman rank correlation of the imatrix-weighted error proxy with the measured KLD: {:.3} over {} pairs.",
            rc.spearman, rc.pairs
        );
    }
    let _ = writeln!(
        s,
        "\n## ΔKLD per layer and role at Q4_K (* = llama.cpp's shape fallback type)\n\n```\n{}```\n",
        layer_table(table).render()
    );
    let _ = writeln!(
        s,
        "## Every tensor\n\n| tensor | source | candidates: type (requested) bpw → ΔKLD ± err, proxy |\n|---|---|---|"
    );
    for t in &table.tensors {
        let cands: Vec<String> = t
            .candidates
            .iter()
            .map(|c| {
                let req = if c.requested.is_empty() { "source".to_string() } else { c.requested.join(",") };
                format!("{} ({req}) {:.2} → {:.3e} ± {:.1e}, {:.3e}", c.ty, c.bpw, c.kld, c.kld_err, c.proxy)
            })
            .collect();
        let _ = writeln!(s, "| `{}` | {} | {} |", t.name, t.source_type, cands.join("; "));
    }
    s
}

/// Layers × roles, colour = damage per bit saved.
pub fn heatmap(table: &SensitivityTable, title: &str) -> Heatmap {
    let roles = roles_in(table);
    let layers = by_layer(table);
    let mut row_labels = Vec::new();
    let mut values: Vec<Vec<Option<f64>>> = Vec::new();
    for (l, m) in &layers {
        row_labels.push(format!("layer {l}"));
        values.push(roles.iter().map(|r| m.get(r.as_str()).and_then(|t| damage_per_bit(t))).collect());
    }
    let mut col_labels = roles.clone();
    // Tensors outside the blocks (token embeddings, output) get a column each,
    // filled on the first row.
    for t in table.tensors.iter().filter(|t| t.layer.is_none()) {
        col_labels.push(t.role.clone());
        for (i, row) in values.iter_mut().enumerate() {
            row.push(if i == 0 { damage_per_bit(t) } else { None });
        }
    }
    if values.is_empty() {
        row_labels.push("-".into());
        values.push(table.tensors.iter().map(damage_per_bit).collect());
        col_labels = table.tensors.iter().map(|t| t.role.clone()).collect();
    }
    Heatmap { title: title.to_string(), row_labels, col_labels, values, value_label: "ΔKLD per Mbit saved".into() }
}

/// Merge the files of `--shard 1/n … n/n` into one table: checks that they
/// measured the same model the same way and that every shard is there
/// once, restores the model's tensor order and recomputes the rank
/// correlation.
pub fn merge(mut shards: Vec<(String, SensitivityTable)>) -> Result<SensitivityTable, String> {
    if shards.is_empty() {
        return Err("nothing to merge".into());
    }
    if shards.len() == 1 && shards[0].1.shard.is_none() {
        // A whole table: only its reports are written again.
        let mut t = shards.remove(0).1;
        t.update_rank_correlation();
        return Ok(t);
    }
    let count = match shards[0].1.shard {
        Some(s) => s.count,
        None => return Err(format!("{}: not a shard (no `shard` field)", shards[0].0)),
    };
    let mut seen = vec![false; count];
    for (path, t) in &shards {
        let s = t.shard.ok_or_else(|| format!("{path}: not a shard (no `shard` field)"))?;
        if s.count != count {
            return Err(format!("{path}: shard {}/{}, but {} is of {count}", s.index, s.count, shards[0].0));
        }
        if s.index == 0 || s.index > count || seen[s.index - 1] {
            return Err(format!("{path}: shard {}/{} given twice or out of range", s.index, s.count));
        }
        seen[s.index - 1] = true;
        let first = &shards[0].1;
        if t.model != first.model || t.calibration != first.calibration || t.metric != first.metric {
            return Err(format!("{path}: measured another model or with other settings than {}", shards[0].0));
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        return Err(format!("shard {}/{count} is missing", missing + 1));
    }
    shards.sort_by_key(|(_, t)| t.shard.map_or(0, |s| s.index));
    let total: usize = shards.iter().map(|(_, t)| t.tensors.len()).sum();
    let mut iters: Vec<_> = shards.iter().map(|(_, t)| t.tensors.iter()).collect();
    let mut tensors = Vec::with_capacity(total);
    // Shard i holds tensors i-1, i-1+n, …: interleave back.
    'outer: loop {
        for it in iters.iter_mut() {
            match it.next() {
                Some(t) => tensors.push(t.clone()),
                None => break 'outer,
            }
        }
    }
    if tensors.len() != total {
        return Err("the shards' tensor counts do not fit one split of a model".into());
    }
    let mut names = std::collections::BTreeSet::new();
    for t in &tensors {
        if !names.insert(t.name.as_str()) {
            return Err(format!("tensor `{}` is in two shards", t.name));
        }
    }
    let mut out = shards[0].1.clone();
    out.shard = None;
    out.tensors = tensors;
    out.update_rank_correlation();
    Ok(out)
}
