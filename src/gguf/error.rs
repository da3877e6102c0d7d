//! The one error type of the GGUF layer.

use std::path::PathBuf;

/// What went wrong, without the location (see [`GgufError`]).
#[derive(Debug, thiserror::Error)]
pub enum GgufErrorKind {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad magic \"{}\" (expected \"GGUF\"): not a GGUF file", .0.as_slice().escape_ascii())]
    BadMagic([u8; 4]),
    #[error("unsupported GGUF version {0} (supported: 2, 3; version 1 is obsolete)")]
    UnsupportedVersion(u32),
    #[error("version field {0:#010x} looks byte-swapped: big-endian GGUF files are not supported")]
    BigEndian(u32),
    #[error("truncated file: {field} needs {need} bytes but only {have} remain")]
    Truncated { field: String, need: u64, have: u64 },
    #[error("{field}: length {len} exceeds what the file can hold ({remaining} bytes remain)")]
    LengthExceedsFile { field: String, len: u64, remaining: u64 },
    #[error("{field}: {len} values, more than quantmix reads from one file (at most {max})")]
    TooManyValues { field: String, len: u64, max: u64 },
    #[error("{field}: unknown metadata value type {ty}")]
    UnknownMetaType { field: String, ty: u32 },
    #[error("{field}: nested arrays deeper than {max} levels")]
    NestingTooDeep { field: String, max: usize },
    #[error("{field}: string is not valid UTF-8")]
    InvalidUtf8 { field: String },
    #[error("duplicate metadata key `{0}`")]
    DuplicateKey(String),
    #[error("metadata key `{key}`: {msg}")]
    BadMetadata { key: String, msg: String },
    #[error("tensor `{tensor}`: unknown ggml type id {id}")]
    UnknownTensorType { tensor: String, id: u32 },
    #[error("tensor `{tensor}`: {n_dims} dimensions (must be 1..={max})")]
    TooManyDims { tensor: String, n_dims: u32, max: u32 },
    #[error("tensor `{tensor}`: dimension {dim} is zero or negative ({value})")]
    BadDim { tensor: String, dim: usize, value: u64 },
    #[error("tensor `{tensor}`: the product of dimensions {shape:?} overflows")]
    DimOverflow { tensor: String, shape: Vec<u64> },
    #[error("tensor `{tensor}`: row length {ne0} is not a multiple of {ty}'s block size {block}")]
    RowNotBlockMultiple { tensor: String, ty: String, ne0: u64, block: usize },
    #[error("tensor name `{tensor}` has {len} bytes (must be 1..={max})")]
    BadTensorName { tensor: String, len: usize, max: usize },
    #[error("duplicate tensor name `{0}`")]
    DuplicateTensor(String),
    #[error("tensor `{tensor}`: data offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned { tensor: String, offset: u64, alignment: u64 },
    #[error("tensor `{tensor}`: data [{start}, {end}) lies outside the file's data section ({data_len} bytes)")]
    DataOutOfBounds { tensor: String, start: u64, end: u64, data_len: u64 },
    #[error("tensors `{a}` and `{b}` overlap in the data section")]
    Overlap { a: String, b: String },
    #[error("general.alignment {0} is not a non-zero power of two")]
    BadAlignment(u64),
    #[error("split model: {0}")]
    Split(String),
    #[error("interrupted")]
    Interrupted(#[from] crate::job::Interrupted),
    #[error("writer: {0}")]
    WriterMisuse(String),
    #[error("{0}")]
    Other(String),
}

/// An error reading or writing a GGUF file: names the file, the byte offset
/// (where one applies) and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {kind}", path.display(), offset.map(|o| format!(" at byte offset {o}")).unwrap_or_default())]
pub struct GgufError {
    pub path: PathBuf,
    pub offset: Option<u64>,
    #[source]
    pub kind: GgufErrorKind,
}

impl GgufError {
    pub fn new(path: impl Into<PathBuf>, offset: Option<u64>, kind: GgufErrorKind) -> Self {
        GgufError { path: path.into(), offset, kind }
    }
    pub fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        GgufError::new(path, None, GgufErrorKind::Io(e))
    }
}

pub type Result<T, E = GgufError> = std::result::Result<T, E>;
