//! Dot products of the k-quants with Q8_K activations: scalar reference +
//! SIMD. OWNER: helper QC — stub.
use crate::quant::blocks::*;

pub fn vec_dot_q2k_q8k(_x: &[BlockQ2K], _y: &[BlockQ8K]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q3k_q8k(_x: &[BlockQ3K], _y: &[BlockQ8K]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q4k_q8k(_x: &[BlockQ4K], _y: &[BlockQ8K]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q5k_q8k(_x: &[BlockQ5K], _y: &[BlockQ8K]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q6k_q8k(_x: &[BlockQ6K], _y: &[BlockQ8K]) -> f32 {
    unimplemented!()
}
