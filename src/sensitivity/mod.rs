//! Measuring which tensors matter: importance matrices ([`imatrix`]) and the
//! calibration text they are collected on ([`calibration`]).
pub mod calibration;
pub mod imatrix;
