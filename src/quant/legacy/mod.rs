//! Legacy block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1. OWNER: helper QB — stub.
pub mod dot;
use super::blocks::*;
use super::{GgmlBlock, GgmlType};

macro_rules! stub_legacy {
    ($b:ty, $g:ident, $vd:ty, $dot:path) => {
        impl GgmlBlock for $b {
            const TYPE: GgmlType = GgmlType::$g;
            const BLCK_SIZE: usize = 32;
            type VecDot = $vd;
            fn quantize_row(_src: &[f32], _dst: &mut [Self], _imatrix: Option<&[f32]>) {
                unimplemented!()
            }
            fn dequantize_row(_src: &[Self], _dst: &mut [f32]) {
                unimplemented!()
            }
            fn vec_dot(x: &[Self], y: &[$vd]) -> f32 {
                $dot(x, y)
            }
        }
    };
}
stub_legacy!(BlockQ4_0, Q4_0, BlockQ8_0, dot::vec_dot_q4_0_q8_0);
stub_legacy!(BlockQ4_1, Q4_1, BlockQ8_1, dot::vec_dot_q4_1_q8_1);
stub_legacy!(BlockQ5_0, Q5_0, BlockQ8_0, dot::vec_dot_q5_0_q8_0);
stub_legacy!(BlockQ5_1, Q5_1, BlockQ8_1, dot::vec_dot_q5_1_q8_1);
stub_legacy!(BlockQ8_0, Q8_0, BlockQ8_0, dot::vec_dot_q8_0_q8_0);
stub_legacy!(BlockQ8_1, Q8_1, BlockQ8_1, dot::vec_dot_q8_1_q8_1);
