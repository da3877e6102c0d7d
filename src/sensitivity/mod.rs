//! Measuring which tensors matter, and spending bits accordingly:
//! importance matrices ([`imatrix`]), the calibration text they are
//! collected on ([`calibration`]) and allocation under a budget
//! ([`allocate`]).
pub mod allocate;
pub mod budget;
pub mod calibration;
pub mod imatrix;
