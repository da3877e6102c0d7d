//! Dot products of the legacy types with Q8_0 / Q8_1 activations:
//! scalar reference + SIMD. OWNER: helper QC — stub.
use crate::quant::blocks::*;

pub fn vec_dot_q4_0_q8_0(_x: &[BlockQ4_0], _y: &[BlockQ8_0]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q4_1_q8_1(_x: &[BlockQ4_1], _y: &[BlockQ8_1]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q5_0_q8_0(_x: &[BlockQ5_0], _y: &[BlockQ8_0]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q5_1_q8_1(_x: &[BlockQ5_1], _y: &[BlockQ8_1]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q8_0_q8_0(_x: &[BlockQ8_0], _y: &[BlockQ8_0]) -> f32 {
    unimplemented!()
}
pub fn vec_dot_q8_1_q8_1(_x: &[BlockQ8_1], _y: &[BlockQ8_1]) -> f32 {
    unimplemented!()
}
