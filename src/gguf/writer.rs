//! Streaming, atomic GGUF v3 writer.
//!
//! The header, metadata and tensor infos are written first (tensor offsets
//! are computed from the specs), then the tensors one at a time in spec
//! order, whole or in chunks, each padded to the alignment. Peak memory is
//! what the caller holds for one chunk. Everything goes to a temporary file
//! next to the target, renamed over it by [`GgufWriter::finish`]; dropping
//! the writer (an error, Ctrl-C through the cancel flag) removes it.

use super::error::{GgufError, GgufErrorKind};
use super::{GgmlType, MetaValue, Metadata, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_NAME_LEN};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// One output tensor: name, ggml shape (`shape[0]` = row length), type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<u64>,
    pub ty: GgmlType,
}

impl TensorSpec {
    /// Bytes of the tensor's data, or `None` if the row length does not fit
    /// the type's block or the size overflows.
    pub fn n_bytes(&self) -> Option<u64> {
        let row = self.ty.row_bytes(*self.shape.first()?)?;
        self.shape[1..].iter().try_fold(row, |acc, &d| acc.checked_mul(d))
    }
}

fn pad(n: u64, alignment: u64) -> u64 {
    n.div_ceil(alignment) * alignment
}

fn string_size(s: &str) -> u64 {
    8 + s.len() as u64
}

fn value_size(v: &MetaValue) -> u64 {
    match v {
        MetaValue::U8(_) | MetaValue::I8(_) | MetaValue::Bool(_) => 1,
        MetaValue::U16(_) | MetaValue::I16(_) => 2,
        MetaValue::U32(_) | MetaValue::I32(_) | MetaValue::F32(_) => 4,
        MetaValue::U64(_) | MetaValue::I64(_) | MetaValue::F64(_) => 8,
        MetaValue::String(s) => string_size(s),
        MetaValue::Array(_, items) => 4 + 8 + items.iter().map(value_size).sum::<u64>(),
    }
}

/// Size of everything before the data section (before padding).
fn header_size(metadata: &Metadata, tensors: &[TensorSpec]) -> u64 {
    let mut n = 4 + 4 + 8 + 8;
    for (k, v) in metadata.iter() {
        n += string_size(k) + 4 + value_size(v);
    }
    for t in tensors {
        n += string_size(&t.name) + 4 + 8 * t.shape.len() as u64 + 4 + 8;
    }
    n
}

/// The metadata as written: `general.alignment` is added (as u32, the type
/// ggml requires) when the alignment is not the default and the key is
/// absent. A present key must agree with `alignment`.
fn effective_metadata<'a>(path: &Path, metadata: &'a Metadata, alignment: u64) -> Result<Cow<'a, Metadata>, GgufError> {
    let bad =
        |msg: String| GgufError::new(path, None, GgufErrorKind::BadMetadata { key: "general.alignment".into(), msg });
    match metadata.get("general.alignment") {
        Some(MetaValue::U32(a)) if *a as u64 == alignment => Ok(Cow::Borrowed(metadata)),
        Some(MetaValue::U32(a)) => Err(bad(format!("is {a} but the writer was asked for alignment {alignment}"))),
        Some(v) => Err(bad(format!("must be a u32 (ggml rejects other types), found {}", v.meta_type().name()))),
        None if alignment == DEFAULT_ALIGNMENT => Ok(Cow::Borrowed(metadata)),
        None => {
            let a = u32::try_from(alignment).map_err(|_| bad(format!("{alignment} does not fit a u32")))?;
            let mut m = metadata.clone();
            m.set("general.alignment", MetaValue::U32(a));
            Ok(Cow::Owned(m))
        }
    }
}

/// Check the specs (what ggml's reader would reject) and return each tensor's byte size.
fn validate_specs(path: &Path, tensors: &[TensorSpec]) -> Result<Vec<u64>, GgufError> {
    let err = |kind| GgufError::new(path, None, kind);
    let mut names = HashSet::new();
    let mut sizes = Vec::with_capacity(tensors.len());
    for t in tensors {
        if t.name.is_empty() || t.name.len() >= MAX_NAME_LEN {
            return Err(err(GgufErrorKind::BadTensorName {
                tensor: t.name.clone(),
                len: t.name.len(),
                max: MAX_NAME_LEN - 1,
            }));
        }
        if !names.insert(t.name.as_str()) {
            return Err(err(GgufErrorKind::DuplicateTensor(t.name.clone())));
        }
        if t.shape.is_empty() || t.shape.len() > MAX_DIMS {
            return Err(err(GgufErrorKind::TooManyDims {
                tensor: t.name.clone(),
                n_dims: t.shape.len() as u32,
                max: MAX_DIMS as u32,
            }));
        }
        if let Some((dim, &value)) = t.shape.iter().enumerate().find(|(_, &d)| d == 0 || d > i64::MAX as u64) {
            return Err(err(GgufErrorKind::BadDim { tensor: t.name.clone(), dim, value }));
        }
        let n = t.n_bytes().ok_or_else(|| {
            if t.shape[0] % t.ty.block_size() as u64 != 0 {
                err(GgufErrorKind::RowNotBlockMultiple {
                    tensor: t.name.clone(),
                    ty: t.ty.name().into(),
                    ne0: t.shape[0],
                    block: t.ty.block_size(),
                })
            } else {
                err(GgufErrorKind::DimOverflow { tensor: t.name.clone(), shape: t.shape.clone() })
            }
        })?;
        sizes.push(n);
    }
    Ok(sizes)
}

/// Exact size in bytes of the file [`GgufWriter`] writes for these inputs
/// (assuming [`GgufWriter::create`] accepts them).
pub fn gguf_file_size(metadata: &Metadata, tensors: &[TensorSpec], alignment: u64) -> u64 {
    let metadata = effective_metadata(Path::new(""), metadata, alignment).unwrap_or(Cow::Borrowed(metadata));
    let mut n = pad(header_size(&metadata, tensors), alignment);
    for t in tensors {
        n += pad(t.n_bytes().unwrap_or(0), alignment);
    }
    n
}

fn write_value(w: &mut impl Write, v: &MetaValue) -> std::io::Result<()> {
    match v {
        MetaValue::U8(x) => w.write_all(&[*x]),
        MetaValue::I8(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::U16(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::I16(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::U32(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::I32(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::F32(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::Bool(x) => w.write_all(&[*x as u8]),
        MetaValue::String(s) => write_string(w, s),
        MetaValue::Array(t, items) => {
            w.write_all(&(*t as u32).to_le_bytes())?;
            w.write_all(&(items.len() as u64).to_le_bytes())?;
            items.iter().try_for_each(|it| write_value(w, it))
        }
        MetaValue::U64(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::I64(x) => w.write_all(&x.to_le_bytes()),
        MetaValue::F64(x) => w.write_all(&x.to_le_bytes()),
    }
}

fn write_string(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

/// A GGUF file being written. See the module documentation.
pub struct GgufWriter {
    path: PathBuf,
    tmp: crate::fsutil::AtomicFile,
    out: BufWriter<std::fs::File>,
    specs: Vec<TensorSpec>,
    sizes: Vec<u64>,
    alignment: u64,
    /// Index of the tensor being written and bytes written of it so far.
    current: usize,
    written: u64,
    total: u64,
    cancel: Option<crate::job::Cancel>,
}

impl GgufWriter {
    /// Create the temporary file and write header, metadata and tensor infos.
    pub fn create(
        path: &Path,
        metadata: &Metadata,
        tensors: &[TensorSpec],
        alignment: u64,
    ) -> Result<GgufWriter, GgufError> {
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(GgufError::new(path, None, GgufErrorKind::BadAlignment(alignment)));
        }
        let sizes = validate_specs(path, tensors)?;
        let metadata = effective_metadata(path, metadata, alignment)?;
        let io = |e| GgufError::io(path, e);
        let tmp = crate::fsutil::AtomicFile::create(path).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, tmp.file().try_clone().map_err(io)?);
        let mut header = Vec::with_capacity(1 << 16);
        header.extend_from_slice(GGUF_MAGIC);
        header.extend_from_slice(&3u32.to_le_bytes());
        header.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (k, v) in metadata.iter() {
            write_string(&mut header, k).map_err(io)?;
            header.extend_from_slice(&(v.meta_type() as u32).to_le_bytes());
            write_value(&mut header, v).map_err(io)?;
        }
        let mut offset = 0u64;
        for (t, &n) in tensors.iter().zip(&sizes) {
            write_string(&mut header, &t.name).map_err(io)?;
            header.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for &d in &t.shape {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ty.id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offset += pad(n, alignment);
        }
        let padded = pad(header.len() as u64, alignment) as usize;
        header.resize(padded, 0);
        out.write_all(&header).map_err(io)?;
        Ok(GgufWriter {
            path: path.to_path_buf(),
            tmp,
            out,
            specs: tensors.to_vec(),
            sizes,
            alignment,
            current: 0,
            written: 0,
            total: padded as u64,
            cancel: None,
        })
    }

    /// Abort (with [`GgufErrorKind::Interrupted`]) at the next write once
    /// `cancel` is cancelled.
    pub fn set_cancel(&mut self, cancel: crate::job::Cancel) {
        self.cancel = Some(cancel);
    }

    fn err(&self, kind: GgufErrorKind) -> GgufError {
        GgufError::new(&self.path, Some(self.total), kind)
    }

    /// Append bytes to the current tensor.
    pub fn write_tensor_chunk(&mut self, chunk: &[u8]) -> Result<(), GgufError> {
        if let Some(Err(e)) = self.cancel.as_ref().map(crate::job::Cancel::check) {
            return Err(self.err(e.into()));
        }
        let Some(spec) = self.specs.get(self.current) else {
            return Err(self.err(GgufErrorKind::WriterMisuse("more tensors written than declared".into())));
        };
        let expected = self.sizes[self.current];
        if self.written + chunk.len() as u64 > expected {
            return Err(self.err(GgufErrorKind::WriterMisuse(format!(
                "tensor `{}`: {} bytes written, {} declared",
                spec.name,
                self.written + chunk.len() as u64,
                expected
            ))));
        }
        self.out.write_all(chunk).map_err(|e| GgufError::io(&self.path, e))?;
        self.written += chunk.len() as u64;
        self.total += chunk.len() as u64;
        Ok(())
    }

    /// Close the current tensor (checking its length) and pad to alignment.
    pub fn end_tensor(&mut self) -> Result<(), GgufError> {
        let Some(spec) = self.specs.get(self.current) else {
            return Err(self.err(GgufErrorKind::WriterMisuse("end_tensor without a tensor".into())));
        };
        let expected = self.sizes[self.current];
        if self.written != expected {
            return Err(self.err(GgufErrorKind::WriterMisuse(format!(
                "tensor `{}`: {} bytes written, {} declared",
                spec.name, self.written, expected
            ))));
        }
        self.current += 1;
        self.written = 0;
        // Every tensor, the last one included, is padded (as ggml writes it).
        let padding = pad(expected, self.alignment) - expected;
        self.out.write_all(&vec![0u8; padding as usize]).map_err(|e| GgufError::io(&self.path, e))?;
        self.total += padding;
        Ok(())
    }

    /// Write one whole tensor (the next one in spec order).
    pub fn write_tensor(&mut self, data: &[u8]) -> Result<(), GgufError> {
        self.write_tensor_chunk(data)?;
        self.end_tensor()
    }

    /// Check that every tensor was written, flush, sync and rename the
    /// temporary file over the target. Returns the file size.
    pub fn finish(self) -> Result<u64, GgufError> {
        let path = self.path.clone();
        let (file, total) = self.into_file()?;
        file.commit().map_err(|e| GgufError::io(&path, e))?;
        Ok(total)
    }

    /// Check that every tensor was written and flush, but leave the file
    /// uncommitted (to commit it together with others,
    /// [`crate::fsutil::commit_all`]). Returns it and its size.
    pub fn into_file(mut self) -> Result<(crate::fsutil::AtomicFile, u64), GgufError> {
        if self.current != self.specs.len() {
            return Err(self.err(GgufErrorKind::WriterMisuse(format!(
                "{} of {} tensors written",
                self.current,
                self.specs.len()
            ))));
        }
        self.out.flush().map_err(|e| GgufError::io(&self.path, e))?;
        Ok((self.tmp, self.total))
    }
}
