//! The GGUF file format: types, metadata, reader and writer.

pub mod error;
pub mod reader;
pub mod resident;
pub mod split;
pub mod types;
pub mod value;
pub mod writer;

pub use error::{GgufError, GgufErrorKind};
pub use reader::{parse_header, GgufFile, GgufHeader};
pub use split::GgufModel;
pub use types::{ftype_name, GgmlType};
pub use value::{MetaType, MetaValue};
pub use writer::{gguf_file_size, GgufWriter, TensorSpec};

pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
pub const MAX_DIMS: usize = 4;
/// ggml's `GGML_MAX_NAME`: a tensor name must be shorter than this (in bytes).
pub const MAX_NAME_LEN: usize = 64;

/// One tensor's info: name, shape (ggml order: `shape[0]` is the row
/// length), type and data offset relative to the data section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<u64>,
    pub ty: GgmlType,
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
    /// Row length (`ne[0]`).
    pub fn row_len(&self) -> u64 {
        self.shape[0]
    }
    /// Number of rows (product of the other dimensions).
    pub fn n_rows(&self) -> u64 {
        self.shape[1..].iter().product()
    }
    /// Bytes of data (the reader has checked that this does not overflow).
    pub fn n_bytes(&self) -> u64 {
        self.ty.row_bytes(self.row_len()).unwrap_or(0) * self.n_rows()
    }
}

/// Ordered metadata (insertion order is preserved, as GGUF files keep it).
/// Serializes as a map in that order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, MetaValue)>,
}

impl Metadata {
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Append or replace a key (replacing keeps the key's position).
    pub fn set(&mut self, key: impl Into<String>, value: MetaValue) {
        let key = key.into();
        if let Some(e) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            e.1 = value;
        } else {
            self.entries.push((key, value));
        }
    }
    pub(crate) fn push(&mut self, key: String, value: MetaValue) {
        self.entries.push((key, value));
    }
    pub fn remove(&mut self, key: &str) -> Option<MetaValue> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetaValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(MetaValue::as_u64)
    }
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(MetaValue::as_f64)
    }
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetaValue::as_str)
    }
    /// `general.architecture`, if present.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }
    /// An architecture-scoped key: `arch_key("block_count")` → `llama.block_count`.
    pub fn arch_u64(&self, suffix: &str) -> Option<u64> {
        let arch = self.architecture()?;
        self.get_u64(&format!("{arch}.{suffix}"))
    }
}

impl serde::Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
