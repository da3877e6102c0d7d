//! What the pipeline reads from: any model that can list its tensors (in
//! GGUF terms: name, ggml shape, ggml type) and hand out their bytes.

use std::borrow::Cow;
use std::path::Path;

use crate::gguf::{GgufError, GgufFile, GgufModel, Metadata, TensorInfo};

/// A model the pipeline can quantize: a GGUF file, a set of GGUF shards, or
/// a safetensors checkpoint seen through its GGUF conversion.
pub trait Source: Sync {
    /// The file (or first shard, or directory) it was opened from.
    fn path(&self) -> &Path;
    /// GGUF metadata of the model (for a converted source, what the
    /// conversion would write).
    fn metadata(&self) -> &Metadata;
    /// Tensors in output order.
    fn tensors(&self) -> &[TensorInfo];
    /// The bytes of one tensor, in its `TensorInfo::ty` layout.
    fn tensor_data(&self, t: &TensorInfo) -> Result<Cow<'_, [u8]>, GgufError>;
}

impl Source for GgufFile {
    fn path(&self) -> &Path {
        GgufFile::path(self)
    }
    fn metadata(&self) -> &Metadata {
        GgufFile::metadata(self)
    }
    fn tensors(&self) -> &[TensorInfo] {
        GgufFile::tensors(self)
    }
    fn tensor_data(&self, t: &TensorInfo) -> Result<Cow<'_, [u8]>, GgufError> {
        Ok(Cow::Borrowed(GgufFile::tensor_data(self, t)))
    }
}

impl Source for GgufModel {
    fn path(&self) -> &Path {
        GgufModel::path(self)
    }
    fn metadata(&self) -> &Metadata {
        GgufModel::metadata(self)
    }
    fn tensors(&self) -> &[TensorInfo] {
        GgufModel::tensors(self)
    }
    fn tensor_data(&self, t: &TensorInfo) -> Result<Cow<'_, [u8]>, GgufError> {
        Ok(Cow::Borrowed(GgufModel::tensor_data(self, t)))
    }
}
