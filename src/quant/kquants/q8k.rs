//! Q8_K, the activation type of the k-quants. OWNER: helper QC — stub.
use crate::quant::blocks::*;
use crate::quant::{GgmlBlock, GgmlType};

impl GgmlBlock for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    const BLCK_SIZE: usize = QK_K;
    type VecDot = BlockQ8K;
    fn quantize_row(_src: &[f32], _dst: &mut [Self], _imatrix: Option<&[f32]>) {
        unimplemented!()
    }
    fn dequantize_row(_src: &[Self], _dst: &mut [f32]) {
        unimplemented!()
    }
    fn vec_dot(_x: &[Self], _y: &[Self]) -> f32 {
        unimplemented!()
    }
}
