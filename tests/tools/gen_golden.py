#!/usr/bin/env python3
"""Generate fixtures/golden/extra-quants.gguf: seeded input rows and the bytes
ggml's own quantizer (`ggml_quantize_chunk` in libggml-base, called through
ctypes) produces for them, for the 14 types quantmix must match byte for byte.

Layout (same as golden/ggml-quants.gguf): the string array `golden.cases`
names the cases; for each case `<case>.input` (F32, rows x n_per_row),
optionally `<case>.imatrix` (F32, one importance weight per column) and
`<case>.<type>` with ggml's bytes. Types whose row length does not fit the
case (k-quants need multiples of 256) are left out. The float conversions
have no search and ignore importance weights, so to stay small only the
cases in FLOAT_CASES (the value ranges that matter for them) carry f16/bf16.

Run with the project's venv (llama-cpp-python 0.3.36 = ggml 0.25.3, gguf-py):
    ~/.cache/quantmix/venv/bin/python tests/tools/gen_golden.py [out.gguf] [--seed S] [--scale K]

`--scale K` multiplies every case's row count (a large file for an offline
check: `QUANTMIX_GOLDEN_EXTRA=out.gguf cargo test --release --test golden_kquants`);
the committed fixture is the default (seed 20261125, scale 1).
"""

import argparse
import ctypes
import os
import sys
from pathlib import Path

import numpy as np
import gguf
import llama_cpp

_args = argparse.ArgumentParser(description="generate golden quantization vectors with ggml")
_args.add_argument("out", nargs="?", type=Path,
                   default=Path(__file__).resolve().parents[2] / "fixtures/golden/extra-quants.gguf")
_args.add_argument("--seed", type=int, default=20261125)
_args.add_argument("--scale", type=float, default=1.0)
_args.add_argument("--types", default=None,
                   help="comma-separated type suffixes (default: the 14 of extra-quants.gguf)")
ARGS = _args.parse_args()
SEED = ARGS.seed
OUT = ARGS.out
SMOLLM2 = Path(os.environ.get("QUANTMIX_CACHE", Path.home() / ".cache/quantmix")) / "models/SmolLM2-135M-Instruct.Q4_1.gguf"

Q = gguf.GGMLQuantizationType
# suffix -> (ggml type id, values per block, bytes per block). ggml's ids and sizes (ggml.h,
# ggml-common.h); gguf-py 0.19.0 does not know every newer type, so they are spelled out here.
ALL_TYPES = {
    "q8_0": (8, 32, 34), "q4_0": (2, 32, 18), "q4_1": (3, 32, 20), "q5_0": (6, 32, 22), "q5_1": (7, 32, 24),
    "q2_k": (10, 256, 84), "q3_k": (11, 256, 110), "q4_k": (12, 256, 144), "q5_k": (13, 256, 176),
    "q6_k": (14, 256, 210), "f16": (1, 1, 2), "bf16": (30, 1, 2), "iq4_nl": (20, 32, 18), "iq4_xs": (23, 256, 136),
    "iq2_xxs": (16, 256, 66), "iq2_xs": (17, 256, 74), "iq3_xxs": (18, 256, 98), "iq1_s": (19, 256, 50),
    "iq3_s": (21, 256, 110), "iq2_s": (22, 256, 82), "iq1_m": (29, 256, 56), "tq1_0": (34, 256, 54),
    "tq2_0": (35, 256, 66), "mxfp4": (39, 32, 17), "q1_0": (41, 128, 18), "q2_0": (42, 64, 18),
}
# The default: the 14 types of fixtures/golden/extra-quants.gguf (rerunning without --types
# reproduces it byte for byte). Other files are made with --types and their own output path.
DEFAULT_TYPES = "q8_0,q4_0,q4_1,q5_0,q5_1,q2_k,q3_k,q4_k,q5_k,q6_k,f16,bf16,iq4_nl,iq4_xs"
TYPES = [(t, ALL_TYPES[t]) for t in (ARGS.types or DEFAULT_TYPES).split(",")]

lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
lib.ggml_quantize_chunk.restype = ctypes.c_size_t
lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                                    ctypes.c_int64, ctypes.c_void_p]
lib.ggml_quantize_init.argtypes = [ctypes.c_int]
lib.ggml_quantize_init.restype = None
lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool


def ggml_quantize(qtype, x, imatrix):
    """ggml's bytes for rows `x` (float32, rows x n) with optional per-column imatrix;
    qtype = (ggml id, block values, block bytes)."""
    rows, n = x.shape
    qtype, blck, tsize = qtype
    row_bytes = n // blck * tsize
    assert imatrix is not None or not lib.ggml_quantize_requires_imatrix(qtype)
    lib.ggml_quantize_init(qtype)  # builds the i-quant grids once (ggml_quantize_chunk calls it too)
    x = np.ascontiguousarray(x, dtype=np.float32)
    dst = np.zeros(rows * row_bytes, dtype=np.uint8)
    w = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32)
    got = lib.ggml_quantize_chunk(int(qtype), x.ctypes.data, dst.ctypes.data, 0, rows, n,
                                  None if w is None else w.ctypes.data)
    assert got == rows * row_bytes, (qtype, got, rows * row_bytes)
    return dst.reshape(rows, row_bytes)


# ggml's grid-search i-quants abort the process (GGML_ASSERT in iq3_find_best_neighbour and its
# siblings) on inputs whose search meets only infinite or NaN distances (values near 3e38).
ABORTING = {"iq3_xxs", "iq3_s", "iq2_xxs", "iq2_xs", "iq2_s", "iq1_s", "iq1_m"}


def ggml_quantize_or_none(suffix, qtype, x, imatrix):
    """ggml_quantize, in a forked child for the types in ABORTING: None when ggml aborts
    on this input (the case is then left out for that type)."""
    if suffix not in ABORTING:
        return ggml_quantize(qtype, x, imatrix)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # ggml's abort prints a backtrace
        os.dup2(devnull, 2)
        q = ggml_quantize(qtype, x, imatrix).tobytes()
        with os.fdopen(wfd, "wb") as f:
            f.write(q)
        os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    rows, n = x.shape
    return np.frombuffer(data, dtype=np.uint8).reshape(rows, n // qtype[1] * qtype[2]).copy()


rng = np.random.default_rng(SEED)


def row_scales(rows, lo, hi):
    return (10.0 ** rng.uniform(lo, hi, size=(rows, 1))).astype(np.float32)


# ---------------------------------------------------------------- inputs

def gauss_scales(rows, n):
    return rng.standard_normal((rows, n)) * row_scales(rows, -4, 2)


def laplace(rows, n):
    return rng.laplace(0, 1, (rows, n)) * row_scales(rows, -3, 1)


def student_t2(rows, n):
    return rng.standard_t(2, (rows, n)) * row_scales(rows, -2, 0)


def uniform_sym(rows, n):
    return rng.uniform(-1, 1, (rows, n)) * row_scales(rows, -2, 1)


def uniform_pos(rows, n):
    return rng.uniform(0.05, 2, (rows, n)) * row_scales(rows, -1, 1)


def uniform_neg(rows, n):
    return -rng.uniform(0.05, 2, (rows, n)) * row_scales(rows, -1, 1)


def outlier_cols(rows, n):
    x = rng.standard_normal((rows, n)) * 0.02
    cols = rng.choice(n, size=max(2, n // 64), replace=False)
    x[:, cols] *= rng.uniform(20, 200, size=len(cols))
    return x


def sparse(rows, n):
    x = rng.standard_normal((rows, n)) * row_scales(rows, -2, 0)
    for r in range(rows):
        frac = rng.uniform(0.3, 0.995)
        x[r, rng.random(n) < frac] = 0.0
        # whole 16- and 32-value groups of zeros
        for _ in range(rng.integers(0, n // 64 + 1)):
            g = int(rng.choice([16, 32]))
            s = int(rng.integers(0, n // g)) * g
            x[r, s:s + g] = 0.0
    return x


def const_rows(rows, n):
    x = np.zeros((rows, n))
    for r in range(rows):
        c = float(rng.choice([-1, 1]) * 10.0 ** rng.uniform(-3, 2))
        kind = r % 5
        if kind == 0:
            x[r] = c
        elif kind == 1:
            x[r] = c + rng.standard_normal(n) * abs(c) * 1e-6
        elif kind == 2:  # constant per 16-value group
            x[r] = np.repeat(rng.standard_normal(n // 16) * abs(c), 16)
        elif kind == 3:  # constant per 32-value group, some zero
            v = rng.standard_normal(n // 32) * abs(c)
            v[rng.random(n // 32) < 0.3] = 0.0
            x[r] = np.repeat(v, 32)
        else:  # all zero but one value
            x[r, rng.integers(0, n)] = c
    return x


def grid_ties(rows, n):
    """Values on integer / half-integer grids times powers of two: many exact
    rounding ties in the scale searches."""
    x = np.zeros((rows, n))
    for r in range(rows):
        nmax = int(rng.choice([1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 127]))
        step = float(2.0 ** rng.integers(-8, 4))
        v = rng.integers(-nmax, nmax + 1, n).astype(np.float64)
        if r % 3 == 1:
            v += 0.5
        elif r % 3 == 2:
            v = np.abs(v)
        x[r] = v * step
    return x


def tiny(rows, n):
    x = np.zeros((rows, n))
    for r in range(rows):
        e = [-12, -15, -16, -20, -30, -37, -39, -42][r % 8]
        x[r] = rng.standard_normal(n) * 10.0 ** e
    return x


def huge(rows, n):
    x = rng.standard_normal((rows, n)) * 1e4
    x[1::2] = rng.uniform(-3e4, 3e4, (rows // 2, n))
    return x


def mixed_scale_blocks(rows, n):
    """Each 16-value group with its own magnitude (10^-3..10^3): sub-block
    scales that round to zero against the super-block maximum."""
    s = 10.0 ** rng.uniform(-3, 3, size=(rows, n // 16, 1))
    return (rng.standard_normal((rows, n // 16, 16)) * s).reshape(rows, n)


def one_sided_blocks(rows, n):
    """Groups that are all positive, all negative, or one-sided with a single
    large value of the other sign; and equal-magnitude max/min ties."""
    x = np.abs(rng.standard_normal((rows, n // 16, 16)))
    sign = rng.choice([-1.0, 1.0], size=(rows, n // 16, 1))
    x = x * sign
    flip = rng.random((rows, n // 16)) < 0.2
    idx = rng.integers(0, 16, size=(rows, n // 16))
    for r, g in zip(*np.nonzero(flip)):
        x[r, g, idx[r, g]] = -sign[r, g, 0] * 4.0
    tie = rng.random((rows, n // 16)) < 0.2
    for r, g in zip(*np.nonzero(tie)):
        m = np.abs(x[r, g]).max()
        x[r, g, 0], x[r, g, 15] = -m, m
    return x.reshape(rows, n) * row_scales(rows, -2, 1)


def extreme(rows, n):
    """Magnitudes up to 3e38 (f16 scales overflow to infinity, the searches
    meet inf and NaN), mixed 1e30/1e-30 rows, single huge values in small
    rows, and all-subnormal rows."""
    x = np.zeros((rows, n))
    for r in range(rows):
        k = r % 6
        if k == 0:
            x[r] = rng.standard_normal(n) * 10.0 ** rng.uniform(5, 37)
        elif k == 1:
            x[r] = rng.standard_normal(n) * 1e30
            x[r, ::7] *= 1e-60
        elif k == 2:
            x[r] = rng.standard_normal(n) * 6e4
        elif k == 3:
            x[r] = rng.uniform(-3e38, 3e38, n)
        elif k == 4:
            x[r] = rng.standard_normal(n) * 1e-3
            x[r, rng.integers(0, n, 3)] = 1e25
        else:
            x[r] = rng.standard_normal(n) * 10.0 ** rng.uniform(-45, -38)
    return np.clip(x, -3e38, 3e38)


_smol = None


def smollm2_tensor(name):
    global _smol
    if _smol is None:
        _smol = {t.name: t for t in gguf.GGUFReader(str(SMOLLM2)).tensors}
    t = _smol[name]
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)


def smollm2_rows(names, rows, n):
    """`rows` rows of length `n` from SmolLM2's dequantized tensors (rows of
    the tensors re-chunked to length n), picked at random."""
    pool = np.concatenate([smollm2_tensor(nm).reshape(-1) for nm in names])
    pool = pool[: len(pool) // n * n].reshape(-1, n)
    return pool[np.sort(rng.choice(len(pool), size=rows, replace=False))]


# ---------------------------------------------------------------- imatrix

def imat_lognormal(n):
    return np.exp(rng.standard_normal(n) * 1.5)


def imat_uniform(n):
    return rng.uniform(0, 1, n)


def imat_with_zeros(n):
    w = np.exp(rng.standard_normal(n))
    w[rng.random(n) < 0.3] = 0.0
    w[: 16] = 0.0  # a whole zero-weight group
    return w


def imat_dynamic(n):
    return 10.0 ** rng.uniform(-6, 6, n)


def imat_ones(n):
    return np.ones(n)


def imat_realistic(n):
    # mean squared activations: mostly small, a few hot channels
    w = rng.gamma(0.5, 1.0, n) * 1e-2
    hot = rng.choice(n, size=max(1, n // 100), replace=False)
    w[hot] *= rng.uniform(50, 500, len(hot))
    return w


# ---------------------------------------------------------------- cases

SMOL_FFN_DOWN = [f"blk.{i}.ffn_down.weight" for i in (0, 7, 15, 29)]
SMOL_ATTN = [f"blk.{i}.attn_{p}.weight" for i in (0, 14, 29) for p in ("q", "k", "v", "output")]

# (name, generator, rows, n_per_row, imatrix generator or None)
CASES = [
    ("gauss_scales", gauss_scales, 160, 256, None),
    ("gauss_wide", gauss_scales, 16, 1024, None),
    ("laplace", laplace, 50, 512, None),
    ("student_t2", student_t2, 70, 256, None),
    ("uniform_sym", uniform_sym, 40, 256, None),
    ("uniform_pos", uniform_pos, 30, 256, None),
    ("uniform_neg", uniform_neg, 30, 256, None),
    ("outlier_cols", outlier_cols, 30, 768, None),
    ("sparse", sparse, 40, 512, None),
    ("const_rows", const_rows, 50, 256, None),
    ("grid_ties", grid_ties, 100, 256, None),
    ("tiny", tiny, 40, 256, None),
    ("huge", huge, 40, 256, None),
    ("mixed_scale_blocks", mixed_scale_blocks, 40, 512, None),
    ("one_sided_blocks", one_sided_blocks, 60, 256, None),
    ("smollm2_ffn_down", lambda r, n: smollm2_rows(SMOL_FFN_DOWN, r, n), 30, 1536, None),
    ("smollm2_attn", lambda r, n: smollm2_rows(SMOL_ATTN, r, n), 12, 2304, None),
    ("smollm2_embd_576", lambda r, n: smollm2_rows(["token_embd.weight"], r, n), 60, 576, None),
    ("gauss_576", gauss_scales, 30, 576, None),
    ("gauss_imat", gauss_scales, 160, 256, imat_lognormal),
    ("laplace_imat", laplace, 40, 512, imat_uniform),
    ("student_t2_imat", student_t2, 50, 256, imat_realistic),
    ("outlier_cols_imat", outlier_cols, 30, 768, imat_realistic),
    ("sparse_imat", sparse, 40, 512, imat_lognormal),
    ("imat_zeros", gauss_scales, 60, 256, imat_with_zeros),
    ("imat_dynamic", laplace, 50, 256, imat_dynamic),
    ("const_rows_imat", const_rows, 40, 256, imat_lognormal),
    ("grid_ties_imat", grid_ties, 80, 256, imat_ones),
    ("tiny_imat", tiny, 30, 256, imat_lognormal),
    ("huge_imat", huge, 30, 256, imat_uniform),
    ("mixed_scale_blocks_imat", mixed_scale_blocks, 40, 512, imat_lognormal),
    ("one_sided_blocks_imat", one_sided_blocks, 50, 256, imat_with_zeros),
    ("smollm2_ffn_down_imat", lambda r, n: smollm2_rows(SMOL_FFN_DOWN, r, n), 25, 1536, imat_realistic),
    ("smollm2_embd_576_imat", lambda r, n: smollm2_rows(["token_embd.weight"], r, n), 40, 576, imat_realistic),
    ("gauss_576_imat", gauss_scales, 30, 576, imat_dynamic),
    # appended last so that the cases above keep their random streams
    ("extreme", extreme, 36, 256, None),
    ("extreme_imat", extreme, 36, 256, imat_lognormal),
]


FLOAT_CASES = {"gauss_scales", "const_rows", "grid_ties", "tiny", "huge", "mixed_scale_blocks", "smollm2_embd_576",
               "extreme"}


def main():
    if not SMOLLM2.exists():
        sys.exit(f"SmolLM2 GGUF not found at {SMOLLM2} (run .ci/setup)")
    tmp = OUT.with_suffix(".gguf.part")
    w = gguf.GGUFWriter(str(tmp), "golden")
    w.add_string("golden.source", "ggml_quantize_chunk from libggml-base 0.25.3 (llama.cpp 0c1e570) via ctypes, "
                 "tests/tools/gen_golden.py")
    w.add_uint32("golden.seed", SEED)
    names = []
    total_rows = 0
    for name, gen, rows, n, imat_gen in CASES:
        rows = max(1, round(rows * ARGS.scale))
        x = np.asarray(gen(rows, n), dtype=np.float32)
        assert x.shape == (rows, n) and np.isfinite(x).all(), name
        imatrix = None if imat_gen is None else np.asarray(imat_gen(n), dtype=np.float32)
        names.append(name)
        total_rows += rows
        w.add_tensor(f"{name}.input", x)
        if imatrix is not None:
            w.add_tensor(f"{name}.imatrix", imatrix)
        for suffix, qt in TYPES:
            if x.shape[1] % qt[1] != 0 or (suffix in ("f16", "bf16") and name not in FLOAT_CASES):
                continue
            if imatrix is None and lib.ggml_quantize_requires_imatrix(qt[0]):
                continue  # ggml refuses these types without an importance matrix
            q = ggml_quantize_or_none(suffix, qt, x, imatrix)
            if q is None:
                print(f"{name}.{suffix}: ggml aborts on this input, left out", file=sys.stderr)
                continue
            if qt[0] in [int(v) for v in Q]:
                w.add_tensor(f"{name}.{suffix}", q, raw_dtype=Q(qt[0]))
            else:  # a type gguf-py does not know: its bytes as an I8 tensor of the same size
                w.add_tensor(f"{name}.{suffix}", q.view(np.int8))
    w.add_array("golden.cases", names)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, OUT)
    print(f"{OUT}: {len(names)} cases, {total_rows} rows, {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
