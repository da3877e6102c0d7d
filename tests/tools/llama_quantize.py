#!/usr/bin/env python3
"""Quantize with llama.cpp's own `llama_model_quantize` (PyPI llama-cpp-python), optionally with an
importance matrix, for byte-for-byte comparisons and speed ratios.

usage: llama_quantize.py SRC.gguf DST.gguf PRESET [--threads N] [--imatrix FILE.gguf] [--pure]
PRESET is a llama-quantize type name (Q4_K_M, Q2_K, ...); with --pure every tensor gets the preset's
base type (llama-quantize --pure; Q3_K and Q4_K/Q5_K name Q3_K_M, Q4_K_M, Q5_K_M). The imatrix (llama.cpp's GGUF format:
<name>.in_sum2 / <name>.counts) is turned into the importance vectors llama-quantize derives
(in_sum2 / count per matrix) and passed as llama_model_imatrix_data. Prints the seconds taken."""
import argparse
import ctypes
import sys
import time

import numpy as np
import llama_cpp
from gguf import GGUFReader

FTYPES = {"Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12,
          "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "F16": 1,
          "Q3_K": 12, "Q4_K": 15, "Q5_K": 17, "IQ4_NL": 25, "IQ4_XS": 30, "IQ3_XS": 22, "IQ3_XXS": 23,
          "IQ3_S": 26, "IQ3_M": 27, "IQ2_M": 29, "TQ1_0": 36, "TQ2_0": 37, "MXFP4_MOE": 38, "Q1_0": 40,
          "Q2_0": 41, "IQ2_XXS": 19, "IQ2_XS": 20, "IQ2_S": 28, "IQ1_S": 24, "IQ1_M": 31, "Q2_K_S": 21}


class ImatrixData(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.POINTER(ctypes.c_float)), ("size", ctypes.c_size_t)]


def load_imatrix(path):
    r = GGUFReader(path)
    t = {x.name: x for x in r.tensors}
    out = {}
    for name, x in t.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name[: -len(".in_sum2")]
        sums = np.asarray(x.data, dtype=np.float32).reshape(-1)
        counts = np.asarray(t[base + ".counts"].data, dtype=np.float32).reshape(-1)
        ne0 = sums.size // counts.size
        v = np.ones_like(sums)
        for j, c in enumerate(np.round(counts)):
            if c > 0:
                v[j * ne0:(j + 1) * ne0] = sums[j * ne0:(j + 1) * ne0] / np.float32(c)
        out[base] = np.ascontiguousarray(v, dtype=np.float32)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("preset")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--imatrix")
    ap.add_argument("--pure", action="store_true")
    a = ap.parse_args()
    p = llama_cpp.llama_model_quantize_default_params()
    p.nthread = a.threads
    p.ftype = FTYPES[a.preset.upper()]
    p.allow_requantize = True
    p.pure = a.pure
    keep = []
    if a.imatrix:
        vecs = load_imatrix(a.imatrix)
        arr = (ImatrixData * (len(vecs) + 1))()
        for i, (name, v) in enumerate(vecs.items()):
            nm = name.encode()
            keep += [nm, v]
            arr[i].name = nm
            arr[i].data = v.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            arr[i].size = v.size
        arr[len(vecs)].name = None
        keep.append(arr)
        p.imatrix = ctypes.cast(arr, type(p.imatrix))
    t = time.time()
    rc = llama_cpp.llama_model_quantize(a.src.encode(), a.dst.encode(), ctypes.byref(p))
    dt = time.time() - t
    if rc != 0:
        print(f"llama_model_quantize failed ({rc})", file=sys.stderr)
        return 1
    print(f"{dt:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
