//! safetensors reader: one file or a sharded checkpoint
//! (`model.safetensors.index.json`), memory-mapped.
//!
//! Every header is validated before any tensor data is touched: the length
//! prefix, the JSON, each entry's dtype, shape and `data_offsets` (inside the
//! file, non-overlapping, and exactly `shape × dtype size` bytes long). The
//! `safetensors` crate then parses the same header as a second, independent
//! check. Errors name the file, the tensor and the byte offset.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::error::{ConvertError, Result};

/// Largest header accepted (the `safetensors` crate's limit).
const MAX_HEADER: u64 = 100_000_000;

/// A safetensors element type. Only F32, F16 and BF16 can be converted; the
/// others are listed (so a file can be inspected) and rejected on use.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    F16,
    BF16,
    /// Another dtype the format knows: its name and element size.
    Other(String, usize),
}

impl Dtype {
    fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => Dtype::Other(s.into(), 1),
            "I16" | "U16" => Dtype::Other(s.into(), 2),
            "I32" | "U32" => Dtype::Other(s.into(), 4),
            "I64" | "U64" | "F64" => Dtype::Other(s.into(), 8),
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(&self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::Other(_, n) => *n,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::Other(s, _) => s,
        }
    }

    /// Whether [`SafetensorsModel::read_f32`] can read this dtype.
    pub fn is_float_supported(&self) -> bool {
        !matches!(self, Dtype::Other(..))
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a checkpoint.
#[derive(Clone, Debug)]
pub struct StTensor {
    pub name: String,
    pub dtype: Dtype,
    /// Shape in safetensors (PyTorch) order: the last dimension is the row.
    pub shape: Vec<u64>,
    /// Index of the file (shard) holding it.
    pub file: usize,
    /// Absolute byte offset of the data in its file.
    pub start: u64,
    /// Bytes of data.
    pub len: u64,
}

impl StTensor {
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

struct StFile {
    path: PathBuf,
    mmap: Mmap,
}

/// A memory-mapped safetensors checkpoint (one or several files).
pub struct SafetensorsModel {
    files: Vec<StFile>,
    tensors: Vec<StTensor>,
    by_name: HashMap<String, usize>,
    /// `__metadata__` of the first file.
    pub file_metadata: Vec<(String, String)>,
}

impl fmt::Debug for SafetensorsModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsModel")
            .field("files", &self.files.iter().map(|x| &x.path).collect::<Vec<_>>())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// The header entries in file order (a JSON object read as a list of pairs).
struct OrderedEntries(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedEntries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<OrderedEntries, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = map.next_entry::<String, Value>()? {
                    v.push((k, val));
                }
                Ok(OrderedEntries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Where the header entry of `name` starts (for error messages).
fn entry_offset(header: &str, name: &str) -> u64 {
    let quoted = serde_json::to_string(name).unwrap_or_default();
    8 + header.find(&quoted).unwrap_or(0) as u64
}

fn as_u64(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// `__metadata__` string pairs of a file.
pub type FileMetadata = Vec<(String, String)>;

/// Parse and validate one file's header. Returns the tensors (in header
/// order) and the `__metadata__` strings.
fn parse_file(path: &Path, buf: &[u8], file: usize) -> Result<(Vec<StTensor>, FileMetadata)> {
    let bad = |offset: u64, msg: String| ConvertError::BadHeader { path: path.to_path_buf(), offset, msg };
    let len = buf.len() as u64;
    if len < 8 {
        return Err(bad(0, format!("file is {len} bytes; a safetensors file starts with an 8-byte header length")));
    }
    let n = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER {
        return Err(bad(0, format!("header length {n} exceeds the limit of {MAX_HEADER} bytes")));
    }
    if n > len - 8 {
        return Err(bad(
            0,
            format!("header length {n} exceeds the {} bytes that follow it (truncated file?)", len - 8),
        ));
    }
    let text = std::str::from_utf8(&buf[8..8 + n as usize])
        .map_err(|e| bad(8 + e.valid_up_to() as u64, "header is not valid UTF-8".into()))?;
    let entries: OrderedEntries = serde_json::from_str(text).map_err(|e| {
        // The header is one line in practice; the column locates the error.
        let col = if e.line() <= 1 { e.column().saturating_sub(1) as u64 } else { 0 };
        bad(8 + col, format!("header JSON: {e}"))
    })?;
    let data_start = 8 + n;
    let data_len = len - data_start;
    let mut tensors = Vec::new();
    let mut file_meta = Vec::new();
    let mut seen = HashSet::new();
    for (name, v) in entries.0 {
        if name == "__metadata__" {
            let obj =
                v.as_object().ok_or_else(|| bad(entry_offset(text, &name), "__metadata__ is not an object".into()))?;
            for (k, val) in obj {
                let s = val.as_str().ok_or_else(|| {
                    bad(entry_offset(text, &name), format!("__metadata__ value of `{k}` is not a string"))
                })?;
                file_meta.push((k.clone(), s.to_string()));
            }
            continue;
        }
        let at = entry_offset(text, &name);
        let bt =
            |msg: String| ConvertError::BadTensor { path: path.to_path_buf(), tensor: name.clone(), offset: at, msg };
        if !seen.insert(name.clone()) {
            return Err(bt("duplicate tensor name".into()));
        }
        let obj = v.as_object().ok_or_else(|| bt("entry is not a JSON object".into()))?;
        let dtype_s =
            obj.get("dtype").and_then(Value::as_str).ok_or_else(|| bt("missing or non-string `dtype`".into()))?;
        let dtype = Dtype::parse(dtype_s).ok_or_else(|| bt(format!("unknown dtype `{dtype_s}`")))?;
        let shape_v =
            obj.get("shape").and_then(Value::as_array).ok_or_else(|| bt("missing or non-array `shape`".into()))?;
        let mut shape = Vec::with_capacity(shape_v.len());
        for d in shape_v {
            shape.push(as_u64(d).ok_or_else(|| bt(format!("shape entry {d} is not a non-negative integer")))?);
        }
        let offs = obj
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .ok_or_else(|| bt("missing `data_offsets` (expected [begin, end])".into()))?;
        let (Some(s), Some(e)) = (as_u64(&offs[0]), as_u64(&offs[1])) else {
            return Err(bt("`data_offsets` are not non-negative integers".into()));
        };
        if e < s {
            return Err(bt(format!("data_offsets [{s}, {e}) end before they begin")));
        }
        if e > data_len {
            return Err(bt(format!(
                "data_offsets [{s}, {e}) end past the end of the file: the data section has {data_len} bytes \
                 (byte offset {} of a {len}-byte file)",
                data_start + e
            )));
        }
        let nbytes = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|ne| ne.checked_mul(dtype.size() as u64))
            .ok_or_else(|| bt(format!("shape {shape:?} overflows")))?;
        if nbytes != e - s {
            return Err(bt(format!(
                "shape {shape:?} of {dtype} needs {nbytes} bytes but data_offsets [{s}, {e}) hold {}",
                e - s
            )));
        }
        tensors.push(StTensor { name, dtype, shape, file, start: data_start + s, len: nbytes });
    }
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (tensors[i].start, tensors[i].len));
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        if a.start + a.len > b.start {
            return Err(ConvertError::BadTensor {
                path: path.to_path_buf(),
                tensor: b.name.clone(),
                offset: entry_offset(text, &b.name),
                msg: format!("its data (byte offset {}) overlaps tensor `{}`", b.start, a.name),
            });
        }
    }
    // Second opinion from the reference implementation (also requires the
    // data to be contiguous and to end exactly at the end of the file).
    if let Err(e) = safetensors::SafeTensors::read_metadata(buf) {
        let covered: u64 = tensors.iter().map(|t| t.len).sum();
        return Err(bad(
            data_start,
            format!(
                "rejected by the safetensors crate: {e:?} (data section {data_len} bytes, tensors cover {covered})"
            ),
        ));
    }
    Ok((tensors, file_meta))
}

/// Parse and validate one safetensors file's header from its bytes
/// (`path` names it in errors): the tensors in header order and the
/// `__metadata__` strings. What [`SafetensorsModel::open`] checks per file.
pub fn parse_header(path: &Path, buf: &[u8]) -> Result<(Vec<StTensor>, FileMetadata)> {
    parse_file(path, buf, 0)
}

fn map_file(path: &Path) -> Result<Mmap> {
    let f = std::fs::File::open(path).map_err(|e| ConvertError::io(path, e))?;
    // SAFETY: the file is opened read-only; like every mmap-based model
    // loader we assume nobody truncates it while the map is alive.
    unsafe { Mmap::map(&f) }.map_err(|e| ConvertError::io(path, e))
}

/// Whether `path` looks like a safetensors file or index (by name).
pub fn is_safetensors_path(path: &Path) -> bool {
    let n = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
    n.ends_with(".safetensors") || n.ends_with(".safetensors.index.json")
}

impl SafetensorsModel {
    /// Open a `.safetensors` file, a `*.safetensors.index.json`, or a
    /// directory (its `model.safetensors.index.json` if present, else every
    /// `model*.safetensors` in name order, as llama.cpp's converter does).
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsModel> {
        let path = path.as_ref();
        if path.is_dir() {
            let index = path.join("model.safetensors.index.json");
            if index.is_file() {
                return Self::open_index(&index);
            }
            let mut parts = Vec::new();
            let rd = std::fs::read_dir(path).map_err(|e| ConvertError::io(path, e))?;
            for e in rd {
                let e = e.map_err(|e| ConvertError::io(path, e))?;
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with("model") && n.ends_with(".safetensors") {
                    parts.push(n);
                }
            }
            parts.sort();
            if parts.is_empty() {
                return Err(ConvertError::BadIndex {
                    path: path.to_path_buf(),
                    msg: "no model*.safetensors file and no model.safetensors.index.json".into(),
                });
            }
            let files: Vec<PathBuf> = parts.iter().map(|p| path.join(p)).collect();
            return Self::open_files(&files);
        }
        if path.to_string_lossy().ends_with(".index.json") {
            return Self::open_index(path);
        }
        Self::open_files(&[path.to_path_buf()])
    }

    fn open_files(paths: &[PathBuf]) -> Result<SafetensorsModel> {
        let mut files = Vec::new();
        let mut tensors: Vec<StTensor> = Vec::new();
        let mut by_name = HashMap::new();
        let mut file_metadata = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let mmap = map_file(p)?;
            let (ts, meta) = parse_file(p, &mmap, i)?;
            if i == 0 {
                file_metadata = meta;
            }
            for t in ts {
                if let Some(&j) = by_name.get(&t.name) {
                    let other: &StTensor = &tensors[j];
                    return Err(ConvertError::BadIndex {
                        path: p.clone(),
                        msg: format!("tensor `{}` is also in {}", t.name, paths[other.file].display()),
                    });
                }
                by_name.insert(t.name.clone(), tensors.len());
                tensors.push(t);
            }
            files.push(StFile { path: p.clone(), mmap });
        }
        Ok(SafetensorsModel { files, tensors, by_name, file_metadata })
    }

    fn open_index(index: &Path) -> Result<SafetensorsModel> {
        let bad = |msg: String| ConvertError::BadIndex { path: index.to_path_buf(), msg };
        let text = std::fs::read_to_string(index).map_err(|e| ConvertError::io(index, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let map = v.get("weight_map").and_then(Value::as_object).ok_or_else(|| bad("no `weight_map` object".into()))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut parts: Vec<String> = Vec::new();
        for (name, f) in map {
            let f = f.as_str().ok_or_else(|| bad(format!("weight_map entry of `{name}` is not a string")))?;
            let p = Path::new(f);
            if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(bad(format!("weight_map entry of `{name}` points outside the directory: {f}")));
            }
            if !parts.iter().any(|x| x == f) {
                parts.push(f.to_string());
            }
        }
        parts.sort();
        let paths: Vec<PathBuf> = parts.iter().map(|p| dir.join(p)).collect();
        for p in &paths {
            if !p.is_file() {
                return Err(bad(format!("shard {} listed in weight_map is missing", p.display())));
            }
        }
        let m = Self::open_files(&paths)?;
        let in_index: HashSet<&str> = map.keys().map(String::as_str).collect();
        let in_files: HashSet<&str> = m.tensors.iter().map(|t| t.name.as_str()).collect();
        let mut missing: Vec<&str> = in_index.difference(&in_files).copied().collect();
        let mut extra: Vec<&str> = in_files.difference(&in_index).copied().collect();
        missing.sort();
        extra.sort();
        if !missing.is_empty() || !extra.is_empty() {
            return Err(bad(format!(
                "weight_map and shards disagree: missing from the shards {missing:?}, not in weight_map {extra:?}"
            )));
        }
        for t in &m.tensors {
            let listed = map[&t.name].as_str().unwrap_or("");
            if dir.join(listed) != m.files[t.file].path {
                return Err(bad(format!(
                    "tensor `{}` is listed in {listed} but found in {}",
                    t.name,
                    m.files[t.file].path.display()
                )));
            }
        }
        Ok(m)
    }

    /// Tensors in file order, then header order.
    pub fn tensors(&self) -> &[StTensor] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&StTensor> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// Files (shards) in order.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path.as_path()).collect()
    }

    /// The file a tensor lives in.
    pub fn path_of(&self, t: &StTensor) -> &Path {
        &self.files[t.file].path
    }

    /// Raw little-endian bytes of a tensor (validated at open time).
    pub fn bytes(&self, t: &StTensor) -> &[u8] {
        &self.files[t.file].mmap[t.start as usize..(t.start + t.len) as usize]
    }

    /// An error for a tensor of an unsupported dtype, or `Ok`.
    pub fn check_float(&self, t: &StTensor) -> Result<()> {
        if t.dtype.is_float_supported() {
            Ok(())
        } else {
            Err(ConvertError::UnsupportedDtype {
                path: self.path_of(t).to_path_buf(),
                tensor: t.name.clone(),
                offset: t.start,
                dtype: t.dtype.name().to_string(),
            })
        }
    }

    /// The tensor's values as f32 (exact for all three float dtypes).
    pub fn read_f32(&self, t: &StTensor) -> Result<Vec<f32>> {
        self.check_float(t)?;
        let b = self.bytes(t);
        Ok(match t.dtype {
            Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect(),
            Dtype::F16 => {
                b.chunks_exact(2).map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
            }
            Dtype::BF16 => {
                b.chunks_exact(2).map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
            }
            Dtype::Other(..) => unreachable!("checked by check_float"),
        })
    }

    /// The tensor's raw 16-bit values (F16 or BF16 bit patterns).
    pub fn read_u16(&self, t: &StTensor) -> Vec<u16> {
        self.bytes(t).chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
    }
}

/// One row of a safetensors tensor listing (for `quantmix inspect`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct StTensorRow {
    pub name: String,
    /// Shape in ggml order (`shape[0]` is the row length), as GGUF tables show it.
    pub shape: Vec<u64>,
    /// The safetensors dtype name (`F32`, `BF16`, `I64`, …).
    #[serde(rename = "type")]
    pub dtype: String,
    pub bytes: u64,
    pub file: String,
}

impl SafetensorsModel {
    /// The tensor table in file order.
    pub fn rows(&self) -> Vec<StTensorRow> {
        self.tensors
            .iter()
            .map(|t| StTensorRow {
                name: t.name.clone(),
                shape: t.shape.iter().rev().copied().collect(),
                dtype: t.dtype.name().to_string(),
                bytes: t.len,
                file: self.files[t.file].path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            })
            .collect()
    }
}
