#!/usr/bin/env python3
"""Quantization speed against ggml's, per type, one thread, in one run (issue #13).

Times `quantmix bench kernels` (its quantize columns: without and with an importance vector) and
ggml's `ggml_quantize_chunk` (libggml-base of PyPI llama-cpp-python, the reference the golden
vectors come from; k-quant and legacy quantizers are plain C there) on the same rows: the
benchmark's deterministic signal, 4096 values per row, the same importance vector. Prints a
markdown table of MB/s of f32 input and the ratios (> 1: quantmix is faster), with the load
average before and after. Quote ratios from an idle machine.

With --model SRC.gguf it times whole models instead: `quantmix quantize SRC --type T` against
llama.cpp's `llama_model_quantize` with `pure` (llama-quantize --pure; tests/tools/llama_quantize.py),
both on --threads threads (default 2), wall time, best of --reps runs (default 3), the outputs
checked to hold the same tensors byte for byte.

usage: bench_quantize.py [QUANTMIX] [--types Q2_K,Q4_K,...|all] [--reps N] [--model SRC.gguf [--threads N]]
"""
import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import llama_cpp

GGML = {"F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11, "Q4_K": 12,
        "Q5_K": 13, "Q6_K": 14, "IQ2_XXS": 16, "IQ2_XS": 17, "IQ3_XXS": 18, "IQ1_S": 19, "IQ4_NL": 20,
        "IQ3_S": 21, "IQ2_S": 22, "IQ4_XS": 23, "IQ1_M": 29, "BF16": 30, "TQ1_0": 34, "TQ2_0": 35, "MXFP4": 39,
        "Q1_0": 41}
# Slower quantizers (searches over scales or grids): fewer rows per timing.
SLOW = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S", "IQ4_XS", "IQ1_M"}
EVERY = ",".join(GGML)
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
    ap.add_argument("--types", default="Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,Q4_0,Q4_1,Q5_0,Q5_1,Q8_0",
                    help=f"comma-separated, or 'all' ({EVERY}) for the per-type kernels; the whole-model "
                         "mode takes only names llama_quantize.py knows")
    ap.add_argument("--reps", type=int, default=0, help="default: 7 per kernel, 3 per model")
    ap.add_argument("--model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--imatrix", help="whole models: quantize with this importance matrix (llama.cpp GGUF), both "
                                      "tools; needed for the types llama-quantize makes only with one")
    a = ap.parse_args()
    types = (EVERY if a.types == "all" else a.types).split(",")
    if a.model:
        return whole_models(a, types)
    a.reps = a.reps or 7
    load0 = open("/proc/loadavg").read().split()[:3]

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    x = signal(1, 64 * ROW)
    imatrix = (np.float32(0.1) + np.float32(0.3) * (np.arange(ROW) % 7).astype(np.float32)).astype(np.float32)
    dst = np.zeros(x.nbytes, dtype=np.uint8)

    def ggml_mb_s(ty, imx):
        rows = 16 if ty in SLOW else 64
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
        gi = ggml_mb_s(ty, imatrix)
        q, qi = rows[ty]["quantize_mb_s"], rows[ty]["quantize_imatrix_mb_s"]
        if q is None:  # ggml quantizes this type only with an importance matrix
            plain = "— | — | —"
        else:
            g = ggml_mb_s(ty, None)
            plain = f"{q:.1f} | {g:.1f} | {q / g:.2f}×"
        print(f"| {ty} | {plain} | {qi:.1f} | {gi:.1f} | {qi / gi:.2f}× |")


def same_tensors(a, b):
    """Every tensor with the same name, type and bytes (the files themselves differ: llama.cpp writes the
    output tensors first, quantmix adds its provenance keys)."""
    from gguf import GGUFReader
    ta = {t.name: (t.tensor_type, t.data.tobytes()) for t in GGUFReader(a).tensors}
    tb = {t.name: (t.tensor_type, t.data.tobytes()) for t in GGUFReader(b).tensors}
    return ta == tb


def whole_models(a, types):
    import tempfile
    reps = a.reps or 3
    imx = ["--imatrix", a.imatrix] if a.imatrix else []
    tool = Path(__file__).resolve().parent / "llama_quantize.py"
    load0 = open("/proc/loadavg").read().split()[:3]
    lines = []
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(a.model))) as tmp:
        for ty in types:
            ours_out, ref_out = os.path.join(tmp, f"ours-{ty}.gguf"), os.path.join(tmp, f"ref-{ty}.gguf")
            t_ours = t_ref = float("inf")
            for _ in range(reps):
                t = time.perf_counter()
                subprocess.run([a.quantmix, "quantize", a.model, "--type", ty, "-o", ours_out, "--quiet",
                                "--threads", str(a.threads)] + imx, check=True, stdout=subprocess.DEVNULL)
                t_ours = min(t_ours, time.perf_counter() - t)
                out = subprocess.run([sys.executable, str(tool), a.model, ref_out, ty, "--pure", "--threads",
                                      str(a.threads)] + imx, check=True, capture_output=True, text=True).stdout
                t_ref = min(t_ref, float(out.split()[-1]))
            same = same_tensors(ours_out, ref_out)
            lines.append(f"| {ty} | {t_ours:.2f} | {t_ref:.2f} | {t_ref / t_ours:.2f}× | {'yes' if same else 'NO'} |")
            os.remove(ours_out)
            os.remove(ref_out)
    load1 = open("/proc/loadavg").read().split()[:3]
    size = os.path.getsize(a.model) / 2**20
    with_imx = f", importance matrix {os.path.basename(a.imatrix)}" if a.imatrix else ""
    print(f"whole-model quantization of {os.path.basename(a.model)} ({size:.0f} MiB){with_imx}, {a.threads} threads, "
          f"seconds (best of {reps}); load average {' '.join(load0)} before, {' '.join(load1)} after\n")
    print("| type | quantmix s | llama.cpp s | speed ratio | same tensors |")
    print("|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    main()
