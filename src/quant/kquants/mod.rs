//! k-quants Q2_K..Q6_K (super-blocks of 256). OWNER: helper QA — stub.
pub mod dot;
pub mod q8k;
use super::blocks::*;
use super::{GgmlBlock, GgmlType};

macro_rules! stub_k {
    ($b:ty, $g:ident, $dot:path) => {
        impl GgmlBlock for $b {
            const TYPE: GgmlType = GgmlType::$g;
            const BLCK_SIZE: usize = QK_K;
            type VecDot = BlockQ8K;
            fn quantize_row(_src: &[f32], _dst: &mut [Self], _imatrix: Option<&[f32]>) {
                unimplemented!()
            }
            fn dequantize_row(_src: &[Self], _dst: &mut [f32]) {
                unimplemented!()
            }
            fn vec_dot(x: &[Self], y: &[BlockQ8K]) -> f32 {
                $dot(x, y)
            }
        }
    };
}
stub_k!(BlockQ2K, Q2_K, dot::vec_dot_q2k_q8k);
stub_k!(BlockQ3K, Q3_K, dot::vec_dot_q3k_q8k);
stub_k!(BlockQ4K, Q4_K, dot::vec_dot_q4k_q8k);
stub_k!(BlockQ5K, Q5_K, dot::vec_dot_q5k_q8k);
stub_k!(BlockQ6K, Q6_K, dot::vec_dot_q6k_q8k);
