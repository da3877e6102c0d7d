//! The sensitivity cache of the one-command flow (`quantmix quantize MODEL
//! --budget …`): a measurement is kept under
//! `CACHE/sensitivity/<key>/sensitivity.json`, where the key hashes
//! everything the measurement depends on — the model's bytes (every shard),
//! the calibration text, the measuring settings, the importance matrix
//! given (its bytes), and the measurement's own version — so that a changed
//! model or setting is never served a stale file. An interrupted
//! measurement resumes from the same folder.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::job::SensitivityJob;
use super::SensitivityError;

/// Bumped whenever what a measurement computes changes (its numbers, not
/// only its format): old cache entries are then not reused.
pub const MEASUREMENT_VERSION: u32 = 2;

/// The sha256 of a file's bytes, in hex.
pub fn file_sha256(path: &Path) -> Result<String, SensitivityError> {
    let err = |source| SensitivityError::Io { path: path.to_path_buf(), source };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the key is made of (serialized, then hashed).
#[derive(Serialize)]
struct KeyParts<'a> {
    measurement_version: u32,
    quantmix_version: &'a str,
    /// sha256 of each model file (shards in order).
    model: Vec<String>,
    /// sha256 of the joined calibration text.
    calibration: String,
    ctx: usize,
    chunks: usize,
    types: Vec<&'a str>,
    /// sha256 of a given importance matrix, or the chunks it is collected on.
    imatrix: Option<String>,
    imatrix_chunks: usize,
    exact_activations: bool,
    anchors: Vec<&'a str>,
}

/// The cache key of `job` measuring the model stored in `model_files`
/// (resolve `job.exact_activations` first: `None` keys as off).
pub fn key(job: &SensitivityJob, model_files: &[PathBuf]) -> Result<String, SensitivityError> {
    let cal = super::calibration::Calibration::from_args(&job.calibration)?;
    let parts = KeyParts {
        measurement_version: MEASUREMENT_VERSION,
        quantmix_version: env!("CARGO_PKG_VERSION"),
        model: model_files.iter().map(|p| file_sha256(p)).collect::<Result<_, _>>()?,
        calibration: hex(&Sha256::digest(cal.joined().as_bytes())),
        ctx: job.ctx,
        chunks: job.chunks,
        types: job.types.iter().map(|t| t.name()).collect(),
        imatrix: job.imatrix.as_deref().map(file_sha256).transpose()?,
        imatrix_chunks: if job.imatrix.is_some() { 0 } else { job.imatrix_chunks },
        exact_activations: job.exact_activations.unwrap_or(false),
        anchors: job.anchors.iter().map(|t| t.name()).collect(),
    };
    let text = serde_json::to_string(&parts).map_err(|e| SensitivityError::Invalid(e.to_string()))?;
    Ok(hex(&Sha256::digest(text.as_bytes()))[..32].to_string())
}

/// Where the measurement with `key` lives under the cache root.
pub fn entry(root: &Path, key: &str) -> PathBuf {
    root.join("sensitivity").join(key).join("sensitivity.json")
}
