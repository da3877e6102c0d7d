//! Measuring which tensors matter, and spending bits accordingly:
//! importance matrices ([`imatrix`] file formats, [`collect`] as
//! llama-imatrix collects them), the calibration text they are collected
//! on ([`calibration`]), per-tensor sensitivity ([`measure`]: KL-divergence
//! of the final logits when one tensor is quantized, and the
//! imatrix-weighted error proxy) and allocation under a budget
//! ([`allocate`]).
pub mod allocate;
pub mod budget;
pub mod calibration;
pub mod collect;
pub mod imatrix;
pub mod measure;
pub mod report;
pub mod schema;

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
    Interrupted,
    #[error("{0}")]
    Invalid(String),
}
