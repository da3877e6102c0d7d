#!/usr/bin/env python3
"""llama_perplexity.py (same usage and output) with llama.cpp's CPU weight repacking turned off
(`use_extra_bufts = false` in the model parameters).

With repacking on (llama.cpp's default), AVX2 machines multiply Q4_0, Q2_K, Q4_K, Q5_K and Q6_K
weights by interleaved GEMM kernels with their own activation quantization and summation order;
off, every type goes through ggml's plain `vec_dot` kernels, which quantmix's matmul reproduces.
On a model as sensitive as a random synthetic one, that difference alone moves perplexity by
up to ~0.5%.
"""
import os
import sys

import llama_cpp.llama_cpp as llama_cpp_lib

_default_params = llama_cpp_lib.llama_model_default_params


def _without_repack():
    p = _default_params()
    p.use_extra_bufts = False
    return p


llama_cpp_lib.llama_model_default_params = _without_repack
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_perplexity  # noqa: E402

if __name__ == "__main__":
    llama_perplexity.main()
