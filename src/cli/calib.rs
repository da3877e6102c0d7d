//! Calibration text for `imatrix` and `sensitivity` (`--calibration FILE…`,
//! the shipped default set when none is given).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

/// The text to tokenize and how reports name it.
pub struct CalText {
    pub text: String,
    /// One line for reports.
    pub describe: String,
    /// The files it came from (the imatrix `datasets`).
    pub sources: Vec<String>,
}

pub fn load(paths: &[PathBuf]) -> Result<CalText> {
    if paths.is_empty() {
        bail!("give the calibration text with --calibration FILE (no default set yet)");
    }
    let mut texts = Vec::new();
    for p in paths {
        texts.push(std::fs::read_to_string(p).with_context(|| format!("reading calibration {}", p.display()))?);
    }
    let sources: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let text = texts.join("\n\n");
    Ok(CalText {
        describe: format!("calibration {} ({} KB)", sources.join(", "), text.len().div_ceil(1000)),
        text,
        sources,
    })
}
