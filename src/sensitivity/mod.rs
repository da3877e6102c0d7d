//! Measuring which tensors matter: importance matrices ([`imatrix`]).
pub mod imatrix;
