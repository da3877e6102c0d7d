#!/usr/bin/env python3
"""Benchmark tooling (not a product feature): make a continuous F16 source from a quantized GGUF.

Requantizing SmolLM2's published Q4_1 file says little about allocation (keeping Q4_1 is lossless),
so the sensitivity/allocation benchmarks start from an F16 model made by adding, to every
dequantized weight, uniform noise over its quantization cell: width = the scale `d` of the weight's
block (Q4_K/Q6_K: of its sub-block, `d·scale`), centred on the dequantized value, so the noisy value
rounds back to the same code.
F32 tensors (norms) are copied unchanged. Fixed seed: the output is reproducible.

usage: make_noisy_f16.py IN.gguf OUT.gguf [--seed 1234]
Needs the PyPI package `gguf` (installed in the venv by .ci/setup).
"""
import argparse
import sys

import numpy as np
import gguf
from gguf.quants import dequantize

# Byte offset of the f16 scale `d` in each block, and block geometry, for the source types we accept.
BLOCKS = {
    gguf.GGMLQuantizationType.Q4_0: (32, 18, 0),
    gguf.GGMLQuantizationType.Q4_1: (32, 20, 0),
    gguf.GGMLQuantizationType.Q5_0: (32, 22, 0),
    gguf.GGMLQuantizationType.Q5_1: (32, 24, 0),
    gguf.GGMLQuantizationType.Q8_0: (32, 34, 0),
}


def q4k_steps(data):
    """Q4_K (256 values, 144 bytes): the cell width of each 32-value sub-block, d·sc_j, with
    the 6-bit scales packed as ggml's get_scale_min_k4 reads them."""
    raw = data.reshape(-1, 144)
    d = raw[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = raw[:, 4:16].astype(np.int32)
    sc = np.empty((raw.shape[0], 8), dtype=np.float32)
    for j in range(8):
        sc[:, j] = (q[:, j] & 63) if j < 4 else ((q[:, j + 4] & 0xF) | ((q[:, j - 4] >> 6) << 4))
    return 256, d * sc


def q6k_steps(data):
    """Q6_K (256 values, 210 bytes): the cell width of each 16-value sub-block, d·scale_j (the
    i-th group of 16 values uses scales[i])."""
    raw = data.reshape(-1, 210)
    sc = raw[:, 192:208].copy().view(np.int8).astype(np.float32)
    d = raw[:, 208:210].copy().view(np.float16).astype(np.float32)
    return 256, d * sc


KQUANT_STEPS = {gguf.GGMLQuantizationType.Q4_K: q4k_steps, gguf.GGMLQuantizationType.Q6_K: q6k_steps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    r = gguf.GGUFReader(a.src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(a.dst, arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        vtype = f.types[0]
        if f.name == "general.file_type":
            w.add_key_value(f.name, 1, gguf.GGUFValueType.UINT32)  # LLAMA_FTYPE_MOSTLY_F16
            continue
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(f.name, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        shape = [int(x) for x in t.shape]  # ggml order: shape[0] = row length
        if t.tensor_type == gguf.GGMLQuantizationType.F32:
            w.add_tensor(t.name, np.asarray(t.data, dtype=np.float32).reshape(list(reversed(shape))))
            continue
        if t.tensor_type in BLOCKS:
            bs, nbytes, off = BLOCKS[t.tensor_type]
            raw = np.asarray(t.data, dtype=np.uint8).reshape(-1, nbytes)
            step = raw[:, off:off + 2].copy().view(np.float16).astype(np.float32).reshape(-1, 1)
        elif t.tensor_type in KQUANT_STEPS:
            bs, step = KQUANT_STEPS[t.tensor_type](np.asarray(t.data, dtype=np.uint8))
        else:
            print(f"{a.src}: tensor {t.name}: unsupported source type {t.tensor_type.name}", file=sys.stderr)
            return 1
        x = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(-1, bs)
        # step: one cell width per block (legacy) or per sub-block (k-quants), broadcast over its values
        step = np.repeat(np.abs(step), bs // step.shape[1], axis=1)
        noise = (rng.random(x.shape, dtype=np.float32) - 0.5) * step
        y = (x + noise).astype(np.float16).reshape(list(reversed(shape)))
        w.add_tensor(t.name, y)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
