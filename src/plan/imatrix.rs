//! The importance matrix a plan quantizes with: the per-column importance
//! vectors and where they came from (stored in the output's metadata under
//! llama-quantize's `quantize.imatrix.*` keys).

use std::collections::BTreeMap;
use std::path::Path;

use super::PlanError;
use crate::gguf::TensorInfo;
use crate::sensitivity::imatrix::{Imatrix, ImatrixError};

/// Where an importance matrix came from (what the output's metadata says).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImatrixInfo {
    pub file: Option<String>,
    pub dataset: Option<String>,
    pub chunks: Option<u64>,
    /// Number of tensors it has a vector for.
    pub entries: usize,
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

impl ImportanceMatrix {
    /// Read an importance matrix file (llama.cpp's GGUF or legacy `.dat`).
    pub fn load(path: &Path) -> Result<ImportanceMatrix, ImatrixError> {
        let m = Imatrix::load(path)?;
        Ok(ImportanceMatrix {
            file: Some(path.display().to_string()),
            dataset: m.datasets.first().cloned(),
            chunks: Some(m.chunk_count as u64),
            vectors: m.importance(),
        })
    }

    /// Its provenance.
    pub fn info(&self) -> ImatrixInfo {
        ImatrixInfo {
            file: self.file.clone(),
            dataset: self.dataset.clone(),
            chunks: self.chunks,
            entries: self.vectors.len(),
        }
    }

    /// The vector for tensor `t`, checked against its shape: one value per
    /// column, or one vector per 2-D matrix (expert) of a 3-D or 4-D tensor
    /// (`ne[2] × ne[3]` of them).
    pub fn vector_for(&self, t: &TensorInfo) -> Result<Option<&[f32]>, PlanError> {
        let Some(v) = self.vectors.get(&t.name) else { return Ok(None) };
        let n = t.row_len() as usize;
        let n_expert: usize = t.shape.iter().skip(2).map(|&d| d as usize).product();
        if v.len() != n && v.len() != n * n_expert {
            return Err(PlanError::BadImatrix { tensor: t.name.clone(), got: v.len(), expected: n * n_expert });
        }
        Ok(Some(v.as_slice()))
    }
}
