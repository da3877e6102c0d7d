//! Measuring which tensors matter, and spending bits accordingly:
//! importance matrices ([`imatrix`] file formats, [`collect`] as
//! llama-imatrix collects them), the calibration text they are collected
//! on ([`calibration`]), per-tensor sensitivity ([`measure`]: KL-divergence
//! of the final logits when one tensor is quantized, and the
//! imatrix-weighted error proxy), the job that runs and resumes it
//! ([`job`]), its file format ([`schema`]) and reports ([`report`]).
//! Allocation under a budget from its measurements is
//! [`crate::plan::budget`].
pub mod cache;
pub mod calibration;
pub mod collect;
pub mod imatrix;
pub mod job;
pub mod measure;
pub mod report;
pub mod schema;

use std::path::PathBuf;

/// Errors of the sensitivity area.
#[derive(Debug, thiserror::Error)]
pub enum SensitivityError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Eval(#[from] crate::eval::EvalError),
    #[error(transparent)]
    Imatrix(#[from] imatrix::ImatrixError),
    #[error(transparent)]
    Quant(#[from] crate::quant::QuantError),
    #[error("interrupted")]
    Interrupted(#[from] crate::job::Interrupted),
    #[error("{0}")]
    Invalid(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("measuring `{tensor}`")]
    Tensor {
        tensor: String,
        #[source]
        source: Box<SensitivityError>,
    },
    #[error("reading the calibration text")]
    Calibration(#[from] calibration::CalibrationError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error(transparent)]
    Write(#[from] crate::fsutil::WriteError),
    #[error(transparent)]
    Plot(#[from] crate::report::plot::PlotError),
    #[error(transparent)]
    ThreadPool(#[from] crate::job::ThreadPoolError),
    #[error(transparent)]
    OutputPath(#[from] crate::fsutil::OutputPathError),
}
