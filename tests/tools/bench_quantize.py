#!/usr/bin/env python3
"""Quantization speed against ggml's, per type, one thread, in one run (issue #13).

Times `quantmix bench kernels` (its quantize columns: without and with an importance vector) and
ggml's `ggml_quantize_chunk` (libggml-base of PyPI llama-cpp-python, the reference the golden
vectors come from; k-quant and legacy quantizers are plain C there) on the same rows: the
benchmark's deterministic signal, 4096 values per row, the same importance vector. Prints a
markdown table of MB/s of f32 input and the ratios (> 1: quantmix is faster), with the load
average before and after. Quote ratios from an idle machine.

usage: bench_quantize.py [QUANTMIX] [--types Q2_K,Q4_K,...] [--reps N]
"""
import argparse
import ctypes
import json
import math
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import llama_cpp

GGML = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11, "Q4_K": 12,
        "Q5_K": 13, "Q6_K": 14}
K_QUANTS = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"}
ROW = 4096


def signal(seed, n):
    """quantmix's `bench::kernels::signal`: xorshift noise plus a slow sine, in f32."""
    s = (seed * 0x9E3779B97F4A7C15) & (2**64 - 1) | 1
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        s ^= (s << 13) & (2**64 - 1)
        s ^= s >> 7
        s ^= (s << 17) & (2**64 - 1)
        u = np.float32((s >> 40) / float(1 << 24)) - np.float32(0.5)
        out[i] = u * np.float32(0.2) + np.float32(0.05) * np.float32(math.sin(np.float32(i) * np.float32(0.01)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("quantmix", nargs="?", default=str(Path(__file__).resolve().parents[2] / "target/release/quantmix"))
    ap.add_argument("--types", default="Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q4_0,Q4_1,Q5_0,Q5_1,Q8_0")
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    types = a.types.split(",")
    load0 = open("/proc/loadavg").read().split()[:3]

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    x = signal(1, 64 * ROW)
    imatrix = (np.float32(0.1) + np.float32(0.3) * (np.arange(ROW) % 7).astype(np.float32)).astype(np.float32)
    dst = np.zeros(x.nbytes, dtype=np.uint8)

    def ggml_mb_s(ty, imx):
        rows = 16 if ty in K_QUANTS else 64
        best = float("inf")
        for _ in range(a.reps):
            t = time.perf_counter()
            lib.ggml_quantize_chunk(GGML[ty], x.ctypes.data, dst.ctypes.data, 0, rows, ROW,
                                    None if imx is None else imx.ctypes.data)
            best = min(best, time.perf_counter() - t)
        return rows * ROW * 4 / best / 1e6

    env = dict(os.environ, RAYON_NUM_THREADS="1")
    ours = json.loads(subprocess.run([a.quantmix, "bench", "kernels", "--json", "--best", "--types", ",".join(types),
                                      "--values", str(64 * ROW)], check=True, capture_output=True, text=True,
                                     env=env).stdout)
    rows = {r["type"]: r for r in ours["rows"]}
    load1 = open("/proc/loadavg").read().split()[:3]
    print(f"quantize, 1 thread, MB/s of f32 input (best of repetitions); load average {' '.join(load0)} before, "
          f"{' '.join(load1)} after\n")
    print("| type | quantmix | ggml | ratio | quantmix, imatrix | ggml, imatrix | ratio |")
    print("|---|---|---|---|---|---|---|")
    for ty in types:
        g, gi = ggml_mb_s(ty, None), ggml_mb_s(ty, imatrix)
        q, qi = rows[ty]["quantize_mb_s"], rows[ty]["quantize_imatrix_mb_s"]
        print(f"| {ty} | {q:.1f} | {g:.1f} | {q / g:.2f}× | {qi:.1f} | {gi:.1f} | {qi / gi:.2f}× |")


if __name__ == "__main__":
    main()
