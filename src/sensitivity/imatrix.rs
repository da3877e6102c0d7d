//! Importance matrices in llama.cpp's formats.
//!
//! - GGUF (what `llama-imatrix` writes today): per weight matrix `W`, an F32
//!   tensor `W.in_sum2` (`n_per_row × n_mat`: the sum over tokens of each
//!   input column's squared activation, per expert matrix) and an F32
//!   tensor `W.counts` (`n_mat`: tokens seen), plus the keys
//!   `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`.
//! - legacy `.dat`: `i32 n_entries`, then per entry `i32 len, name, i32
//!   ncall, i32 nval, f32[nval]` (values already averaged and multiplied by
//!   `ncall`), then optionally `i32 chunk_count, i32 len, dataset`.
//!
//! The importance vector quantization uses is what llama-quantize derives:
//! `in_sum2 / count` per expert matrix (1 where the count is 0), or for the
//! legacy format `values / ncall`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::gguf::{GgmlType, GgufFile, GgufWriter, MetaType, MetaValue, Metadata, TensorSpec};

/// What went wrong reading or writing an imatrix file.
#[derive(Debug, thiserror::Error)]
pub enum ImatrixError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// One matrix's statistics: `sums` has `n_per_row × counts.len()` values.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub sums: Vec<f32>,
    pub counts: Vec<f32>,
}

/// An importance matrix as collected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Imatrix {
    pub entries: BTreeMap<String, Entry>,
    pub datasets: Vec<String>,
    pub chunk_count: u32,
    pub chunk_size: u32,
    /// Read from the legacy format (sums are pre-averaged × ncall).
    pub legacy: bool,
}

impl Imatrix {
    /// Read either format (GGUF is recognised by its magic), and check
    /// every value ([`Imatrix::check`]).
    pub fn load(path: &Path) -> Result<Imatrix, ImatrixError> {
        let bytes = std::fs::read(path).map_err(|e| ImatrixError::Io { path: path.into(), source: e })?;
        let m = if bytes.starts_with(b"GGUF") { Self::load_gguf(path)? } else { Self::parse_legacy(path, &bytes)? };
        m.check().map_err(|msg| ImatrixError::Format { path: path.into(), msg })?;
        Ok(m)
    }

    /// Parse either format from bytes (`path` names it in errors) and check
    /// it: the whole reader, without a file (fuzzing).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Imatrix, ImatrixError> {
        let m = if bytes.starts_with(b"GGUF") {
            let h = crate::gguf::parse_header(path, bytes)?;
            Self::from_gguf(
                path,
                &h.metadata,
                h.tensors.iter().map(|t| {
                    let start = (h.data_offset + t.offset) as usize;
                    (t, &bytes[start..start + t.n_bytes() as usize])
                }),
            )?
        } else {
            Self::parse_legacy(path, bytes)?
        };
        m.check().map_err(|msg| ImatrixError::Format { path: path.into(), msg })?;
        Ok(m)
    }

    /// Every statistic must be a finite, non-negative number (sums of
    /// squares and token counts): a NaN would zero a tensor's quantization
    /// and an infinity make it non-finite. Names the entry and the value.
    pub fn check(&self) -> Result<(), String> {
        for (name, e) in &self.entries {
            let ne0 = e.sums.len() / e.counts.len().max(1);
            if let Some(i) = e.sums.iter().position(|v| !v.is_finite() || *v < 0.0) {
                let v = e.sums[i];
                let at = if e.counts.len() > 1 {
                    format!("matrix {}, column {}", i / ne0.max(1), i % ne0.max(1))
                } else {
                    format!("column {i}")
                };
                return Err(format!(
                    "entry `{name}`: {at}: {v} is not a finite non-negative sum of squared activations"
                ));
            }
            if let Some(j) = e.counts.iter().position(|v| !v.is_finite() || *v < 0.0) {
                return Err(format!(
                    "entry `{name}`: count #{j} = {} is not a finite non-negative number",
                    e.counts[j]
                ));
            }
        }
        Ok(())
    }

    fn load_gguf(path: &Path) -> Result<Imatrix, ImatrixError> {
        let g = GgufFile::open(path)?;
        Self::from_gguf(path, g.metadata(), g.tensors().iter().map(|t| (t, g.tensor_data(t))))
    }

    fn from_gguf<'a>(
        path: &Path,
        md: &Metadata,
        tensors: impl Iterator<Item = (&'a crate::gguf::TensorInfo, &'a [u8])>,
    ) -> Result<Imatrix, ImatrixError> {
        let fmt = |msg: String| ImatrixError::Format { path: path.into(), msg };
        let datasets = md
            .get("imatrix.datasets")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut out = Imatrix {
            datasets,
            chunk_count: md.get_u64("imatrix.chunk_count").unwrap_or(0) as u32,
            chunk_size: md.get_u64("imatrix.chunk_size").unwrap_or(0) as u32,
            ..Default::default()
        };
        let f32s = |t: &crate::gguf::TensorInfo, data: &[u8]| -> Result<Vec<f32>, ImatrixError> {
            if t.ty != GgmlType::F32 {
                return Err(fmt(format!("tensor `{}` must be F32, is {}", t.name, t.ty)));
            }
            Ok(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
        };
        let all: Vec<(&crate::gguf::TensorInfo, &[u8])> = tensors.collect();
        let by_name: std::collections::HashMap<&str, usize> =
            all.iter().enumerate().map(|(i, (t, _))| (t.name.as_str(), i)).collect();
        for &(t, data) in &all {
            let Some(name) = t.name.strip_suffix(".in_sum2") else { continue };
            let counts_name = format!("{name}.counts");
            let (counts_t, counts_data) = by_name
                .get(counts_name.as_str())
                .map(|&i| all[i])
                .ok_or_else(|| fmt(format!("`{name}.in_sum2` has no matching `{name}.counts`")))?;
            let sums = f32s(t, data)?;
            let counts = f32s(counts_t, counts_data)?;
            if counts.is_empty() || sums.len() % counts.len() != 0 {
                return Err(fmt(format!("`{name}`: {} sums do not split into {} matrices", sums.len(), counts.len())));
            }
            out.entries.insert(name.to_string(), Entry { sums, counts });
        }
        if out.entries.is_empty() {
            return Err(fmt("no `*.in_sum2` tensors: not an imatrix file".into()));
        }
        Ok(out)
    }

    fn parse_legacy(path: &Path, b: &[u8]) -> Result<Imatrix, ImatrixError> {
        let fmt = |at: usize, msg: String| ImatrixError::Format { path: path.into(), msg: format!("byte {at}: {msg}") };
        let mut pos = 0usize;
        let i32_at = |pos: &mut usize, what: &str| -> Result<i32, ImatrixError> {
            let s = b.get(*pos..*pos + 4).ok_or_else(|| fmt(*pos, format!("truncated reading {what}")))?;
            *pos += 4;
            Ok(i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        let n = i32_at(&mut pos, "entry count")?;
        if n < 1 {
            return Err(fmt(0, format!("{n} entries")));
        }
        let mut out = Imatrix { legacy: true, ..Default::default() };
        for i in 0..n {
            let len = i32_at(&mut pos, "name length")?;
            let name = b
                .get(pos..pos.saturating_add(len.max(0) as usize))
                .filter(|_| len > 0)
                .ok_or_else(|| fmt(pos, format!("entry {i}: bad name length {len}")))?;
            let name = String::from_utf8_lossy(name).into_owned();
            pos += len as usize;
            let ncall = i32_at(&mut pos, "ncall")?;
            let nval = i32_at(&mut pos, "value count")?;
            let bytes = (nval.max(0) as usize).saturating_mul(4);
            if nval < 1 || b.len() - pos < bytes {
                return Err(fmt(pos, format!("entry `{name}`: {nval} values do not fit the file")));
            }
            let sums =
                b[pos..pos + bytes].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            pos += bytes;
            out.entries.insert(name, Entry { sums, counts: vec![ncall as f32] });
        }
        if pos + 4 <= b.len() {
            out.chunk_count = i32_at(&mut pos, "chunk count")?.max(0) as u32;
            if let Ok(len) = i32_at(&mut pos, "dataset length") {
                if len > 0 {
                    if let Some(d) = b.get(pos..pos + len as usize) {
                        out.datasets.push(String::from_utf8_lossy(d).into_owned());
                    }
                }
            }
        }
        Ok(out)
    }

    /// The importance vectors llama-quantize uses, per tensor name.
    pub fn importance(&self) -> BTreeMap<String, Vec<f32>> {
        self.entries
            .iter()
            .map(|(name, e)| {
                let v = if self.legacy {
                    let ncall = e.counts.first().copied().unwrap_or(0.0);
                    e.sums.iter().map(|&s| if ncall > 0.0 { s / ncall } else { s }).collect()
                } else {
                    let ne0 = e.sums.len() / e.counts.len().max(1);
                    let mut v = vec![1.0f32; e.sums.len()];
                    for (j, &c) in e.counts.iter().enumerate() {
                        // llama.cpp rounds the stored count to an integer first.
                        let c = c.round();
                        if c > 0.0 {
                            for i in 0..ne0 {
                                v[j * ne0 + i] = e.sums[j * ne0 + i] / c;
                            }
                        }
                    }
                    v
                };
                (name.clone(), v)
            })
            .collect()
    }

    /// Write the GGUF imatrix format (what `llama-imatrix` writes).
    pub fn save_gguf(&self, path: &Path) -> Result<(), ImatrixError> {
        self.check().map_err(|msg| ImatrixError::Format {
            path: path.into(),
            msg: format!("not written: {msg} (the model's activations are not finite: are its weights?)"),
        })?;
        let mut md = Metadata::default();
        md.set("general.type", MetaValue::String("imatrix".into()));
        md.set(
            "imatrix.datasets",
            MetaValue::Array(MetaType::String, self.datasets.iter().cloned().map(MetaValue::String).collect()),
        );
        md.set("imatrix.chunk_count", MetaValue::U32(self.chunk_count));
        md.set("imatrix.chunk_size", MetaValue::U32(self.chunk_size));
        let mut specs = Vec::new();
        for (name, e) in &self.entries {
            let n_mat = e.counts.len().max(1) as u64;
            specs.push(TensorSpec {
                name: format!("{name}.in_sum2"),
                shape: vec![e.sums.len() as u64 / n_mat, n_mat],
                ty: GgmlType::F32,
            });
            specs.push(TensorSpec { name: format!("{name}.counts"), shape: vec![1, n_mat], ty: GgmlType::F32 });
        }
        let mut w = GgufWriter::create(path, &md, &specs, 32)?;
        for e in self.entries.values() {
            w.write_tensor(bytemuck::cast_slice(&e.sums))?;
            w.write_tensor(bytemuck::cast_slice(&e.counts))?;
        }
        w.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_roundtrip_and_importance() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.imatrix.gguf");
        let mut m = Imatrix { datasets: vec!["cal.txt".into()], chunk_count: 3, chunk_size: 512, ..Default::default() };
        m.entries.insert("blk.0.ffn_up.weight".into(), Entry { sums: vec![2.0, 4.0, 6.0, 8.0], counts: vec![2.0] });
        m.entries.insert(
            "blk.0.ffn_up_exps.weight".into(),
            Entry { sums: vec![1.0, 2.0, 3.0, 4.0], counts: vec![1.0, 0.0] },
        );
        m.save_gguf(&p).unwrap();
        let back = Imatrix::load(&p).unwrap();
        assert_eq!(back, m);
        let imp = back.importance();
        assert_eq!(imp["blk.0.ffn_up.weight"], vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(imp["blk.0.ffn_up_exps.weight"], vec![1.0, 2.0, 1.0, 1.0]);
    }

    #[test]
    fn legacy_format() {
        let mut b = Vec::new();
        b.extend_from_slice(&1i32.to_le_bytes());
        let name = b"blk.0.attn_q.weight";
        b.extend_from_slice(&(name.len() as i32).to_le_bytes());
        b.extend_from_slice(name);
        b.extend_from_slice(&4i32.to_le_bytes()); // ncall
        b.extend_from_slice(&2i32.to_le_bytes()); // nval
        b.extend_from_slice(&8f32.to_le_bytes());
        b.extend_from_slice(&12f32.to_le_bytes());
        b.extend_from_slice(&10i32.to_le_bytes()); // chunk count
        b.extend_from_slice(&3i32.to_le_bytes());
        b.extend_from_slice(b"abc");
        let m = Imatrix::parse_legacy(Path::new("x.dat"), &b).unwrap();
        assert_eq!(m.chunk_count, 10);
        assert_eq!(m.datasets, vec!["abc".to_string()]);
        assert_eq!(m.importance()["blk.0.attn_q.weight"], vec![2.0, 3.0]);
        // Truncated and lying lengths are errors, not panics or huge allocations.
        for cut in 0..b.len() - 15 {
            let _ = Imatrix::parse_legacy(Path::new("x.dat"), &b[..cut]);
        }
        let mut lie = b.clone();
        lie[4..8].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(Imatrix::parse_legacy(Path::new("x.dat"), &lie).is_err());
    }
}
