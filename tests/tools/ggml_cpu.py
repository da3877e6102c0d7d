#!/usr/bin/env python3
"""Run ggml's CPU kernels (libggml-cpu from llama-cpp-python) through ctypes.

Reads one job per line on stdin, answers one line per job on stdout:
  from_float TYPE_ID N_PER_ROW IN OUT
      quantize the f32 rows of file IN with the CPU backend's activation
      quantizer (`ggml_get_type_traits_cpu(type)->from_float`), bytes to OUT;
      answers `ok`.
  to_float TYPE_ID N_PER_ROW IN OUT
      dequantize the rows in file IN with ggml's `to_float`
      (`ggml_get_type_traits(type)->to_float`, libggml-base), f32 to OUT;
      answers `ok`.
  vec_dot TYPE_ID N W A
      dot product of the N-value weight row in file W with the activation row
      in file A (`->vec_dot`); answers the float result.
"""
import ctypes
import os
import sys

import importlib.util

# Locate the package without importing it (importing loads libllama: slow).
LIB = os.path.join(os.path.dirname(importlib.util.find_spec("llama_cpp").origin), "lib")
ggml_base = ctypes.CDLL(os.path.join(LIB, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(os.path.join(LIB, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)

FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VEC_DOT = ctypes.CFUNCTYPE(
    None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t,
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


class Traits(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p), ("vec_dot_type", ctypes.c_int),
                ("nrows", ctypes.c_int64)]


cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(Traits)
cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
cpu.ggml_cpu_init.restype = None
class BaseTraits(ctypes.Structure):
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64), ("blck_size_interleave", ctypes.c_int64),
                ("type_size", ctypes.c_size_t), ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
ggml_base.ggml_get_type_traits.restype = ctypes.POINTER(BaseTraits)
ggml_base.ggml_get_type_traits.argtypes = [ctypes.c_int]
ggml_base.ggml_row_size.restype = ctypes.c_size_t
ggml_base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]


def run(args) -> str:
    op, ty = args[0], int(args[1])
    traits = cpu.ggml_get_type_traits_cpu(ty).contents
    if op == "from_float":
        n = int(args[2])
        data = open(args[3], "rb").read()
        rows = len(data) // (4 * n)
        rb = ggml_base.ggml_row_size(ty, n)
        src = ctypes.create_string_buffer(data, len(data))
        dst = ctypes.create_string_buffer(rows * rb)
        f = FROM_FLOAT(traits.from_float)
        for r in range(rows):
            f(ctypes.addressof(src) + r * 4 * n, ctypes.addressof(dst) + r * rb, n)
        open(args[4], "wb").write(dst.raw)
        return "ok"
    if op == "to_float":  # ggml's dequantize_row_* (libggml-base): args n, in, out
        n = int(args[2])
        data = open(args[3], "rb").read()
        src = ctypes.create_string_buffer(data, len(data))
        rows = len(data) // ggml_base.ggml_row_size(ty, n)
        dst = ctypes.create_string_buffer(rows * n * 4)
        TO_FLOAT(ggml_base.ggml_get_type_traits(ty).contents.to_float)(ctypes.addressof(src), ctypes.addressof(dst),
                                                                       rows * n)
        open(args[4], "wb").write(dst.raw)
        return "ok"
    if op == "vec_dot":
        n = int(args[2])
        w, a = open(args[3], "rb").read(), open(args[4], "rb").read()
        wb, ab = ctypes.create_string_buffer(w, len(w)), ctypes.create_string_buffer(a, len(a))
        s = ctypes.c_float()
        VEC_DOT(traits.vec_dot)(n, ctypes.byref(s), 0, ctypes.addressof(wb), 0, ctypes.addressof(ab), 0, 1)
        return repr(s.value)
    raise ValueError(f"unknown op {op}")


def main() -> int:
    cpu.ggml_cpu_init()
    for line in sys.stdin:
        if line.strip():
            print(run(line.split()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
