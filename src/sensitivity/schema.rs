//! `sensitivity.json`: what `quantmix sensitivity` writes and `quantmix plan`
//! (and a recipe's `[budget]`) reads. Schema `quantmix-sensitivity`,
//! version 1:
//!
//! ```text
//! { "format": "quantmix-sensitivity", "version": 1,
//!   "model": { "path", "bytes", "arch", "n_layer" },
//!   "calibration": { "source": [files], "tokens", "ctx", "chunks", "held_out",
//!                    "exact_activations": true },          // only when measured so
//!   "imatrix": "sensitivity.imatrix.gguf",       // quantize with this too
//!   "metric": "mean KL-divergence of the final logits vs the source model",
//!   "shard": { "index": 1, "count": 4 },          // only in a shard's file
//!   "tensors": [ { "name", "layer", "role", "shape", "n_elements",
//!                  "source_type", "source_bytes",
//!                  "candidates": [ { "type", "requested": [types that fall back to it],
//!                                    "bytes", "bpw", "kld", "kld_err", "proxy" } ] } ],
//!   "fixed": [ { "name", "type", "bytes" } ],     // tensors not allocated
//!   "rank_correlation": { "spearman", "pairs" } }
//! ```
//!
//! `type` is the type the tensor really gets (after llama.cpp's shape
//! fallback); `requested` lists the candidate types that end there. The
//! source type is always a candidate with `kld` 0 (keeping it is
//! lossless). `kld` is the mean KL-divergence of the final logits, against
//! the unquantized (source) model, when only this tensor is quantized to
//! this type; `kld_err` its standard error over the measured positions.
//! `proxy` is `Σ_rows Σ_j imp_j (w_j − q_j)²`, the imatrix-weighted squared
//! quantization error (`imp` = mean squared input activation of column `j`;
//! 1 where the imatrix has no entry, as for the token embeddings).
//! `rank_correlation.spearman` is the Spearman correlation between `proxy`
//! and `kld` over all measured (tensor, type) pairs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format marker.
pub const FORMAT: &str = "quantmix-sensitivity";
/// The schema version.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SensitivityTable {
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub model: Option<ModelDesc>,
    #[serde(default)]
    pub calibration: Option<CalibrationDesc>,
    #[serde(default)]
    pub imatrix: Option<PathBuf>,
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardDesc>,
    pub tensors: Vec<SensTensor>,
    #[serde(default)]
    pub fixed: Vec<FixedTensor>,
    #[serde(default)]
    pub rank_correlation: Option<RankCorrelation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDesc {
    pub path: String,
    pub bytes: u64,
    pub arch: String,
    pub n_layer: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationDesc {
    /// The calibration files.
    pub source: Vec<String>,
    /// Tokens the whole calibration text gives.
    pub tokens: usize,
    /// Tokens per measured sequence.
    pub ctx: usize,
    /// Measured sequences (spread evenly over the text).
    pub chunks: usize,
    /// Chunks of `imatrix_ctx` tokens the importance matrix was collected on
    /// (`None` when it was given with `--imatrix`).
    #[serde(default)]
    pub imatrix_chunks: Option<usize>,
    /// A reminder that quality must be evaluated on other text.
    #[serde(default)]
    pub held_out: String,
    /// Measured with f32 activations on a dequantized copy of the model
    /// (written only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact_activations: bool,
    /// The types measured when the others were predicted from them
    /// (written only then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub predicted_from: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardDesc {
    /// 1-based.
    pub index: usize,
    pub count: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensTensor {
    pub name: String,
    #[serde(default)]
    pub layer: Option<usize>,
    #[serde(default)]
    pub role: String,
    pub shape: Vec<u64>,
    #[serde(default)]
    pub n_elements: u64,
    #[serde(default)]
    pub source_type: String,
    #[serde(default)]
    pub source_bytes: u64,
    pub candidates: Vec<SensCandidate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensCandidate {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub requested: Vec<String>,
    pub bytes: u64,
    #[serde(default)]
    pub bpw: f64,
    pub kld: f64,
    #[serde(default)]
    pub kld_err: f64,
    #[serde(default)]
    pub proxy: f64,
    /// Predicted from the measured candidates (written only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub predicted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixedTensor {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RankCorrelation {
    pub spearman: f64,
    pub pairs: usize,
}

/// A sensitivity file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct SchemaError {
    pub path: PathBuf,
    pub msg: String,
}

impl SensitivityTable {
    /// Read and check the format marker and version.
    pub fn load(path: &Path) -> Result<SensitivityTable, SchemaError> {
        let e = |msg: String| SchemaError { path: path.to_path_buf(), msg };
        let text = std::fs::read(path).map_err(|x| e(format!("cannot read: {x}")))?;
        Self::parse(path, &text)
    }

    /// [`SensitivityTable::load`] from the file's bytes (`path` names it in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<SensitivityTable, SchemaError> {
        let e = |msg: String| SchemaError { path: path.to_path_buf(), msg };
        let t: SensitivityTable =
            serde_json::from_slice(bytes).map_err(|x| e(format!("not a sensitivity file: {x}")))?;
        if t.format != FORMAT || t.version != VERSION {
            return Err(e(format!("format `{}` version {} (expected {FORMAT} {VERSION})", t.format, t.version)));
        }
        Ok(t)
    }

    /// The (proxy, kld) pairs of every measured candidate (the source type,
    /// not measured, left out).
    pub fn measured_pairs(&self) -> Vec<(f64, f64)> {
        self.tensors
            .iter()
            .flat_map(|t| {
                t.candidates.iter().filter(move |c| c.ty != t.source_type && !c.predicted).map(|c| (c.proxy, c.kld))
            })
            .collect()
    }

    /// Recompute [`SensitivityTable::rank_correlation`] from the tensors.
    pub fn update_rank_correlation(&mut self) {
        let pairs = self.measured_pairs();
        let (a, b): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        self.rank_correlation = spearman(&a, &b).map(|s| RankCorrelation { spearman: s, pairs: pairs.len() });
    }
}

/// Ranks (1-based, ties get their average rank).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (Pearson correlation of the ranks); `None`
/// for fewer than 3 pairs or a constant series.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 3 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        return None;
    }
    Some(sab / (saa * sbb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_series_is_one() {
        let a = [1.0, 2.0, 3.0, 10.0, 11.0];
        let b = [0.1, 0.5, 0.7, 100.0, 200.0];
        assert!((spearman(&a, &b).unwrap() - 1.0).abs() < 1e-12);
        let c: Vec<f64> = b.iter().map(|x| -x).collect();
        assert!((spearman(&a, &c).unwrap() + 1.0).abs() < 1e-12);
    }

    #[test]
    fn spearman_handles_ties_and_known_value() {
        // Ranks a = (1,2,3,4,5), b = (2,1,4,3,5): 1 - 6·4/(5·24) = 0.8.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [2.0, 1.0, 4.0, 3.0, 5.0];
        assert!((spearman(&a, &b).unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
        assert!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_none());
    }
}
