//! Measuring which tensors matter, and spending bits accordingly:
//! importance matrices ([`imatrix`]) and allocation under a budget
//! ([`allocate`]).
pub mod allocate;
pub mod budget;
pub mod imatrix;
