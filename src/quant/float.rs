//! F32, F16, BF16 "blocks" (block size 1). OWNER: helper QB — stub.
use super::{GgmlBlock, GgmlType};
use half::{bf16, f16};

macro_rules! stub_float {
    ($t:ty, $g:ident) => {
        impl GgmlBlock for $t {
            const TYPE: GgmlType = GgmlType::$g;
            const BLCK_SIZE: usize = 1;
            type VecDot = $t;
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
    };
}
stub_float!(f32, F32);
stub_float!(f16, F16);
stub_float!(bf16, BF16);
