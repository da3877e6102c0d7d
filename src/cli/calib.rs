//! Calibration text for `imatrix` and `sensitivity` (`--calibration FILE…`,
//! the shipped default set when none is given).

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::sensitivity::calibration::Calibration;

/// The text to tokenize and how reports name it.
pub struct CalText {
    pub text: String,
    /// One line for reports.
    pub describe: String,
    /// The files it came from (the imatrix `datasets`).
    pub sources: Vec<String>,
}

pub fn load(paths: &[PathBuf]) -> Result<CalText> {
    let cal = Calibration::from_args(paths).context("reading the calibration text")?;
    Ok(CalText { text: cal.joined(), describe: cal.describe(), sources: cal.sources.clone() })
}
