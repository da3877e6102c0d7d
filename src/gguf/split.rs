//! Models split over several GGUF files (llama.cpp's `gguf-split` layout):
//! `<prefix>-00001-of-00003.gguf` … `<prefix>-00003-of-00003.gguf`, each
//! with `split.no` (0-based), `split.count` and `split.tensors.count`; the
//! model metadata lives in the first shard.
//!
//! [`GgufModel`] opens a single file or every shard of a split model and
//! presents one model: the first shard's metadata without the `split.*`
//! keys, all tensors in shard order, each tensor's bytes from its shard's
//! memory map.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{GgufError, GgufErrorKind, Result};
use super::reader::GgufFile;
use super::{Metadata, TensorInfo};

pub const KEY_SPLIT_NO: &str = "split.no";
pub const KEY_SPLIT_COUNT: &str = "split.count";
pub const KEY_SPLIT_TENSORS_COUNT: &str = "split.tensors.count";

/// Whether a metadata key describes the split (and is dropped on merge).
pub fn is_split_key(key: &str) -> bool {
    key.starts_with("split.")
}

/// The path of shard `index` (0-based) of `count` for a prefix, as
/// llama.cpp names them: `<prefix>-00001-of-00003.gguf`.
pub fn shard_path(prefix: &Path, index: usize, count: usize) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!("-{:05}-of-{:05}.gguf", index + 1, count));
    PathBuf::from(s)
}

/// Parse a shard file name: `(prefix, 0-based index, count)`, or `None` if
/// the name is not of the `<prefix>-NNNNN-of-MMMMM.gguf` form.
pub fn parse_shard_path(path: &Path) -> Option<(PathBuf, usize, usize)> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    // "<prefix>-NNNNN-of-MMMMM": the last 15 bytes are "-NNNNN-of-MMMMM".
    let n = stem.len();
    if n < 16 || !stem.is_char_boundary(n - 15) {
        return None;
    }
    let (prefix, tail) = stem.split_at(n - 15);
    let b = tail.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if b[0] != b'-' || &b[6..10] != b"-of-" || !digits(&b[1..6]) || !digits(&b[10..15]) {
        return None;
    }
    let no: usize = tail[1..6].parse().ok()?;
    let count: usize = tail[10..15].parse().ok()?;
    if no == 0 || count == 0 || no > count {
        return None;
    }
    Some((path.with_file_name(prefix), no - 1, count))
}

/// A model in one GGUF file or split over several. See the module documentation.
pub struct GgufModel {
    shards: Vec<GgufFile>,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    /// Shard index of each tensor (parallel to `tensors`).
    shard_of: Vec<usize>,
    by_name: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufModel")
            .field("shards", &self.shards.iter().map(|s| &s.path).collect::<Vec<_>>())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

fn split_u64(f: &GgufFile, key: &str) -> Result<Option<u64>> {
    match f.metadata().get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            GgufError::new(
                f.path(),
                None,
                GgufErrorKind::BadMetadata { key: key.into(), msg: format!("not an unsigned integer: {v:?}") },
            )
        }),
    }
}

impl GgufModel {
    /// Open a GGUF file; if it is one shard of a split model (by its
    /// `split.count` key), open every shard. Any shard's path may be given.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufModel> {
        let path = path.as_ref();
        let first = GgufFile::open(path)?;
        let count = split_u64(&first, KEY_SPLIT_COUNT)?.unwrap_or(1);
        if count <= 1 {
            return Self::from_shards(vec![first]);
        }
        let split_err = |p: &Path, msg: String| GgufError::new(p, None, GgufErrorKind::Split(msg));
        let Some((prefix, index, name_count)) = parse_shard_path(path) else {
            return Err(split_err(
                path,
                format!(
                    "{KEY_SPLIT_COUNT} is {count} but the file name is not of the form \
                     <prefix>-NNNNN-of-MMMMM.gguf, so the other shards cannot be found"
                ),
            ));
        };
        if name_count as u64 != count {
            return Err(split_err(path, format!("{KEY_SPLIT_COUNT} is {count} but the file name says {name_count}")));
        }
        let mut opened = Some((index, first));
        let mut shards = Vec::with_capacity(name_count);
        for i in 0..name_count {
            let f = match opened.take_if(|(j, _)| *j == i) {
                Some((_, f)) => f,
                None => GgufFile::open(shard_path(&prefix, i, name_count))?,
            };
            shards.push(f);
        }
        Self::from_shards(shards)
    }

    /// Assemble a model from already opened shards, in order (one file
    /// without `split.*` keys is a plain model). Checks `split.no`,
    /// `split.count`, `split.tensors.count` and that no tensor name repeats.
    pub fn from_shards(shards: Vec<GgufFile>) -> Result<GgufModel> {
        let n = shards.len();
        assert!(n > 0, "GgufModel::from_shards needs at least one file");
        let split_err = |p: &Path, msg: String| GgufError::new(p, None, GgufErrorKind::Split(msg));
        let mut expected_tensors = None;
        if n > 1 || shards[0].metadata().get(KEY_SPLIT_COUNT).is_some() {
            for (i, s) in shards.iter().enumerate() {
                let no = split_u64(s, KEY_SPLIT_NO)?
                    .ok_or_else(|| split_err(s.path(), format!("shard {} of {n} lacks {KEY_SPLIT_NO}", i + 1)))?;
                let count = split_u64(s, KEY_SPLIT_COUNT)?
                    .ok_or_else(|| split_err(s.path(), format!("shard {} of {n} lacks {KEY_SPLIT_COUNT}", i + 1)))?;
                if no != i as u64 || count != n as u64 {
                    return Err(split_err(
                        s.path(),
                        format!("{KEY_SPLIT_NO} = {no}, {KEY_SPLIT_COUNT} = {count}; expected {i} and {n}"),
                    ));
                }
            }
            expected_tensors = shards[0].metadata().get(KEY_SPLIT_TENSORS_COUNT).and_then(|v| v.as_u64());
        }
        let mut metadata = Metadata::default();
        for (k, v) in shards[0].metadata().iter() {
            if !is_split_key(k) {
                metadata.set(k, v.clone());
            }
        }
        let total: usize = shards.iter().map(|s| s.tensors().len()).sum();
        let mut tensors = Vec::with_capacity(total);
        let mut shard_of = Vec::with_capacity(total);
        let mut by_name = HashMap::with_capacity(total);
        for (i, s) in shards.iter().enumerate() {
            for t in s.tensors() {
                if by_name.insert(t.name.clone(), tensors.len()).is_some() {
                    return Err(GgufError::new(s.path(), None, GgufErrorKind::DuplicateTensor(t.name.clone())));
                }
                tensors.push(t.clone());
                shard_of.push(i);
            }
        }
        if let Some(e) = expected_tensors {
            if e != total as u64 {
                return Err(split_err(
                    shards[0].path(),
                    format!("{KEY_SPLIT_TENSORS_COUNT} is {e} but the {n} shards hold {total} tensors"),
                ));
            }
        }
        Ok(GgufModel { shards, metadata, tensors, shard_of, by_name })
    }

    /// The path the model was opened from (the first shard).
    pub fn path(&self) -> &Path {
        self.shards[0].path()
    }

    /// The files, in shard order (one for an unsplit model).
    pub fn shards(&self) -> &[GgufFile] {
        &self.shards
    }

    pub fn n_shards(&self) -> usize {
        self.shards.len()
    }

    pub fn is_split(&self) -> bool {
        self.shards.len() > 1
    }

    /// Model metadata (the first shard's, without `split.*` keys).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// All tensors, in shard order then file order. Offsets are relative to
    /// the data section of the tensor's shard (see [`GgufModel::shard_index`]).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The shard holding tensor number `i` (index into [`GgufModel::tensors`]).
    pub fn shard_index(&self, i: usize) -> usize {
        self.shard_of[i]
    }

    /// The bytes of one of this model's tensors, from its shard's memory map.
    ///
    /// # Panics
    /// If `t` is not one of [`GgufModel::tensors`] (a caller bug, not bad input).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let &i = self.by_name.get(&t.name).unwrap_or_else(|| panic!("tensor `{}` is not in this model", t.name));
        self.shards[self.shard_of[i]].tensor_data(&self.tensors[i])
    }

    /// Alignment of the first shard (`general.alignment` or 32).
    pub fn alignment(&self) -> u64 {
        self.shards[0].header.alignment
    }

    /// Total size of the files in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes().len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names() {
        let p = shard_path(Path::new("/m/model-Q4_K"), 1, 3);
        assert_eq!(p, Path::new("/m/model-Q4_K-00002-of-00003.gguf"));
        assert_eq!(parse_shard_path(&p), Some((PathBuf::from("/m/model-Q4_K"), 1, 3)));
        assert_eq!(parse_shard_path(Path::new("x-00001-of-00001.gguf")), Some((PathBuf::from("x"), 0, 1)));
        for bad in [
            "model.gguf",
            "-00001-of-00002.gguf",
            "m-00000-of-00002.gguf",
            "m-00003-of-00002.gguf",
            "m-0001-of-00002.gguf",
            "m-00001-of-00002.bin",
            "m-0000a-of-00002.gguf",
            "m_00001-of-00002.gguf",
            "m-00001_of_00002.gguf",
        ] {
            assert_eq!(parse_shard_path(Path::new(bad)), None, "{bad}");
        }
    }
}
