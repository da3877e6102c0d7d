//! Scale searches shared by ggml's quantizers (`make_qx_quants`,
//! `make_q3_quants`, `make_qkx2_quants`, `make_qkx3_quants`,
//! `make_qp_quants`, `nearest_int`). OWNER: helper QA — stub.
