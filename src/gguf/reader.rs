//! GGUF reader: parses the header from a memory map and validates every
//! length and offset against the file before anything is allocated.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::error::{GgufError, GgufErrorKind, Result};
use super::types::GgmlType;
use super::value::{MetaType, MetaValue};
use super::{Metadata, TensorInfo, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_NAME_LEN};

const MAX_NESTING: usize = 8;

/// A parsed GGUF header: metadata and tensor infos, offsets relative to the
/// start of the data section.
#[derive(Clone, Debug)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

/// An open GGUF file: its header plus its bytes, a memory map of the file
/// or, after [`GgufFile::make_resident`], a copy in anonymous memory.
pub struct GgufFile {
    pub path: PathBuf,
    pub header: GgufHeader,
    mmap: Arc<Mmap>,
    file: Arc<std::fs::File>,
    resident: bool,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile").field("path", &self.path).field("header", &self.header).finish()
    }
}

impl GgufFile {
    /// Memory-map and parse a GGUF file.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::File::open(&path).map_err(|e| GgufError::io(&path, e))?;
        // SAFETY: the file is opened read-only; like every mmap-based model
        // loader we assume nobody truncates it while we hold the map.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| GgufError::io(&path, e))?;
        let header = parse_header(&path, &mmap)?;
        Ok(GgufFile { path, header, mmap: Arc::new(mmap), file: Arc::new(file), resident: false })
    }

    /// Replace the memory map by a copy of the file in anonymous memory,
    /// with transparent huge pages asked for (`madvise(MADV_HUGEPAGE)`):
    /// a forward pass that streams every weight once per token then walks
    /// one page-table entry per 2 MiB instead of per 4 KiB (see
    /// [`super::resident`] for when it pays and what it costs). The copy is
    /// read from the file with `pread`, never through the map, so the
    /// process's resident memory holds the bytes once. The header was
    /// parsed from the map and the copy has the map's length, so every
    /// offset checked at open time stays valid.
    #[cfg(unix)]
    pub fn make_resident(&mut self) -> Result<()> {
        use rayon::prelude::*;
        use std::os::unix::fs::FileExt;
        if self.resident {
            return Ok(());
        }
        let len = self.mmap.len();
        let mut anon = memmap2::MmapMut::map_anon(len).map_err(|e| GgufError::io(&self.path, e))?;
        // Without THP support the copy still works, in 4 KiB pages.
        #[cfg(target_os = "linux")]
        let _ = anon.advise(memmap2::Advice::HugePage);
        const CHUNK: usize = 64 << 20;
        let file = &self.file;
        anon.par_chunks_mut(CHUNK).enumerate().try_for_each(|(i, dst)| {
            let at = (i * CHUNK) as u64;
            file.read_exact_at(dst, at).map_err(|e| GgufError::new(&self.path, Some(at), GgufErrorKind::Io(e)))
        })?;
        let copy = anon.make_read_only().map_err(|e| GgufError::io(&self.path, e))?;
        self.mmap = Arc::new(copy);
        self.resident = true;
        Ok(())
    }

    /// Whether the bytes are a copy in memory ([`GgufFile::make_resident`])
    /// rather than a map of the file.
    pub fn is_resident(&self) -> bool {
        self.resident
    }

    /// The file this was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of a tensor (validated at open time to lie inside the file).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let start = (self.header.data_offset + t.offset) as usize;
        &self.mmap[start..start + t.n_bytes() as usize]
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.mmap
    }
}

struct Cursor<'a> {
    path: &'a Path,
    buf: &'a [u8],
    pos: usize,
    /// Metadata values that may still be read (see [`MAX_META_VALUES`]).
    values_left: u64,
}

/// The most metadata values (array elements included) one file may hold:
/// the largest vocabularies hold about a million (tokens, scores, types,
/// merges), and each value costs tens of bytes of memory once read, so a
/// small file with a huge array must not make the reader allocate gigabytes.
pub const MAX_META_VALUES: u64 = 1 << 22;

/// The most tensors one file may describe (large MoE models have a few thousand).
pub const MAX_TENSORS: u64 = 1 << 20;

impl<'a> Cursor<'a> {
    fn err(&self, kind: GgufErrorKind) -> GgufError {
        GgufError::new(self.path, Some(self.pos as u64), kind)
    }

    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, field: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(GgufErrorKind::Truncated { field: field(), need: n, have: self.remaining() }));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self, f: &dyn Fn() -> String) -> Result<u8> {
        Ok(self.take(1, f)?[0])
    }
    fn u16(&mut self, f: &dyn Fn() -> String) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, f)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, f: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, f)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, f: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, f)?.try_into().expect("8 bytes")))
    }

    fn string(&mut self, f: &dyn Fn() -> String) -> Result<String> {
        let at = self.pos;
        let len = self.u64(f)?;
        if len > self.remaining() {
            return Err(GgufError::new(
                self.path,
                Some(at as u64),
                GgufErrorKind::LengthExceedsFile { field: f(), len, remaining: self.remaining() },
            ));
        }
        let bytes = self.take(len, f)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| GgufError::new(self.path, Some(at as u64), GgufErrorKind::InvalidUtf8 { field: f() }))
    }

    fn value(&mut self, ty: MetaType, depth: usize, f: &dyn Fn() -> String) -> Result<MetaValue> {
        Ok(match ty {
            MetaType::U8 => MetaValue::U8(self.u8(f)?),
            MetaType::I8 => MetaValue::I8(self.u8(f)? as i8),
            MetaType::U16 => MetaValue::U16(self.u16(f)?),
            MetaType::I16 => MetaValue::I16(self.u16(f)? as i16),
            MetaType::U32 => MetaValue::U32(self.u32(f)?),
            MetaType::I32 => MetaValue::I32(self.u32(f)? as i32),
            MetaType::F32 => MetaValue::F32(f32::from_bits(self.u32(f)?)),
            MetaType::Bool => MetaValue::Bool(self.u8(f)? != 0),
            MetaType::String => MetaValue::String(self.string(f)?),
            MetaType::U64 => MetaValue::U64(self.u64(f)?),
            MetaType::I64 => MetaValue::I64(self.u64(f)? as i64),
            MetaType::F64 => MetaValue::F64(f64::from_bits(self.u64(f)?)),
            MetaType::Array => {
                if depth >= MAX_NESTING {
                    return Err(self.err(GgufErrorKind::NestingTooDeep { field: f(), max: MAX_NESTING }));
                }
                let at = self.pos;
                let raw = self.u32(f)?;
                let et = MetaType::from_u32(raw).ok_or_else(|| {
                    GgufError::new(self.path, Some(at as u64), GgufErrorKind::UnknownMetaType { field: f(), ty: raw })
                })?;
                let at = self.pos;
                let n = self.u64(f)?;
                // Reject a lying length before allocating anything.
                let min = et.min_encoded_size().saturating_mul(n);
                if min > self.remaining() {
                    return Err(GgufError::new(
                        self.path,
                        Some(at as u64),
                        GgufErrorKind::LengthExceedsFile { field: f(), len: n, remaining: self.remaining() },
                    ));
                }
                if n > self.values_left {
                    return Err(GgufError::new(
                        self.path,
                        Some(at as u64),
                        GgufErrorKind::TooManyValues { field: f(), len: n, max: MAX_META_VALUES },
                    ));
                }
                self.values_left -= n;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(et, depth + 1, f)?);
                }
                MetaValue::Array(et, items)
            }
        })
    }
}

/// Minimum encoded size of one metadata entry (key length, type, one byte of value).
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Minimum encoded size of one tensor info (name length, n_dims, one dim, type, offset).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

/// Parse and validate a GGUF header (versions 2 and 3, little-endian) from
/// the file's bytes. `path` is used in error messages only.
///
/// Every length read from the file is checked against the bytes that remain
/// before anything is allocated from it, so a lying count fails with
/// [`GgufErrorKind::LengthExceedsFile`] instead of exhausting memory.
pub fn parse_header(path: &Path, buf: &[u8]) -> Result<GgufHeader> {
    let mut c = Cursor { path, buf, pos: 0, values_left: MAX_META_VALUES };
    let magic = c.take(4, &|| "magic".into())?;
    if magic != GGUF_MAGIC {
        let mut m = [0u8; 4];
        m.copy_from_slice(magic);
        return Err(GgufError::new(path, Some(0), GgufErrorKind::BadMagic(m)));
    }
    let version = c.u32(&|| "version".into())?;
    if version & 0xFFFF == 0 && version != 0 {
        return Err(GgufError::new(path, Some(4), GgufErrorKind::BigEndian(version)));
    }
    // GGUF v1 stored counts and lengths as u32; v2 made them u64, and v3
    // only added big-endian files (refused above), so v2 and v3 parse alike.
    if version != 2 && version != 3 {
        return Err(GgufError::new(path, Some(4), GgufErrorKind::UnsupportedVersion(version)));
    }
    let at_tensors = c.pos as u64;
    let n_tensors = c.u64(&|| "tensor count".into())?;
    let at_kv = c.pos as u64;
    let n_kv = c.u64(&|| "metadata count".into())?;
    // A count that cannot fit in what remains is a lie (or a truncated
    // file): refuse it before anything is allocated from it.
    if n_kv.saturating_mul(MIN_KV_BYTES) > c.remaining() {
        return Err(GgufError::new(
            path,
            Some(at_kv),
            GgufErrorKind::LengthExceedsFile { field: "metadata count".into(), len: n_kv, remaining: c.remaining() },
        ));
    }

    if n_kv > c.values_left {
        return Err(GgufError::new(
            path,
            Some(at_kv),
            GgufErrorKind::TooManyValues { field: "metadata count".into(), len: n_kv, max: MAX_META_VALUES },
        ));
    }
    c.values_left -= n_kv;
    let mut metadata = Metadata::default();
    let mut seen = HashSet::new();
    let mut alignment_at = None;
    for i in 0..n_kv {
        let at = c.pos as u64;
        let key = c.string(&|| format!("metadata key #{i}"))?;
        if key.is_empty() {
            return Err(GgufError::new(
                path,
                Some(at),
                GgufErrorKind::BadMetadata { key: format!("#{i}"), msg: "empty key".into() },
            ));
        }
        let kf = key.clone();
        let field = move || format!("metadata `{kf}`");
        let tat = c.pos;
        let raw = c.u32(&field)?;
        let ty = MetaType::from_u32(raw).ok_or_else(|| {
            GgufError::new(path, Some(tat as u64), GgufErrorKind::UnknownMetaType { field: field(), ty: raw })
        })?;
        let value = c.value(ty, 0, &field)?;
        if !seen.insert(key.clone()) {
            return Err(GgufError::new(path, Some(at), GgufErrorKind::DuplicateKey(key)));
        }
        if key == "general.alignment" {
            alignment_at = Some(tat as u64);
        }
        metadata.push(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(MetaValue::U32(a)) => {
            let a = *a as u64;
            if a == 0 || !a.is_power_of_two() {
                return Err(GgufError::new(path, alignment_at, GgufErrorKind::BadAlignment(a)));
            }
            a
        }
        Some(v) => {
            return Err(GgufError::new(
                path,
                alignment_at,
                GgufErrorKind::BadMetadata {
                    key: "general.alignment".into(),
                    msg: format!("must be a u32, found {}", v.meta_type().name()),
                },
            ))
        }
    };

    if n_tensors.saturating_mul(MIN_TENSOR_INFO_BYTES) > c.remaining() {
        return Err(GgufError::new(
            path,
            Some(at_tensors),
            GgufErrorKind::LengthExceedsFile { field: "tensor count".into(), len: n_tensors, remaining: c.remaining() },
        ));
    }
    if n_tensors > MAX_TENSORS {
        return Err(GgufError::new(
            path,
            Some(at_tensors),
            GgufErrorKind::TooManyValues { field: "tensor count".into(), len: n_tensors, max: MAX_TENSORS },
        ));
    }
    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::new();
    for i in 0..n_tensors {
        let at = c.pos as u64;
        let name = c.string(&|| format!("tensor info #{i} name"))?;
        if name.is_empty() || name.len() >= MAX_NAME_LEN {
            return Err(GgufError::new(
                path,
                Some(at),
                GgufErrorKind::BadTensorName { tensor: name.clone(), len: name.len(), max: MAX_NAME_LEN - 1 },
            ));
        }
        if !names.insert(name.clone()) {
            return Err(GgufError::new(path, Some(at), GgufErrorKind::DuplicateTensor(name)));
        }
        let nf = name.clone();
        let field = move || format!("tensor `{nf}` info");
        let dat = c.pos as u64;
        let n_dims = c.u32(&field)?;
        if n_dims as usize > MAX_DIMS || n_dims == 0 {
            return Err(GgufError::new(
                path,
                Some(dat),
                GgufErrorKind::TooManyDims { tensor: name, n_dims, max: MAX_DIMS as u32 },
            ));
        }
        let mut shape = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            shape.push(c.u64(&field)?);
        }
        let tat = c.pos as u64;
        let tid = c.u32(&field)?;
        let oat = c.pos as u64;
        let offset = c.u64(&field)?;
        for (d, &v) in shape.iter().enumerate() {
            if v == 0 || v > i64::MAX as u64 {
                return Err(GgufError::new(
                    path,
                    Some(dat + 4 + 8 * d as u64),
                    GgufErrorKind::BadDim { tensor: name, dim: d, value: v },
                ));
            }
        }
        let n = shape.iter().try_fold(1u64, |acc, &v| acc.checked_mul(v));
        // ggml indexes elements with int64 and bytes with size_t: stay well inside both.
        if !matches!(n, Some(n) if n <= i64::MAX as u64 / 8) {
            return Err(GgufError::new(path, Some(dat), GgufErrorKind::DimOverflow { tensor: name, shape }));
        }
        let ty = GgmlType::from_id(tid).ok_or_else(|| {
            GgufError::new(path, Some(tat), GgufErrorKind::UnknownTensorType { tensor: name.clone(), id: tid })
        })?;
        if shape[0] % ty.block_size() as u64 != 0 {
            return Err(GgufError::new(
                path,
                Some(dat + 4),
                GgufErrorKind::RowNotBlockMultiple {
                    tensor: name,
                    ty: ty.name().into(),
                    ne0: shape[0],
                    block: ty.block_size(),
                },
            ));
        }
        if offset % alignment != 0 {
            return Err(GgufError::new(path, Some(oat), GgufErrorKind::Misaligned { tensor: name, offset, alignment }));
        }
        tensors.push(TensorInfo { name, shape, ty, offset });
    }

    let data_offset = (c.pos as u64).div_ceil(alignment) * alignment;
    let data_len = (buf.len() as u64).saturating_sub(data_offset);
    for t in &tensors {
        let end = t.offset.checked_add(t.n_bytes());
        match end {
            Some(end) if end <= data_len => {}
            _ => {
                return Err(GgufError::new(
                    path,
                    Some(data_offset.saturating_add(t.offset)),
                    GgufErrorKind::DataOutOfBounds {
                        tensor: t.name.clone(),
                        start: t.offset,
                        end: end.unwrap_or(u64::MAX),
                        data_len,
                    },
                ))
            }
        }
    }
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        if a.offset + a.n_bytes() > b.offset {
            return Err(GgufError::new(
                path,
                Some(data_offset + b.offset),
                GgufErrorKind::Overlap { a: a.name.clone(), b: b.name.clone() },
            ));
        }
    }

    Ok(GgufHeader { version, metadata, tensors, alignment, data_offset })
}
